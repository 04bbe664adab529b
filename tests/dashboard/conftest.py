"""Dashboard fixtures: the seeded lake (tests/analytics/traces/seed.py), an AppTest on it, and
the seeded lake served by a real collector for the labelling tests (`live`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from spanlake.dashboard import writes
from spanlake.storage.reader import Lake
from tests.analytics.traces.seed import write_lake
from tests.conftest import RunningCollector, start_collector

APP = Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py"
DAY = date(2025, 6, 2)  # the seeded window; the day before is the comparison period
TIMEOUT_S = 60


CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by scripts/test; playwright never downloads one
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def screenshot(page: object, name: str, tmp: Path) -> None:
    """Save a screenshot of a browser page in `tmp`; with SPANLAKE_UPDATE_SCREENSHOTS=1 in docs/img/ too."""
    path = tmp / name
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    if os.environ.get("SPANLAKE_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / name)


def open_at(page: str | None, reviewer: str | None, project: str = "shop", **query: Any) -> AppTest:
    """The app on the lake of SPANLAKE_DATA_DIR, `project` on DAY, as `reviewer` (None: nobody),
    switched to `page` with `query` as its URL parameters."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    at.sidebar.selectbox(key="global_project").set_value(project)
    at.sidebar.selectbox(key="global_range").set_value("Custom").run()
    at.sidebar.date_input(key="global_from").set_value(DAY)
    at.sidebar.date_input(key="global_to").set_value(DAY)
    if reviewer:
        at.sidebar.text_input(key="global_reviewer").set_value(reviewer)
    at.run()
    if page is not None:
        at.query_params.update(query)
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@dataclass
class Live:
    """The seeded lake served by a real collector; `open` runs the app on it as a reviewer."""

    collector: RunningCollector
    data_dir: Path
    lake: Lake

    def open(self, page: str | None = None, reviewer: str | None = "ana", **query: Any) -> AppTest:
        return open_at(page, reviewer, **query)

    def flush(self) -> None:
        self.collector.flush()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Debian chromium driven by playwright, for the real-browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="package")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dash") / "data"
    write_lake(root)
    return root


@pytest.fixture
def open_app(seeded_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """open_app(page, **query_params): the app on the seeded lake, project `shop`, 2025-06-02 (UTC)."""
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(seeded_dir))
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "off")  # sign-in has its own tests (test_signin.py)

    def open_(page: str | None = None, project: str = "shop", **query: Any) -> AppTest:
        return open_at(page, None, project, **query)

    return open_


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    """A fresh seeded lake served by a real collector on a free loopback port; the app writes
    through it, without sign-in (dashboard/auth.py)."""
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "off")
    root = tmp_path / "data"
    write_lake(root)
    running, stop = start_collector(root)
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(root))
    monkeypatch.setenv(writes.URL_ENV, running.http)
    try:
        yield Live(running, root, Lake(root))
    finally:
        stop()
