"""The Evaluators page in a real browser: `spanlake dashboard` on a free loopback port over the
data directory of tests/dashboard/evaluators_data.py (labels written through the real labels
API), driven by Debian's Chromium through Playwright. The page lists the evaluators with their
figures; a disagreement's link opens the Trace page, which shows the judge's result (verdict,
evaluator@version, failure mode, the judge's reason) apart from people's labels.

The screenshot goes to the test's tmp dir; with SPANLAKE_UPDATE_SCREENSHOTS=1 to docs/img/ too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.dashboard import evaluator_view as evv
from tests.analytics.traces.seed import trace_hex
from tests.dashboard.conftest import CHROMIUM, screenshot
from tests.dashboard.evaluators_data import DISAGREEMENTS, EvaluatorsDir, build
from tests.dashboard.test_cli import SPANLAKE, _line
from tests.dashboard.test_signin_browser import stop
from tests.examples.helpers import clean_env

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EvaluatorsDir]]:
    """`spanlake dashboard` over the evaluators data directory: (its URL, the directory)."""
    data = build(tmp_path_factory.mktemp("evaluators-browser") / "data")
    cmd = [SPANLAKE, "dashboard", "--data-dir", str(data.root), "--port", "0", "--dashboard-auth", "off"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env())
    try:
        url = _line(proc, "spanlake dashboard:").split()[2]
        yield url, data
    finally:
        stop(proc)


def test_the_evaluators_and_a_disagreement_on_its_trace(
    dashboard: tuple[str, EvaluatorsDir], browser: object, tmp_path: Path
) -> None:
    url, _ = dashboard
    page = browser.new_page(viewport={"width": 1440, "height": 1600})  # type: ignore[attr-defined]
    page.goto(f"{url}/evaluators?project=shop")
    page.get_by_role("heading", name="Evaluators", exact=True).first.wait_for(timeout=WAIT_MS)
    table = page.locator('[data-testid="stDataFrame"]').first
    cells = table.locator('[role="gridcell"]')
    cells.filter(has_text="tone (not declared)").first.wait_for(state="attached", timeout=WAIT_MS)
    shown = cells.all_text_contents()
    for name in ("groundedness", "reply_json", "polite", "llm_judge", "json_schema"):
        assert name in shown, shown
    kappa = page.locator('[data-testid="stMetric"]').filter(has_text="Kappa").first
    assert kappa.inner_text().split("\n")[-1] == "0.09"  # groundedness v1, the first with results
    page.locator('[data-testid="stVegaLiteChart"] svg g.mark-symbol.role-mark path').first.wait_for(timeout=WAIT_MS)
    page.get_by_role("heading", name="Disagreements with people").wait_for(timeout=WAIT_MS)
    screenshot(page, "evaluators.png", tmp_path)

    disagreements = page.locator('[data-testid="stDataFrame"]').nth(2)  # evaluators, confusion, disagreements
    links = disagreements.locator('[role="gridcell"]').filter(has_text="./trace?")
    links.first.wait_for(state="attached", timeout=WAIT_MS)  # the grid's accessible cells
    hrefs = sorted(links.all_text_contents())
    assert [h.split("trace=")[1].split("&")[0] for h in hrefs] == DISAGREEMENTS
    with page.expect_popup() as opened:  # st.link_button opens a new tab
        page.get_by_role("link", name=f"Trace {evv.short_id(trace_hex(4))}").click()
    trace = opened.value
    assert trace.url == f"{url}/trace?trace={trace_hex(4)}&project=shop"
    trace.get_by_role("heading", name="Evaluator results").wait_for(timeout=WAIT_MS)
    result = trace.locator('[data-testid="stMarkdownContainer"]').filter(has_text="groundedness@v1").first
    result.wait_for(timeout=WAIT_MS)
    assert result.inner_text().startswith("fail groundedness@v1")
    assert "judge-grounded" in result.inner_text() and "$0.0004" in result.inner_text()
    screenshot(trace, "evaluators-trace.png", tmp_path)
    trace.close()
    page.close()
