"""The span tree of a 300-span agent run in a real browser: `spanlake dashboard` on a free
loopback port over the lake of tests/dashboard/agent_trace.py, Debian's Chromium through
Playwright. The grid is a canvas; its accessible rows (`aria-rowcount`, `aria-selected`) say
what it shows. A click on the timeline's bar of the failing tool selects it; clicking a turn's
open/close button (the grid's ButtonColumn) opens and closes exactly its spans, a category pill
filters, and "Next error" (button and Alt+E) selects the failed call, then the failing tool,
which stays selected when only the problems show.

Screenshots go to the test's tmp dir; with SPANLAKE_UPDATE_SCREENSHOTS=1 to docs/img/ too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.agent_trace import FAILURE, TRACE, write_agent_lake
from tests.dashboard.conftest import CHROMIUM, screenshot
from tests.dashboard.test_cli import SPANLAKE, _line
from tests.dashboard.test_signin_browser import stop
from tests.examples.helpers import clean_env

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
WAIT_MS = 60_000
ROW_PX = 30  # the tree grid's row height
HEADER_PX = 33  # within a pixel or two of the header's height: clicks aim at a row's middle
OPEN_COLUMN_PX = 33 + 28  # past the selection checkboxes, the middle of the open/close buttons
GRID = '[data-testid="stDataFrame"] [role="grid"]'
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`spanlake dashboard` over the agent run's lake: its URL."""
    data = tmp_path_factory.mktemp("agent-browser") / "data"
    write_agent_lake(data)
    cmd = [SPANLAKE, "dashboard", "--data-dir", str(data), "--port", "0", "--dashboard-auth", "off"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env())
    try:
        yield _line(proc, "spanlake dashboard:").split()[2]
    finally:
        stop(proc)


def rows_shown(page: object, n: int) -> None:
    """Wait until the page is idle and the tree grid has n rows (and its header)."""
    page.locator(f'{GRID}[aria-rowcount="{n + 1}"]').wait_for(state="attached", timeout=WAIT_MS)  # type: ignore[attr-defined]
    page.locator(IDLE).wait_for(state="attached", timeout=WAIT_MS)  # type: ignore[attr-defined]


def click_open(page: object, row: int) -> None:
    """Click the open/close button of the grid's row (0 is the first span)."""
    grid = page.locator('[data-testid="stDataFrame"]').first  # type: ignore[attr-defined]
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + OPEN_COLUMN_PX, box["y"] + HEADER_PX + row * ROW_PX + ROW_PX / 2)  # type: ignore[attr-defined]


def test_open_close_filter_and_next_error(dashboard: str, browser: object, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1920, "height": 1000})  # type: ignore[attr-defined]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{dashboard}/trace?trace={TRACE.hex()}&project=agents")
    page.get_by_text("Showing 29 of 300 spans · 2 in error · 1 retry").wait_for(timeout=WAIT_MS)
    rows_shown(page, 29)  # the task, the agent, 25 turns, 2 validations
    page.locator('[data-testid="stTabs"]').first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    screenshot(page, "trace-tree.png", tmp_path)

    # a click on the timeline's bar of the failing tool selects it, its turn opened (29 + 5 rows)
    bar = page.locator('[data-testid="stVegaLiteChart"] svg g.mark-rect path[aria-label*="status: ERROR"]')
    bar.filter(has=page.locator("xpath=self::*[contains(@aria-label, 'span: execute_tool get_order')]")).click()
    page.get_by_text("Showing 34 of 300 spans").wait_for(timeout=WAIT_MS)
    page.get_by_text(f"Status message: {FAILURE}").wait_for(timeout=WAIT_MS)
    depth = page.locator('[data-testid="stButtonGroup"]').filter(has_text="Open to depth")
    depth.get_by_text("1", exact=True).click()
    rows_shown(page, 4)  # the task, the agent, the two final validations
    depth.get_by_text("2", exact=True).click()
    rows_shown(page, 29)  # a depth forgets what was opened by hand

    click_open(page, 4)  # turn 3 (rows: task, agent, turn 1, turn 2, turn 3): its chat and research
    page.get_by_text("Showing 31 of 300 spans").wait_for(timeout=WAIT_MS)
    rows_shown(page, 31)
    click_open(page, 4)
    rows_shown(page, 29)

    depth.get_by_text("all", exact=True).click()
    rows_shown(page, 300)
    click_open(page, 11)  # turn 3 again: after the task, the agent, turn 1 and its 3, turn 2 and its 4
    page.get_by_text("Showing 281 of 300 spans").wait_for(timeout=WAIT_MS)
    rows_shown(page, 281)  # its 19 spans hidden

    page.get_by_role("button", name="tool 100").click()
    page.get_by_text("Showing 137 of 300 spans").wait_for(timeout=WAIT_MS)
    rows_shown(page, 137)  # 100 tools, the task, the agent, 25 turns, 10 researchers
    page.get_by_role("button", name="tool 100").click()
    rows_shown(page, 281)

    page.get_by_role("button", name="Next error").click()
    detail = page.locator('[data-testid="stVerticalBlock"]').filter(has_text="Status message:").last
    page.get_by_text("Status message: 429 Too Many Requests").wait_for(timeout=WAIT_MS)
    page.locator(IDLE).wait_for(state="attached", timeout=WAIT_MS)
    page.locator("h3").filter(has_text="chat gpt-4o").first.click()  # out of any input: shortcuts skip them
    page.keyboard.press("Alt")  # Streamlit's key handler drops the first chord after a load; prime it
    page.keyboard.press("Alt+E")  # the next error, from the keyboard
    page.get_by_text(f"Status message: {FAILURE}").wait_for(timeout=WAIT_MS)
    assert "execute_tool get_order" in detail.inner_text()
    assert "support_agent {0} invoke_agent support {0} turn 14 {0}".format(chr(0x203A)) in detail.inner_text()
    page.locator(IDLE).wait_for(state="attached", timeout=WAIT_MS)
    # only the problems: the task, the agent, turn 9 with its failed chat and the retry, turn 14
    # and its get_order, which stays selected (the 7th row, after the header)
    page.get_by_text("Only errors, retries and failed checks").click()
    rows_shown(page, 7)
    selected = page.locator(f'{GRID} [role="row"][aria-selected="true"]')
    selected.wait_for(state="attached", timeout=WAIT_MS)
    assert selected.get_attribute("aria-rowindex") == "8"
    assert "execute_tool get_order" in selected.inner_text()
    page.locator('[data-testid="stTabs"]').first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    screenshot(page, "trace-tree-error.png", tmp_path)
    assert not dialogs
