"""Dashboard fixtures: the seeded lake (tests/analytics/traces/seed.py) and an AppTest on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.analytics.traces.seed import write_lake

APP = Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py"
DAY = date(2025, 6, 2)  # the seeded window; the day before is the comparison period
TIMEOUT_S = 60


CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by scripts/test; playwright never downloads one
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


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
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
        at.sidebar.selectbox(key="global_project").set_value(project)
        at.sidebar.selectbox(key="global_range").set_value("Custom").run()
        at.sidebar.date_input(key="global_from").set_value(DAY)
        at.sidebar.date_input(key="global_to").set_value(DAY).run()
        if page is not None:
            at.query_params.update(query)
            at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_
