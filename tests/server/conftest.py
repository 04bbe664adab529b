"""Fixtures of the collector tests: one seeded collector with authentication on for the HTTP API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.api_helpers import Api, seeded_api


@pytest.fixture(scope="package")
def api_v1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Projects alpha and beta seeded as tests/server/api_helpers.py says; auth on."""
    api, stop = seeded_api(tmp_path_factory.mktemp("api") / "data")
    try:
        yield api
    finally:
        stop()
