"""The Budgets page and the Overview's alert banners, with Streamlit's AppTest, over a data
directory whose alert files the real engine wrote from real evaluations of a designed lake
(tests/dashboard/budgets_data.py: every figure below is worked out by hand there)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.testing.v1 import AppTest

from spanlake.analytics.budgets.definition import budget_from_dict
from spanlake.analytics.traces.links import parse_link
from spanlake.dashboard import budget_status
from tests.dashboard.budgets_data import FAILED_IN_SCOPE, BudgetsDir, build
from tests.dashboard.conftest import APP, TIMEOUT_S
from tests.dashboard.test_pages import elements

Open = Callable[..., AppTest]


@pytest.fixture(scope="module")
def budgets_dir(tmp_path_factory: pytest.TempPathFactory) -> BudgetsDir:
    return build(tmp_path_factory.mktemp("budgets") / "data")


@pytest.fixture
def open_page(monkeypatch: pytest.MonkeyPatch) -> Open:
    """open_page(data_dir, page, project, **query): the app on `page` of `project` (None: all)."""
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "off")

    def open_(data_dir: Path, page: str = "budgets", project: str | None = "shop", **query: Any) -> AppTest:
        monkeypatch.setenv("SPANLAKE_DATA_DIR", str(data_dir))
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
        if project is not None:
            at.sidebar.selectbox(key="global_project").set_value(project).run()
        at.query_params.update(query)
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_


def plain(markdown: str) -> str:
    """Markdown as the reader sees it, links left as they are (the page escapes names and scopes)."""
    return re.sub(r"\\(.)", r"\1", markdown.replace("**", ""))


def metrics_of(block: Any) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in block.metric]


def of_type(block: Any, kind: str) -> list[Any]:
    return [e for e in elements(block) if e.type == kind]


def utc(t: Any) -> str:
    return f"{t:%Y-%m-%d %H:%M} UTC"


def test_budgets_in_order_with_figures_in_their_units(open_page: Open, budgets_dir: BudgetsDir) -> None:
    at = open_page(budgets_dir.root)
    assert metrics_of(at)[:4] == [("Budgets", "4"), ("Firing", "1"), ("Pending", "0"), ("No data", "1")]
    headers = [e.label for e in at.expander]
    assert headers == [
        ":red-badge[:material/notifications_active: firing · critical] **answer-errors** · error rate · task answer"
        " · 1h",
        ":gray-badge[no data] **lookup-success** · success rate · task lookup · 1h",
        ":green-badge[:material/check: ok] **answer-cost** · cost per successful task · task answer · 1h",
        ":green-badge[:material/check: ok] **answer-p95** · p95 latency · task answer · 1h",
    ]  # open alerts first, then no data, then ok; project `other`'s budget is not on shop's page
    assert [e.proto.expanded for e in at.expander] == [True, False, False, False]
    errors, lookup, cost, p95 = at.expander
    evaluated = utc(budgets_dir.last)
    assert metrics_of(errors) == [("Error rate (1h)", "75.0%"), ("Warning at", "20.0%"), ("Critical at", "50.0%"),
                                  ("Samples", "4")]  # fmt: skip
    assert plain(errors.caption[0].value) == (
        f"75.0% is above the critical threshold 50.0% · scope: task answer · evaluated {evaluated}"
    )
    assert metrics_of(cost) == [("Cost per successful task (1h)", "$0.008"), ("Warning at", "$0.01"),
                                ("Critical at", "$0.02"), ("Samples", "4")]  # fmt: skip
    assert plain(cost.caption[0].value).startswith("$0.008: within the thresholds · scope: task answer")
    assert metrics_of(p95) == [("P95 latency (1h)", "740 ms"), ("Warning at", "3.00 s"), ("Critical at", "5.00 s"),
                               ("Samples", "4")]  # fmt: skip
    assert metrics_of(lookup) == [("Success rate (1h)", "-"), ("Warning at", "90.0%"), ("Critical at", "80.0%"),
                                  ("Samples", "0")]  # fmt: skip
    assert plain(lookup.caption[0].value).startswith("no data: 0 tasks, fewer than 5 · scope: task lookup")
    assert [b.proto.label for b in of_type(lookup, "link_button")] == ["Open its traces"]
    assert any("No figure in the last 24 h" in c.value for c in lookup.caption)  # no trend to draw


def test_alert_history_and_trend_of_the_firing_budget(open_page: Open, budgets_dir: BudgetsDir) -> None:
    errors = open_page(budgets_dir.root).expander[0]
    history = errors.dataframe[0].value
    assert history.to_dict("records") == [
        {"when": utc(budgets_dir.at(15)), "event": "escalated", "severity": "critical", "notified": True,
         "figure": "66.7%", "why": "66.7% is above the critical threshold 50.0%"},
        {"when": utc(budgets_dir.at(25)), "event": "firing", "severity": "warning", "notified": True,
         "figure": "50.0%", "why": "50.0% is above the warning threshold 20.0%"},
    ]  # fmt: skip
    [chart] = of_type(errors, "vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    line, points, *rules = spec["layer"]
    assert [round(v["figure"], 4) for v in line["data"]["values"]] == [0.5, 0.6667, 0.75]  # E1, E2, E3
    assert [v["level"] for v in points["data"]["values"]] == ["warning", "critical", "critical"]
    drawn = {(r["mark"]["type"], r["data"]["values"][0]["what"], r["data"]["values"][0]["y"]) for r in rules}
    assert drawn == {("rule", "warning", 0.2), ("rule", "critical", 0.5), ("text", "warning", 0.2),
                     ("text", "critical", 0.5)}  # fmt: skip
    assert line["encoding"]["y"]["axis"]["format"] == ".0%" and line["encoding"]["x"]["scale"]["type"] == "utc"


def test_the_link_opens_the_failed_traces_of_the_budget_window(
    open_page: Open, budgets_dir: BudgetsDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = open_page(budgets_dir.root).expander[0]
    [button] = of_type(errors, "link_button")
    assert button.proto.label == "Open the traces that break it"
    url = urlsplit(button.proto.url)
    assert url.path == "./traces"
    link = parse_link(parse_qs(url.query))
    assert link is not None and not link.problems
    f = link.filters
    assert (f.project, f.task_name, f.outcome, link.sort) == ("shop", "answer", "failure", "start_time")
    assert (f.since, f.until) == (budgets_dir.last - timedelta(hours=1), budgets_dir.last)
    assert (f.service, f.model, f.provider, f.prompt_name, f.prompt_version, f.attributes) == (
        None, None, None, None, None, {}
    )  # fmt: skip

    # the Traces page at that link: exactly shop's failed `answer` tasks of the window, newest first
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(budgets_dir.root))
    traces = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    traces.query_params.update(parse_qs(url.query))
    traces.run()
    assert not traces.exception, [e.value for e in traces.exception]
    assert list(traces.dataframe[0].value["trace_id"]) == FAILED_IN_SCOPE


def test_deliveries_not_made(open_page: Open, budgets_dir: BudgetsDir) -> None:
    at = open_page(budgets_dir.root)
    assert at.subheader[-1].value == "Deliveries not made"
    rows = at.dataframe[-1].value.to_dict("records")
    assert [(r["status"], r["budget"], r["event"], r["destination"], r["attempts"]) for r in rows] == [
        ("failed", "answer-errors", "escalated", "ops-hook", 1),
        ("failed", "answer-errors", "firing", "ops-hook", 1),
    ]  # newest first; project other's failed delivery is not shop's
    assert all("Connection refused" in r["last error"] for r in rows)
    everyone = open_page(budgets_dir.root, project=None).dataframe[-1].value
    assert sorted(everyone["budget"]) == ["other/errors", "shop/answer-errors", "shop/answer-errors"]


def test_all_projects_lists_each_budget_with_its_project(open_page: Open, budgets_dir: BudgetsDir) -> None:
    at = open_page(budgets_dir.root, project=None)
    names = [re.search(r"\*\*(.+?)\*\*", e.label).group(1) for e in at.expander]  # type: ignore[union-attr]
    # critical before warning; `other / errors` fired at warning (1/1 above 0.1, no critical threshold)
    assert [re.sub(r"\\(.)", r"\1", n) for n in names] == [
        "shop / answer-errors", "other / errors", "shop / lookup-success", "shop / answer-cost", "shop / answer-p95"
    ]  # fmt: skip
    assert metrics_of(at.expander[1])[0] == ("Error rate (1h)", "100.0%")


def test_a_broken_budgets_file_is_named_and_the_last_states_stay(
    open_page: Open, budgets_dir: BudgetsDir, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    shutil.copytree(budgets_dir.root, root)
    lines = (root / "budgets.toml").read_text().count("\n")
    with open(root / "budgets.toml", "a") as f:
        f.write('\n[[budget]]\nname = "typo"\nmetric = "p95_latency"\nwindow = "0s"\nwarning = 1\n')
    at = open_page(root)
    assert "does not parse" in at.error[0].value
    assert f"line {lines + 2}: budget 'typo': window must be longer than 0" in plain(at.error[0].value)
    assert not at.expander
    assert at.subheader[0].value == "Last known alert states"
    states = at.dataframe[0].value
    assert list(zip(states["budget"], states["state"], states["alert open"], strict=True)) == [
        ("shop/answer-errors", "firing", True),
        ("shop/answer-cost", "ok", False),
        ("shop/answer-p95", "ok", False),
        ("shop/lookup-success", "no data", False),
    ]
    assert at.subheader[-1].value == "Deliveries not made" and len(at.dataframe[-1].value) == 2
    overview = open_page(root, "overview")  # the open alert still heads the Overview
    assert [plain(e.value) for e in overview.error] == [
        "Budget shop/answer-errors has an open critical alert. [All budgets](./budgets)"
    ]


def test_no_budgets(open_page: Open, seeded_dir: Path) -> None:
    at = open_page(seeded_dir)
    assert not at.expander and not at.error
    assert at.info[0].value.startswith("No budgets for project shop yet. Add one")


def test_the_overview_heads_with_open_alerts_only(open_page: Open, budgets_dir: BudgetsDir) -> None:
    at = open_page(budgets_dir.root, "overview")
    first = at.main.children[1]  # right under the title, before the filters and figures
    assert first.type == "error" and "answer-errors" in first.value
    assert [plain(e.value) for e in at.error] == [
        "Budget answer-errors is firing (critical): error rate, 75.0% is above the critical threshold 50.0%. "
        f"[Open the traces that break it]({page_link(open_page, budgets_dir)}) · [All budgets](./budgets)"
    ]
    assert not at.warning  # the ok budgets and the other project's warning are not here

    everyone = open_page(budgets_dir.root, "overview", project=None)
    assert [plain(e.value).split(":")[0] for e in everyone.error] == [
        "Budget shop / answer-errors is firing (critical)"
    ]
    assert [plain(e.value).split(":")[0] for e in everyone.warning] == ["Budget other / errors is firing (warning)"]


def page_link(open_page: Open, budgets_dir: BudgetsDir) -> str:
    """The Budgets page's link to the firing budget's traces (the Overview's must be the same)."""
    [button] = of_type(open_page(budgets_dir.root).expander[0], "link_button")
    return str(button.proto.url)


def test_budgets_the_server_has_not_evaluated_yet(open_page: Open, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "budgets.toml").write_text(
        '[[budget]]\nname = "p95"\nproject = "shop"\nmetric = "p95_latency"\nwindow = "15m"\nwarning = 2500\n'
    )
    at = open_page(root, project=None)
    assert at.info[0].value.startswith("Not evaluated yet: the server (`spanlake up`) evaluates budgets")
    [budget] = at.expander
    assert budget.label == ":gray-badge[not evaluated yet] **shop / p95** · p95 latency · 15m"
    assert metrics_of(budget) == [("P95 latency (15m)", "-"), ("Warning at", "2.50 s"), ("Critical at", "-"),
                                  ("Samples", "-")]  # fmt: skip
    assert plain(budget.caption[0].value) == "not evaluated yet · scope: the whole project"
    [button] = of_type(budget, "link_button")
    link = parse_link(parse_qs(urlsplit(button.proto.url).query))
    assert link is not None and link.sort == "duration_ms" and link.filters.outcome is None  # slowest first
    assert link.filters.until - link.filters.since == timedelta(minutes=15)  # type: ignore[operator]


def test_a_long_scope_is_shortened_in_the_header_and_shown_as_written() -> None:
    scope = {"model": "gpt-4o[mini]", "attributes": {"tenant": "acme_*corp*", "region": "eu-west-" + "x" * 60}}
    b = budget_from_dict({"name": "p95", "metric": "p95_latency", "window": "15m", "warning": 1, **scope}, "shop")
    full = "model gpt-4o[mini] · tenant = acme_*corp* · region = eu-west-" + "x" * 60
    assert budget_status.scope_text(b) == full
    header = budget_status.header(budget_status.BudgetStatus(b, None), with_project=False)
    shown = header.split("** · p95 latency · ", 1)[1].rsplit(" · 15m", 1)[0]
    assert shown == budget_status.md_text(full[:59].rstrip() + "…")
    assert plain(shown) == full[:59] + "…" and "\\[" in shown and "\\*corp\\*" in shown  # never markup


def test_damaged_alert_files_never_break_the_page(open_page: Open, budgets_dir: BudgetsDir, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(budgets_dir.root, root)
    alerts = root / "alerts"
    (alerts / "state.json").write_text("garbage{")
    with open(alerts / "readings.jsonl", "a") as f:
        f.write('{"at": 5, "key": "shop/answer-errors", "figure": "high"}\n{"torn": \n')
    with open(alerts / "events.jsonl", "a") as f:
        f.write('{"kind": "firing", "key": "shop/answer-errors", "last": {"at": "x", "figure": "high"}}\n')
    at = open_page(root)
    assert [e.label.split("] ", 1)[0] for e in at.expander] == [":gray-badge[not evaluated yet"] * 4  # no state
    errors = next(e for e in at.expander if "answer-errors" in e.label)
    [chart] = of_type(errors, "vega_lite_chart")
    assert len(json.loads(chart.proto.spec)["layer"][0]["data"]["values"]) == 3  # the three real evaluations
    history = errors.dataframe[0].value.to_dict("records")
    assert history[0] == {"when": "", "event": "firing", "severity": "", "notified": False, "figure": "-", "why": ""}
    assert [r["event"] for r in history[1:]] == ["escalated", "firing"]
