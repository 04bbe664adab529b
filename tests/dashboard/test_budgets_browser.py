"""The Budgets page in a real browser: `spanlake dashboard` on a free loopback port over the
data directory of tests/dashboard/budgets_data.py (alert files from the real engine), driven
by Debian's Chromium through Playwright. The firing budget shows its state and its trend
(Vega's SVG, with the two threshold rules); its button opens the Traces page with exactly
the failed tasks of its scope and window.

The screenshot goes to the test's tmp dir; with SPANLAKE_UPDATE_SCREENSHOTS=1 to docs/img/ too.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.server.alerts.store import AlertStore
from spanlake.server.budget_watch import INTERVAL_ENV
from tests.dashboard.budgets_data import FAILED_IN_SCOPE, BudgetsDir, build
from tests.dashboard.conftest import CHROMIUM, screenshot
from tests.dashboard.test_browser import free_port
from tests.dashboard.test_cli import SPANLAKE, _line
from tests.dashboard.test_signin_browser import stop
from tests.demo.test_up import wait_for
from tests.examples.helpers import clean_env

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
WAIT_MS = 60_000
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, BudgetsDir]]:
    """`spanlake dashboard` over the budgets data directory: (its URL, the directory)."""
    data = build(tmp_path_factory.mktemp("budgets-browser") / "data")
    cmd = [SPANLAKE, "dashboard", "--data-dir", str(data.root), "--port", "0", "--dashboard-auth", "off"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env())
    try:
        url = _line(proc, "spanlake dashboard:").split()[2]
        yield url, data
    finally:
        stop(proc)


def history_shown(budget: object) -> None:
    """Wait for the budget's alert history table (its grid's accessible cells)."""
    cell = budget.locator('[data-testid="stDataFrame"] [role="gridcell"]').filter(has_text="firing")  # type: ignore[attr-defined]
    cell.first.wait_for(state="attached", timeout=WAIT_MS)


def test_the_firing_budget_its_trend_and_its_traces(
    dashboard: tuple[str, BudgetsDir], browser: object, tmp_path: Path
) -> None:
    url, _ = dashboard
    page = browser.new_page(viewport={"width": 1440, "height": 1300})  # type: ignore[attr-defined]
    page.goto(f"{url}/budgets")
    firing = page.locator('[data-testid="stExpander"]').filter(has_text="answer-errors")
    firing.wait_for(timeout=WAIT_MS)
    assert "firing · critical" in firing.locator("summary").inner_text()
    assert firing.locator("details").get_attribute("open") is not None  # an open alert starts expanded
    figure = firing.locator('[data-testid="stMetric"]').first
    assert figure.inner_text().split("\n")[-1] == "75.0%"

    chart = firing.locator('[data-testid="stVegaLiteChart"] svg.marks')
    chart.wait_for(timeout=WAIT_MS)
    rules = chart.locator("g.mark-rule.role-mark line")  # not the axis grid's rules
    rules.nth(1).wait_for(state="attached", timeout=WAIT_MS)  # flat lines are never "visible"
    labels = sorted(str(r.get_attribute("aria-label")).split("; ", 1)[1] for r in rules.all())  # after "y: ..."
    assert labels == ["threshold: critical; at: 50.0%", "threshold: warning; at: 20.0%"]
    assert sorted(chart.locator("g.mark-text.role-mark text").all_text_contents()) == ["critical", "warning"]
    assert chart.locator("g.mark-symbol.role-mark path").count() == 3  # one point per evaluation
    assert chart.locator("g.mark-line.role-mark path").count() == 1
    history_shown(firing)
    screenshot(page, "budgets.png", tmp_path)

    button = firing.get_by_role("link", name="Open the traces that break it")
    with page.expect_popup() as opened:  # st.link_button opens a new tab
        button.click()
    traces = opened.value
    traces.get_by_text("3 traces").first.wait_for(timeout=WAIT_MS)
    assert traces.url.startswith(f"{url}/traces?project=shop&")
    cells = traces.locator('[data-testid="stDataFrame"] [role="gridcell"]')
    cells.filter(has_text=FAILED_IN_SCOPE[-1]).wait_for(state="attached", timeout=WAIT_MS)  # the grid's a11y table
    shown = [t for t in cells.all_text_contents() if TRACE_ID.match(t)]
    assert shown == FAILED_IN_SCOPE  # shop's failed `answer` tasks of the budget's window, newest first
    traces.close()
    page.close()


def test_the_demo_first_start_shows_a_firing_budget(browser: object, tmp_path: Path) -> None:
    """`spanlake up` on an empty data directory: the demo declares its budgets and sends its
    traffic; its success rate (successes / tickets, from demo.log) is under the critical 0.8,
    so the Budgets page shows answer-ticket-success firing, and its button opens the failed
    tickets (failures and errors, from demo.log)."""
    data = tmp_path / "data"
    out = tmp_path / "up.out"
    ports = [str(free_port()) for _ in range(3)]
    cmd = [SPANLAKE, "up", "--data-dir", str(data), "--http-port", ports[0], "--grpc-port", ports[1],
           "--dashboard-port", ports[2]]  # fmt: skip
    with open(out, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, text=True,
                                env=clean_env(**{INTERVAL_ENV: "2"}))  # fmt: skip
    try:
        wait_for(lambda: "Press Ctrl+C" in out.read_text() or proc.poll() is not None, 60, "spanlake up")
        assert proc.poll() is None, out.read_text()
        demo_log = data / "demo.log"
        done = lambda: demo_log.exists() and "What to look at next" in demo_log.read_text()  # noqa: E731
        wait_for(done, 60, f"the demo: {out.read_text()}")
        said = demo_log.read_text()
        line = said.split("outcomes", 1)[1].split("\n", 1)[0]  # "  success 42 · failure 16 · error 2"
        outcomes = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", line)}
        tickets, failed = sum(outcomes.values()), outcomes.get("failure", 0) + outcomes.get("error", 0)
        success = outcomes["success"] / tickets
        assert tickets >= 20 and success < 0.8, said  # the budget's min_samples and critical threshold
        alerts = AlertStore(data / "alerts")

        def fired_on_everything() -> bool:
            s = alerts.states().get("demo/answer-ticket-success")
            return s is not None and s.status == "firing" and s.last is not None and s.last.samples == tickets

        wait_for(fired_on_everything, 60, "the demo's success budget to fire on all its tickets")

        page = browser.new_page(viewport={"width": 1440, "height": 1300})  # type: ignore[attr-defined]
        page.goto(f"http://127.0.0.1:{ports[2]}/budgets")
        firing = page.locator('[data-testid="stExpander"]').filter(has_text="answer-ticket-success")
        firing.wait_for(timeout=WAIT_MS)
        assert "firing · critical" in firing.locator("summary").inner_text()
        figure = firing.locator('[data-testid="stMetric"]').first.inner_text().split("\n")
        assert (figure[0], figure[-1]) == ("Success rate (1d)", f"{success * 100:.1f}%")
        # the trend's points (the evaluations of one minute share its end: one point until the next minute)
        firing.locator('[data-testid="stVegaLiteChart"] svg g.mark-symbol.role-mark path').first.wait_for(
            timeout=WAIT_MS
        )
        page.locator('[data-testid="stExpander"]').filter(has_text="daily-spend").wait_for(timeout=WAIT_MS)
        history_shown(firing)
        screenshot(page, "budgets-demo.png", tmp_path)
        with page.expect_popup() as opened:
            firing.get_by_role("link", name="Open the traces that break it").click()
        opened.value.get_by_text(f"{failed} traces").first.wait_for(timeout=WAIT_MS)
        page.close()
    finally:
        stop(proc)
