"""Every page answers at its own address in a real browser (issue 19): `/traces`, the Traces
page's own name, opens the Traces page (it said "Page not found"), and the root URL goes there."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanlake.storage.users import UserStore
from tests.dashboard.test_signin_browser import WAIT_MS, needs_chromium, serve, stop


@pytest.fixture(scope="module")
def dashboard(seeded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    users = UserStore(tmp_path_factory.mktemp("urls") / "users.json")
    proc, url, _ = serve(seeded_dir, users.path, "--dashboard-auth", "off")
    try:
        yield url
    finally:
        stop(proc)


@needs_chromium
@pytest.mark.parametrize(
    ("path", "heading"),
    [("/traces", "Traces"), ("/", "Traces"), ("/sessions", "Sessions"), ("/reports", "Reports"),
     ("/overview", "Overview"), ("/datasets", "Datasets"), ("/experiments", "Experiments"),
     ("/evaluators", "Evaluators")],
)  # fmt: skip
def test_pages_answer_at_their_own_address(dashboard: str, browser: object, path: str, heading: str) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    try:
        page.goto(f"{dashboard}{path}?project=shop")
        page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(500)  # the dialog, when there is one, comes with the first run
        assert page.get_by_text("Page not found").count() == 0
        if path in ("/", "/traces"):
            assert page.url.split("?")[0] == f"{dashboard}/traces"  # one address for the page
    finally:
        page.close()
