"""How long the trace view takes to render a big agent run in a real browser (issue 18).

    python bench/trace_view_render.py [--runs 5] [--data-dir /tmp/spanlake-agent-bench]

Builds (once; reused when present) the data directory of tests/dashboard/agent_trace.py: the
300-span agent run and its 2,011-span sibling (170 turns), written through the collector's
decoder and the lake writer. Starts `spanlake dashboard` on a free loopback port and drives
Debian's Chromium with Playwright, a fresh page per run, 1920 x 1000 (the dashboard's query
cache is warm after the first run, as when someone opens a trace twice within 30 s):

  load         navigation → the span tree's rows in the grid, the script idle
  open all     "Open to depth: all" → every span a row
  close turn   turn 3's open/close button → its 19 spans gone
  filter tool  the `tool` pill → the tools and their ancestors
  next error   "Next error" → the failed call's detail

and, for reference, the Trace page without a trace (the app starting in the browser). Each
figure is the median of --runs, with min-max; the load average and CPU are printed with them.
Expected row counts come from dashboard/span_tree.py's rules on the trace itself. Apart from
the browser, the Python the Spans tab runs per rerun is timed alone: the tree built and every
row of the grid made (`trace_tree._frame`, its timeline bars included), all open.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the agent run is the trace view tests' fixture (tests/dashboard/agent_trace.py)

from spanlake.analytics.runner import Analytics  # noqa: E402
from spanlake.analytics.traces.detail import trace_detail  # noqa: E402
from spanlake.dashboard.span_tree import SpanTree, TreeView  # noqa: E402
from spanlake.dashboard.trace_tree import default_depth, grid_frame  # noqa: E402
from spanlake.storage.layout import DataDir  # noqa: E402
from tests.dashboard.agent_trace import BIG_TRACE, PROJECT, TRACE, write_agent_lake  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
GRID = '[data-testid="stDataFrame"] [role="grid"]'
WAIT_MS = 180_000
ROW_PX, HEADER_PX, OPEN_COLUMN_PX = 30, 33, 61  # as tests/dashboard/test_trace_tree_browser.py
TURN3_ROW = 11  # all open: the task, the agent, turn 1 and its 3 spans, turn 2 and its 4


def rows_shown(page: Page, n: int) -> None:
    page.locator(f'{GRID}[aria-rowcount="{n + 1}"]').wait_for(state="attached", timeout=WAIT_MS)
    page.locator(IDLE).wait_for(state="attached", timeout=WAIT_MS)


def timed(action: Callable[[], None]) -> float:
    t = time.perf_counter()
    action()
    return time.perf_counter() - t


def expected(data_dir: Path, trace: bytes) -> dict[str, int]:
    """Rows the grid shows: opened as it opens, all open, turn 3 closed, the tool filter."""
    d = trace_detail(Analytics(data_dir), trace.hex(), PROJECT)
    assert d is not None
    python = []
    for _ in range(5):
        t = time.perf_counter()
        tree = SpanTree(d.spans)
        grid_frame(tree, tree.visible(TreeView()), TreeView(), d.duration_ms)
        python.append(time.perf_counter() - t)
    print(
        f"{len(d.spans):,} spans: the tree and all its rows in Python, median of 5: {statistics.median(python):.3f} s"
    )
    depth = default_depth(tree)
    turn3 = next(s["span_id"] for s in d.spans if s["name"] == "turn 3")
    return {
        "spans": len(d.spans),
        "load": len(tree.visible(TreeView(depth=None if depth == "all" else int(depth)))),
        "all": len(d.spans),
        "close": len(tree.visible(TreeView(toggled={turn3: False}))),
        "tool": len(tree.visible(TreeView(toggled={turn3: False}, categories=frozenset({"tool"})))),
    }


def one_run(page: Page, url: str, trace: bytes, want: dict[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    out["load"] = timed(lambda: (page.goto(f"{url}/trace?trace={trace.hex()}&project={PROJECT}"),
                                 rows_shown(page, want["load"])))  # fmt: skip
    page.locator('[data-testid="stTabs"]').first.scroll_into_view_if_needed()
    depth = page.locator('[data-testid="stButtonGroup"]').filter(has_text="Open to depth")
    out["open all"] = timed(lambda: (depth.get_by_text("all", exact=True).click(), rows_shown(page, want["all"])))
    box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    assert box is not None
    x, y = box["x"] + OPEN_COLUMN_PX, box["y"] + HEADER_PX + TURN3_ROW * ROW_PX + ROW_PX / 2
    out["close turn"] = timed(lambda: (page.mouse.click(x, y), rows_shown(page, want["close"])))
    pill = page.get_by_role("button", name="tool ", exact=False).first
    out["filter tool"] = timed(lambda: (pill.click(), rows_shown(page, want["tool"])))
    pill.click()
    rows_shown(page, want["close"])
    out["next error"] = timed(lambda: next_error(page))
    return out


def next_error(page: Page) -> None:
    page.get_by_role("button", name="Next error").click()
    page.get_by_text("Status message: 429 Too Many Requests").wait_for(timeout=WAIT_MS)
    page.locator(IDLE).wait_for(state="attached", timeout=WAIT_MS)


def blank_page(page: Page, url: str) -> float:
    return timed(lambda: (page.goto(f"{url}/trace"), page.get_by_text("Open a trace from").wait_for(timeout=WAIT_MS),
                          page.locator(IDLE).wait_for(state="attached", timeout=WAIT_MS)))  # fmt: skip


def cpu() -> str:
    try:
        return next(x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                    if x.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/spanlake-agent-bench"))
    args = ap.parse_args()
    if not (DataDir(args.data_dir).lake / "spans").is_dir():
        write_agent_lake(args.data_dir, big=True)
    wants = {trace: expected(args.data_dir, trace) for trace in (TRACE, BIG_TRACE)}
    spanlake = str(Path(sys.executable).parent / "spanlake")
    cmd = [spanlake, "dashboard", "--data-dir", str(args.data_dir), "--port", "0", "--dashboard-auth", "off"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = next(line for line in proc.stdout if "spanlake dashboard:" in line).split()[2]  # type: ignore[union-attr]
        print(f"{os.cpu_count()} x {cpu()}; load average at the start {os.getloadavg()}")
        print(f"python bench/trace_view_render.py --runs {args.runs}  ({url})\n")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            figures: dict[str, dict[str, list[float]]] = {}
            blank: list[float] = []
            for _ in range(args.runs):
                for trace, want in wants.items():
                    page = browser.new_page(viewport={"width": 1920, "height": 1000})
                    for name, seconds in one_run(page, url, trace, want).items():
                        figures.setdefault(f"{want['spans']:,} spans", {}).setdefault(name, []).append(seconds)
                    page.close()
                page = browser.new_page(viewport={"width": 1920, "height": 1000})
                blank.append(blank_page(page, url))
                page.close()
            browser.close()
        print("| trace | step | median (s) | min-max (s) | rows |")
        print("|---|---|---:|---:|---:|")
        for (label, steps), want in zip(figures.items(), wants.values(), strict=True):
            rows = {"load": want["load"], "open all": want["all"], "close turn": want["close"],
                    "filter tool": want["tool"], "next error": want["close"]}  # fmt: skip
            for step, xs in steps.items():
                print(
                    f"| {label} | {step} | {statistics.median(xs):.2f} | {min(xs):.2f}-{max(xs):.2f} | {rows[step]:,} |"
                )
        print(f"| (no trace) | load | {statistics.median(blank):.2f} | {min(blank):.2f}-{max(blank):.2f} | |")
        print(f"\nload average at the end {os.getloadavg()}")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
