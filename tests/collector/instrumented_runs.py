"""What the instrumentation tests share: the instrumented client processes' results, collected
into `Runs`, and a clean environment for them (tests/collector/test_instrumentations*.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
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
