"""A frozen dataset for the experiment tests (through storage.datasets.freeze), the prices that
make the fake apps' costs round, the designed pair of runs (fake_app's baseline and candidate,
also read by the API and dashboard tests), and the `spanlake` command in a child process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.storage.datasets import EXAMPLE_SCHEMA, Version, freeze
from spanlake.storage.layout import DataDir
from tests.conftest import RunningCollector

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "shop"
DATASET = "faq"
ITEMS = [f"item-{i}" for i in range(10)]
PRICES = '[[price]]\nmodel = "acme-1"\ninput_mtok = 1000.0\noutput_mtok = 2000.0\n'


def freeze_items(data_dir: Path, n: int = 10, name: str = DATASET, project: str = PROJECT) -> Version:
    """Freeze `n` examples: input `question i`, expected output `answer i`."""
    (data_dir / "prices.toml").write_text(PRICES)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "example_id": f"item-{i}",
            "project": project,
            "dataset": name,
            "trace_id": f"{i:032x}",
            "input": f"question {i}",
            "input_messages": json.dumps([{"role": "user", "content": f"question {i}"}]),
            "expected_output": f"answer {i}",
            "verdict": "fail",
            "failure_mode": "hallucination",
            "added_at": now,
            "metadata": "{}",
        }
        for i in range(n)
    ]
    table = pa.Table.from_pylist([{k: r.get(k) for k in EXAMPLE_SCHEMA.names} for r in rows], schema=EXAMPLE_SCHEMA)
    version, _ = freeze(DataDir(data_dir), project, name, table, author="test")
    return version


def spanlake(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the `spanlake` command in a child process."""
    cmd = [sys.executable, "-m", "spanlake.cli.main", *args]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    """The `spanlake` command in this process."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def run_experiment(c: RunningCollector, app: str, version: str, *extra: str) -> str:
    """`spanlake experiment run` of `app` over faq@1 (`--check exact`, prompt_version `version`,
    model acme-1) against `c`; returns the experiment id."""
    args = ["experiment", "run", "--dataset", f"{DATASET}@1", "--dataset-project", PROJECT, "--app", app]
    args += ["--check", "exact", "--meta", f"prompt_version={version}", "--meta", "model=acme-1"]
    args += ["--endpoint", c.http, "--data-dir", str(c.data_dir), "--quiet", "--wait", "30", *extra]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    m = re.search(r"(exp-\d{8}-\d{6}-[0-9a-f]{4}): 10 item\(s\) run", result.output)
    assert m, result.output
    assert "lake figures for 10/10 item(s)" in result.output, result.output
    return m.group(1)


def run_designed_pair(c: RunningCollector) -> tuple[str, str]:
    """Freeze faq@1 and run fake_app's baseline (v1) and candidate (v2) over it: (a, b) ids.

    Hand-worked (fake_app.py): baseline 9/10 right (item-9 wrong), $0.20 each; candidate fails
    item-1 (exact) and item-2 (hallucination), right on item-9, changed output on item-5; $0.20
    on items 0-2, $0.10 on 3-9 ($1.30)."""
    freeze_items(c.data_dir)
    a = run_experiment(c, "tests.experiments.fake_app:baseline", "v1", "--concurrency", "3")
    b = run_experiment(c, "tests.experiments.fake_app:candidate", "v2")
    return a, b
