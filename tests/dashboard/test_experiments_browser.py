"""The Experiments page in a real browser: `spanlake dashboard` on a free loopback port over two
runs made by the real runner (fake_app's baseline A and candidate B over faq@1, see
tests/experiments/helpers.py), driven by Debian's Chromium through Playwright. The link
`/experiments?a=A&b=B` compares them; the regressed items are listed, item-2 is opened (both
outputs, the expected one, the verdicts), and B's trace button opens that trace's page.

The screenshot goes to the test's tmp dir; with SPANLAKE_UPDATE_SCREENSHOTS=1 to docs/img/ too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.experiments.store import Store
from tests.conftest import start_collector
from tests.dashboard.conftest import CHROMIUM, screenshot
from tests.dashboard.test_cli import SPANLAKE, _line
from tests.dashboard.test_signin_browser import stop
from tests.examples.helpers import clean_env
from tests.experiments.helpers import run_designed_pair

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str, str]]:
    """`spanlake dashboard` over the runs' data directory: (its URL, the directory, A, B)."""
    running, stop_collector = start_collector(tmp_path_factory.mktemp("experiments-browser") / "data", auth="off")
    try:
        a, b = run_designed_pair(running)
    finally:
        stop_collector()
    data = running.data_dir
    cmd = [SPANLAKE, "dashboard", "--data-dir", str(data), "--port", "0", "--dashboard-auth", "off"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env())
    try:
        url = _line(proc, "spanlake dashboard:").split()[2]
        yield url, data, a, b
    finally:
        stop(proc)


def test_two_runs_compared_a_regressed_item_opened_and_its_trace(
    dashboard: tuple[str, Path, str, str], browser: object, tmp_path: Path
) -> None:
    url, data, a, b = dashboard
    page = browser.new_page(viewport={"width": 1440, "height": 1750})  # type: ignore[attr-defined]
    page.goto(f"{url}/experiments?a={a}&b={b}")
    aggregates = page.locator('[data-testid="stDataFrame"]').nth(1)
    cells = aggregates.locator('[role="gridcell"]')
    cells.filter(has_text="(9/10)").first.wait_for(state="attached", timeout=WAIT_MS)  # the grid's a11y table
    shown = cells.all_text_contents()
    assert "90.0% [59.6%, 98.2%] (9/10)" in shown and "80.0% [49.0%, 94.3%] (8/10)" in shown  # Wilson, by hand
    assert "$0.13" in shown and any(t.startswith("-35.0 % [") for t in shown)  # cost per task 0.13 / 0.20

    regressed = page.get_by_role("radio", name="Regressed (2)")
    regressed.wait_for(timeout=WAIT_MS)
    assert regressed.get_attribute("aria-checked") == "true"  # the filter a comparison opens on
    items = page.locator('[data-testid="stDataFrame"]').last.locator('[role="gridcell"]')
    items.filter(has_text="hallucination").first.wait_for(state="attached", timeout=WAIT_MS)
    texts = items.all_text_contents()
    assert "item-1" in texts and "item-2" in texts and "answer 2 (made up)" in texts

    item = page.locator('[data-testid="stSelectbox"]').filter(has_text="Item")
    item.click()
    page.get_by_role("option", name="item-2").click()
    detail = page.locator('[data-testid="stVerticalBlock"]').filter(has=page.get_by_text("Item item-2")).last
    detail.get_by_text("fail · hallucination").wait_for(timeout=WAIT_MS)
    # item-1 is a regressed hallucination too: wait until B's block shows item-2's own output
    # (under load the header changes a rerun before the rest of the pane did)
    detail.get_by_text("answer 2 (made up)").wait_for(timeout=WAIT_MS)
    body = detail.inner_text()
    assert "question 2" in body and "answer 2 (made up)" in body and "pass" in body
    assert body.count("answer 2") == 3  # the expected output, A's and B's
    screenshot(page, "experiments.png", tmp_path)

    trace_id = Store(data).get(b).results()["item-2"]["trace_id"]
    with page.expect_popup() as opened:  # st.link_button opens a new tab
        detail.get_by_role("link", name="Open B's trace").click()
    trace = opened.value
    trace.get_by_text("Reason: hallucination").wait_for(timeout=WAIT_MS)
    assert trace.url == f"{url}/trace?trace={trace_id}&project=shop-experiments"
    assert trace.get_by_role("heading", name="experiment_item").count() == 1
    trace.get_by_text(f"trace {trace_id} · project shop-experiments", exact=False).wait_for(timeout=WAIT_MS)
    trace.close()
    page.close()
