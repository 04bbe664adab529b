"""A real browser on the real thing: `spanlake up` (collector + dashboard child) on free loopback
ports, the agent app traced by two real instrumentations sending to it, and Debian's Chromium
driven by Playwright: open the traces page, filter, open a trace, check its conversation and
timeline, check markup in a prompt stays text; label a trace (keyboard submit) and find the label
in the lake, add it to a dataset, freeze it and download exports; then stop `up` and check the
dashboard went too.

Screenshots go to the test's tmp dir; with SPANLAKE_UPDATE_SCREENSHOTS=1 to docs/img/ too.
"""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spanlake.demo.fake_openai import FakeOpenAI
from spanlake.storage.reader import Lake
from tests.analytics.traces import agent_app as app
from tests.analytics.traces.runner import run_agents
from tests.dashboard.conftest import CHROMIUM, screenshot
from tests.net import free_port

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
CONFIGS = ["openai_v2", "openinference"]  # content as log events, and on the spans
PROJECT = "support"
# The fake server answers as `<model>-2025-01-01`; price those (later overrides win).
PRICES = """[[price]]
model = "gpt-4o*"
input_mtok = 2.5
output_mtok = 10.0

[[price]]
model = "gpt-4o-mini*"
input_mtok = 0.15
output_mtok = 0.6
"""
WAIT_S = 60.0


def _chord_until(page: Any, chord: str, text: str, tries: int = 4) -> None:
    """Press a keyboard shortcut until `text` shows. On a loaded machine Streamlit may attach its
    key handler after the page looks ready, and a chord pressed before that is lost; one that did
    land shows `text` within seconds, so it is pressed again only after 10 s without it."""
    for attempt in range(tries):
        page.keyboard.press(chord)
        try:
            page.get_by_text(text).wait_for(timeout=10_000 if attempt < tries - 1 else WAIT_S * 1000)
            return
        except Exception:
            if attempt == tries - 1:
                raise


@dataclass
class Up:
    process: subprocess.Popen[str]
    lines: queue.Queue[str]
    http: str
    dashboard: str
    data_dir: Path
    traces: dict[str, dict[str, str]]


def _read_until(lines: queue.Queue[str], marker: str, seen: list[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"`spanlake up` never printed {marker!r}: {seen}")


def _field(seen: list[str], label: str) -> str:
    line = next(x for x in seen if x.strip().startswith(label))
    return line.split()[len(label.split())]


def _wait_for(check: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data = tmp_path_factory.mktemp("browser") / "data"
    data.mkdir()
    (data / "prices.toml").write_text(PRICES)
    spanlake = Path(sys.executable).parent / "spanlake"
    argv = [str(spanlake), "up", "--data-dir", str(data), "--grpc-port", "0", "--http-port", "0", "--no-demo"]
    argv += ["--dashboard-port", str(free_port())]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        seen: list[str] = []
        _read_until(lines, "Press Ctrl+C", seen)
        http, dashboard = _field(seen, "OTLP/HTTP"), _field(seen, "dashboard")
        with FakeOpenAI() as fake:
            traces, failures = run_agents(CONFIGS, fake.base_url, http, project=PROJECT)
        assert not failures, failures
        ids = [t for per in traces.values() for t in per.values()]
        lake = Lake(data)
        sql = "SELECT count(DISTINCT trace_id) AS n FROM spans WHERE trace_id IN (SELECT unnest($ids))"
        _wait_for(lambda: lake.query(sql, {"ids": ids}).to_pylist()[0]["n"] == len(ids), "the traces in the lake")
        _wait_for(lambda: urllib.request.urlopen(f"{dashboard}/_stcore/health", timeout=2).status == 200, "dashboard")
        yield Up(proc, lines, http, dashboard, data, traces)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def shot(page: object, name: str, tmp: Path, height: int = 1000) -> None:
    """Save a screenshot (Streamlit scrolls inside the page, so a taller viewport shows more)."""
    page.set_viewport_size({"width": 1440, "height": height})  # type: ignore[attr-defined]
    page.wait_for_timeout(800)  # type: ignore[attr-defined]
    screenshot(page, name, tmp)


def test_traces_filter_open_trace(up: Up, browser: object, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(up.dashboard)
    page.get_by_text("6 traces").wait_for(timeout=WAIT_S * 1000)

    box = page.get_by_label("Search inputs and outputs")
    box.fill("weather in paris")
    box.press("Enter")
    page.get_by_text("2 traces", exact=False).wait_for(timeout=WAIT_S * 1000)
    page.wait_for_timeout(500)
    shot(page, "traces.png", tmp_path)

    grid = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    assert grid is not None
    page.mouse.click(grid["x"] + 16, grid["y"] + 35 + 17)  # the first row's selection cell
    page.wait_for_url("**/trace?**", timeout=WAIT_S * 1000)
    page.get_by_text("Timeline").wait_for(timeout=WAIT_S * 1000)
    trace_id = page.url.split("trace=")[1].split("&")[0]
    assert trace_id in {up.traces[c]["tool_roundtrip"] for c in CONFIGS}

    for text in (app.SYSTEM, app.WEATHER, f"Fake reply: {app.WEATHER}", "tool call: get_weather (call_fake_0)"):
        page.get_by_text(text, exact=True).first.wait_for(timeout=WAIT_S * 1000)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for(timeout=WAIT_S * 1000)
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    size = chart.bounding_box()
    assert size is not None and size["height"] > 150  # one bar per span (7 spans)
    labels = chart.locator("svg text, canvas")
    assert labels.count() > 0
    shot(page, "trace.png", tmp_path, height=1900)

    # The same trace from its shareable URL alone, in a fresh page.
    other = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    other.goto(f"{up.dashboard}/trace?trace={trace_id}")
    other.get_by_text(app.WEATHER, exact=True).first.wait_for(timeout=WAIT_S * 1000)
    other.close()
    assert not dialogs


def test_markup_in_prompts_stays_text(up: Up, browser: object) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for config in CONFIGS:
        page.goto(f"{up.dashboard}/trace?trace={up.traces[config]['fallback']}")
        page.get_by_text(app.MARKUP, exact=True).first.wait_for(timeout=WAIT_S * 1000)
        page.wait_for_timeout(1000)
        assert page.locator("b", has_text="bold").count() == 0  # not rendered as HTML
        scripts = page.evaluate("[...document.scripts].map(s => s.textContent).join('\\n')")
        assert "alert('x')" not in scripts
    assert not dialogs


def test_overview_and_sessions_pages(up: Up, browser: object, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    page.goto(f"{up.dashboard}/overview")
    page.get_by_text("Validation failure rate").first.wait_for(timeout=WAIT_S * 1000)
    page.get_by_text("Trend (per").wait_for(timeout=WAIT_S * 1000)
    try:
        page.get_by_text("33.3%").first.wait_for(timeout=WAIT_S * 1000)  # 2 of 6 tasks succeeded
    except Exception as e:
        raise AssertionError(page.locator('[data-testid="stMain"]').inner_text()[:2000]) from e
    shot(page, "overview.png", tmp_path)
    page.goto(f"{up.dashboard}/sessions?session=openai_v2-A")
    page.get_by_text("Session openai_v2-A").wait_for(timeout=WAIT_S * 1000)


HOSTILE_NOTE = "<img src=x onerror=alert(1)><script>window.__xss = 1</script> **not bold**"


def _pick(page: object, label: str, option: str) -> None:
    """Choose `option` in the Streamlit selectbox labelled `label`."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first  # type: ignore[attr-defined]
    box.click()
    page.get_by_role("option", name=option, exact=True).click()  # type: ignore[attr-defined]


def _main_text(page: object) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()[:3000]  # type: ignore[attr-defined,no-any-return]


def test_label_add_to_dataset_and_export(up: Up, browser: object, tmp_path: Path) -> None:
    """Runs after the overview test: it labels a trace that already failed, so figures stay."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)  # type: ignore[attr-defined]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    trace_id = up.traces["openai_v2"]["fallback"]
    page.goto(f"{up.dashboard}/trace?trace={trace_id}&project={PROJECT}")
    page.get_by_text("Type your name under Reviewer").first.wait_for(timeout=WAIT_S * 1000)
    reviewer = page.get_by_role("textbox", name="Reviewer")
    reviewer.fill("ana")
    reviewer.press("Enter")
    form = page.locator('[data-testid="stForm"]').filter(has_text="Verdict").first
    form.wait_for(timeout=WAIT_S * 1000)
    form.scroll_into_view_if_needed()
    form.locator('[data-testid="stRadio"]').get_by_text("fail", exact=True).click()
    _pick(page, "Failure mode", "format_error")
    note = form.get_by_role("textbox", name="Note")
    note.fill(HOSTILE_NOTE)
    note.press("Control+Enter")  # the keyboard submits the form (once)
    try:
        page.get_by_text("Label saved by ana").wait_for(timeout=WAIT_S * 1000)
    except Exception as e:
        raise AssertionError(_main_text(page)) from e
    lake = Lake(up.data_dir)
    rows = lake.query("SELECT * FROM labels WHERE trace_id = $t", {"t": trace_id}).to_pylist()
    assert [(r["author"], r["source"], r["verdict"], r["failure_mode"], r["comment"]) for r in rows] == [
        ("ana", "human", "fail", "format_error", HOSTILE_NOTE)
    ]
    page.wait_for_timeout(1500)  # a second submission would have landed by now
    assert lake.query("SELECT count(*) AS n FROM labels WHERE trace_id = $t", {"t": trace_id}).to_pylist()[0]["n"] == 1
    page.get_by_text(HOSTILE_NOTE, exact=True).first.wait_for(timeout=WAIT_S * 1000)  # the history, as text
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src=x]").count() == 0

    box = page.get_by_role("textbox", name="New dataset name")
    box.fill("browser-picks")
    page.get_by_role("button", name="Add to dataset").click()
    page.get_by_text("Added the trace to dataset").wait_for(timeout=WAIT_S * 1000)
    members = "SELECT trace_id FROM dataset_events WHERE dataset = 'browser-picks' AND op = 'add'"
    assert [r["trace_id"] for r in lake.query(members).to_pylist()] == [trace_id]

    page.goto(f"{up.dashboard}/datasets")
    page.get_by_text("Pick a project in the sidebar").first.wait_for(timeout=WAIT_S * 1000)
    _pick(page, "Project", PROJECT)
    page.get_by_text("Items (1)").wait_for(timeout=WAIT_S * 1000)
    page.get_by_role("textbox", name="Reviewer").fill("ana")
    page.get_by_role("textbox", name="Reviewer").press("Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Freeze a version").click()
    page.get_by_text("Froze new version v1 (1 examples).").wait_for(timeout=WAIT_S * 1000)
    for fmt, name in (("jsonl", "browser-picks-v1.jsonl"), ("csv", "browser-picks-v1.csv")):
        with page.expect_download(timeout=WAIT_S * 1000) as info:
            page.get_by_role("button", name=fmt, exact=True).click()
        assert info.value.suggested_filename == name
        path = tmp_path / name
        info.value.save_as(path)
        text = path.read_text()
        assert trace_id in text and "format_error" in text, (fmt, text[:500])
    shot(page, "datasets.png", tmp_path, height=1400)

    page.goto(f"{up.dashboard}/queue")
    page.get_by_text("Pick a project in the sidebar").first.wait_for(timeout=WAIT_S * 1000)
    _pick(page, "Project", PROJECT)
    page.get_by_role("textbox", name="Reviewer").fill("bob")
    page.get_by_role("textbox", name="Reviewer").press("Enter")
    page.get_by_text("0 of 6 labelled by bob").wait_for(timeout=WAIT_S * 1000)
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text=re.compile(r"^trace [0-9a-f]{32}"))
    first = caption.first.inner_text()
    page.locator("h3").first.click()  # out of the Reviewer box: shortcuts skip inputs
    page.keyboard.press("Alt")  # Streamlit's key handler drops the first chord after a page load; prime it
    try:
        _chord_until(page, "Alt+P", "1 of 6 labelled by bob")  # pass & next, from the keyboard
    except Exception as e:
        page.screenshot(path=str(tmp_path / "queue-failed.png"))
        raise AssertionError(f"{tmp_path}: {_main_text(page)}") from e
    page.get_by_role("button", name="Pass & next").wait_for(timeout=WAIT_S * 1000)
    page.wait_for_timeout(1500)  # the next trace's form (and its shortcuts) is in place
    page.keyboard.press("Alt")
    _chord_until(page, "Alt+P", "2 of 6 labelled by bob")
    bobs = lake.query("SELECT trace_id, verdict FROM labels WHERE author = 'bob'").to_pylist()
    assert len(bobs) == 2 and {r["verdict"] for r in bobs} == {"pass"}
    assert any(r["trace_id"] in first for r in bobs)  # the first in the queue was labelled, then the next
    shot(page, "labelling.png", tmp_path, height=1500)
    assert not dialogs


def test_stopping_up_stops_the_dashboard(up: Up) -> None:
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(30) == 0
    host, port = up.dashboard.removeprefix("http://").split(":")

    def closed() -> bool:
        with socket.socket() as s:
            return s.connect_ex((host, int(port))) != 0

    _wait_for(closed, "the dashboard port to close")
