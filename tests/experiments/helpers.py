"""A frozen dataset for the experiment tests (through storage.datasets.freeze), the prices that
make the fake apps' costs round, and the `spanlake` command in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanlake.storage.datasets import EXAMPLE_SCHEMA, Version, freeze
from spanlake.storage.layout import DataDir

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
