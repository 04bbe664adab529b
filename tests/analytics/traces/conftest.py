"""Fixtures: a seeded lake with known figures, and a lake filled by real instrumentations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from spanlake.analytics.runner import Analytics
from spanlake.demo.fake_openai import FakeOpenAI
from tests.analytics.traces.agent_app import CONFIGS
from tests.analytics.traces.runner import run_agents
from tests.analytics.traces.seed import write_lake
from tests.conftest import start_collector


@pytest.fixture(scope="package")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    root = tmp_path_factory.mktemp("seeded") / "data"
    write_lake(root)
    return Analytics(root)


@dataclass
class RealRuns:
    analytics: Analytics
    traces: dict[str, dict[str, str]]
    failures: dict[str, str]

    def trace(self, config: str, scenario: str) -> str:
        if config in self.failures:
            pytest.fail(self.failures[config])
        return self.traces[config][scenario]


@pytest.fixture(scope="package")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRuns]:
    """Every instrumentation config's agent run, sent to a real collector (one project each)."""
    data: Path = tmp_path_factory.mktemp("real") / "data"
    collector, stop = start_collector(data)
    try:
        with FakeOpenAI() as fake:
            traces, failures = run_agents(list(CONFIGS), fake.base_url, collector.http)
        collector.flush()
        yield RealRuns(Analytics(data), traces, failures)
    finally:
        stop()
