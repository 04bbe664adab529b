"""Tests that read the lake with an existing engine (Spark)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes over a minute (starts a JVM); still runs in CI")
