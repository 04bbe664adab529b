"""What the instrumentation tests share: the instrumented client processes' results, collected
into `Runs`, a clean environment for them, and the docs' "Observed keys" blocks
(tests/collector/test_instrumentations*.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningCollector


@dataclass
class Runs:
    collector: RunningCollector
    traces: dict[str, dict[str, str]]  # config → scenario → trace id
    versions: dict[str, str]
    failures: dict[str, str]  # config → why its process failed (only its tests fail)

    def trace(self, config: str, scenario: str) -> str:
        if config in self.failures:
            pytest.fail(self.failures[config])
        return self.traces[config][scenario]

    def call(self, config: str, scenario: str) -> dict[str, Any]:
        """The library's span for one scenario (the only child of the scenario span)."""
        rows = self.collector.query(
            "SELECT * FROM spans WHERE project = ? AND trace_id = ? AND name NOT LIKE 'scenario %'",
            [config, self.trace(config, scenario)],
        )
        assert len(rows) == 1, [r["name"] for r in rows]
        return rows[0]


def clean_env(prefixes: tuple[str, ...], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without variables starting with `prefixes`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **(extra or {})}


def collect(
    procs: Mapping[str, subprocess.Popen[bytes]],
) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, str]]:
    """(traces, versions, failures) of the instrumented client processes, one per config;
    a process that fails or hangs (120 s) fails only its own config's tests."""
    traces, versions, failures = {}, {}, {}
    for config, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            failures[config] = f"{config}: instrumented client failed:\n{err.decode()[-4000:]}"
            continue
        result = json.loads(out)
        traces[config] = result["traces"]
        versions.update(result["versions"])
    return traces, versions, failures


_INDEX = re.compile(r"\.\d+\.")


def observed_keys(values: Iterable[str | None]) -> str:
    """The keys of JSON objects (list indexes as `.N.`), sorted, as Markdown code spans; or `none`."""
    keys = sorted({_INDEX.sub(".N.", k) for v in values if v for k in json.loads(v)})
    return ", ".join(f"`{k}`" for k in keys) or "none"


def check_docs_block(doc: Path, begin: str, end: str, observed: str) -> None:
    """Fail unless `doc` holds `observed` between the markers; SPANLAKE_REGEN_DOCS=1 writes it there."""
    block = f"{begin}\n{observed}{end}"
    text = doc.read_text()
    head, found, rest = text.partition(begin)
    assert found, f"{doc.name} has no {begin} marker"
    _, _, tail = rest.partition(end)
    if os.environ.get("SPANLAKE_REGEN_DOCS") == "1":
        doc.write_text(head + block + tail)
        text = doc.read_text()
    assert block in text, f"{doc.name} is stale: rerun with SPANLAKE_REGEN_DOCS=1"
