"""`spanlake demo` against real collectors: what it stored is what the app did, the same seed
gives the same run, and every report and dashboard view has something true to show."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.demo.tickets import plan
from tests.conftest import RunningCollector, start_collector
from tests.examples.helpers import attr, clean_env, document_ids, finish, popen
from tests.net import free_port

SEED, TICKETS = 7, 40
ARGS = ["--seed", str(SEED), "--tickets", str(TICKETS), "--time-scale", "0.2", "--json", "--quiet"]


def parse(stdout: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo's --json lines: (one row per ticket, one row per feedback)."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [r for r in rows if "feedback" not in r], [r["feedback"] for r in rows if "feedback" in r]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo twice with one seed, at once, each against its own collector."""
    started = [start_collector(tmp_path_factory.mktemp(f"demo{i}") / "data") for i in range(2)]
    try:
        procs = [
            popen(["-m", "spanlake.cli.main", "demo", "--endpoint", c.http, *ARGS], clean_env()) for c, _ in started
        ]
        outs = [finish(p, 180) for p in procs]
        for c, _ in started:
            c.flush()
        (tickets, feedback), (tickets2, feedback2) = parse(outs[0]), parse(outs[1])
        yield {"collector": started[0][0], "stdout": outs[0], "tickets": tickets, "feedback": feedback,
               "tickets2": tickets2, "feedback2": feedback2}  # fmt: skip
    finally:
        for _, stop in started:
            stop()


def test_same_seed_same_run(run: dict[str, Any]) -> None:
    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "trace_id"} for r in rows]

    assert len(run["tickets"]) == TICKETS
    assert strip(run["tickets"]) == strip(run["tickets2"])
    assert strip(run["feedback"]) == strip(run["feedback2"])
    assert plan(SEED, TICKETS) == plan(SEED, TICKETS) and plan(SEED, TICKETS) != plan(SEED + 1, TICKETS)


def test_stored_is_what_the_app_did(run: dict[str, Any]) -> None:
    """Per ticket: task outcome and reason, prompt version, retrieved documents, failed
    validations, fallbacks, escalations; and every feedback as a label."""
    collector: RunningCollector = run["collector"]
    spans = collector.query("SELECT * FROM spans WHERE project = 'demo'")
    assert {r["service_name"] for r in spans} == {"support-assistant"}
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for r in spans:
        by_trace.setdefault(r["trace_id"], []).append(r)
    assert len(by_trace) == TICKETS
    for t in run["tickets"]:
        rows = by_trace[t["trace_id"]]
        (task,) = (r for r in rows if r["category"] == "task")
        assert task["name"] == "answer_ticket" and task["parent_span_id"] is None
        expected = "success" if t["outcome"] == "success" else "failure"
        assert (task["task_outcome"], task["task_outcome_reason"]) == (expected, t["reason"]), t
        assert (task["status_code"] == "ERROR") == (t["outcome"] == "error")
        assert (task["prompt_name"], task["prompt_version"]) == ("support_answer", t["prompt_version"])
        assert attr(task, "ticket.intent") == t["intent"]
        retrieval = [r for r in rows if r["category"] == "retrieval"]
        assert [document_ids(r) for r in retrieval] == ([t["documents"]] if retrieval else [])
        failed = [r["validation_name"] for r in rows if r["validation_passed"] is False]
        assert sorted(failed) == sorted(t["failed_validations"]), t
        names = Counter(r["name"] for r in rows)
        assert names["fallback gpt-4o"] == t["fallbacks"]
        assert sum(n for k, n in names.items() if k.startswith("escalation ")) == t["escalations"]
        assert all(r["session_id"] and r["user_id"] for r in rows)
    labels = collector.query("SELECT trace_id, value, score, comment, author, source FROM labels WHERE project='demo'")
    stored = sorted(repr((lb["trace_id"], lb["value"], lb["score"], lb["comment"], lb["author"])) for lb in labels)
    sent = sorted(repr((f["trace_id"], f["value"], f["score"], f["comment"], f["user_id"])) for f in run["feedback"])
    assert stored == sent and all(f["stored"] for f in run["feedback"])
    assert {lb["source"] for lb in labels} == {"user_feedback"}


def test_the_run_has_variety(run: dict[str, Any]) -> None:
    """Something true for every view: outcomes of all kinds, both prompt versions, failed and passed
    checks, fallbacks, escalations, injected provider errors, streaming, sessions, feedback."""
    tickets, collector = run["tickets"], run["collector"]
    assert set(Counter(t["outcome"] for t in tickets)) == {"success", "failure", "error"}
    assert {t["prompt_version"] for t in tickets} == {"v1", "v2"}
    assert {v for t in tickets for v in t["failed_validations"]} == {"json_schema:Reply", "grounded", "no_pii"}
    assert any(t["fallbacks"] for t in tickets) and any(t["escalations"] for t in tickets)
    assert any(t["documents"] == [] for t in tickets) and any(len(t["documents"]) > 1 for t in tickets)
    llm = collector.query(
        "SELECT request_model, response_model, status_code, error_type, time_to_first_token_ms, duration_ms "
        "FROM spans WHERE project = 'demo' AND category = 'llm'"
    )
    assert {r["request_model"] for r in llm} == {"gpt-4o-mini", "gpt-4o", "llama-3.1-8b-instruct"}
    assert {r["response_model"] for r in llm} >= {"gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"}
    assert any(r["status_code"] == "ERROR" for r in llm)  # an injected 429 or timeout
    assert all(r["time_to_first_token_ms"] > 0 for r in llm if r["request_model"].startswith("llama"))
    tools = collector.query("SELECT tool_name, status_code FROM spans WHERE project = 'demo' AND category = 'tool'")
    assert {r["tool_name"] for r in tools} == {"lookup_order", "get_weather"}
    sessions = Counter(r["session_id"] for r in collector.query(
        "SELECT session_id FROM spans WHERE project = 'demo' AND category = 'task'"))  # fmt: skip
    assert max(sessions.values()) > 1 and len(sessions) > 5
    assert {f["value"] for f in run["feedback"]} == {"up", "down", None}
    assert "What to look at next" in run["stdout"] and "spanlake report compare" in run["stdout"]


REPORTS = [
    ["latency", "-g", "model"],
    ["cost", "-g", "model"],
    ["tasks", "-g", "prompt_version"],
    ["task-list"],
    ["validation", "-g", "validator,prompt_version"],
    ["validation-errors"],
    ["retrieval"],
    ["retrieved-documents"],
    ["compare", "--by", "prompt_version", "--a", "v1", "--b", "v2"],
    ["unpriced"],
]


def test_every_report_has_something_true(run: dict[str, Any]) -> None:
    collector: RunningCollector = run["collector"]
    out: dict[str, list[dict[str, Any]]] = {}
    for args in REPORTS:
        result = CliRunner().invoke(
            cli, ["report", *args, "--project", "demo", "--data-dir", str(collector.data_dir), "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        out[args[0]] = json.loads(result.stdout)  # stderr says which source (rollups or raw) answered
        assert out[args[0]], f"report {args[0]} is empty"
    cost = {r["model"]: r for r in out["cost"]}
    assert cost["gpt-4o-mini"]["cost_usd"] > 0 and cost["gpt-4o"]["cost_usd"] > 0  # priced
    assert [r["model"] for r in out["unpriced"]] == ["llama-3.1-8b-instruct"]  # self-hosted
    v1, v2, diff = out["compare"]
    assert v1["tasks"] + v2["tasks"] == TICKETS and diff["prompt_version"] == "b - a"
    schema = {r["prompt_version"]: r for r in out["validation"] if r["validator"] == "json_schema:Reply"}
    assert schema["v1"]["failure_rate"] > schema["v2"]["failure_rate"]  # v1's 14-token limit cuts JSON
    assert {r["validator"] for r in out["validation-errors"]} == {"json_schema:Reply", "grounded", "no_pii"}
    (help_center,) = out["retrieval"]
    assert help_center["data_source"] == "help-center" and 0 < help_center["empty_rate"] < 1
    levels = {r["level"] for r in out["latency"]}
    assert {"task", "llm", "tool", "retrieval", "guardrail", "chain"} <= levels


def test_dashboard_views_have_content(run: dict[str, Any]) -> None:
    """The functions behind the dashboard's pages: traces, one trace, sessions, overview."""
    from spanlake.analytics.runner import Analytics
    from spanlake.analytics.spans import Filters
    from spanlake.analytics.traces import detail, overview, trace_list
    from spanlake.analytics.traces.filters import TraceFilters

    an = Analytics(run["collector"].data_dir)
    now = datetime.now(UTC)
    window = {"since": now - timedelta(hours=1), "until": now + timedelta(minutes=1), "project": "demo"}
    assert trace_list.count_traces(an, TraceFilters(**window)) == TICKETS
    assert trace_list.count_traces(an, TraceFilters(**window, outcome="failure")) > 0
    assert len(trace_list.list_sessions(an, TraceFilters(**window))) > 5
    escalated = next(t for t in run["tickets"] if "no_pii" in t["failed_validations"])
    d = detail.trace_detail(an, escalated["trace_id"], "demo")
    assert d is not None and d.conversation and d.documents and d.validations and d.markers
    o = overview.overview(an, Filters(**window))
    assert o.current["tasks"] == TICKETS and 0 < o.current["success_rate"] < 1


def test_demo_needs_a_running_spanlake() -> None:
    result = CliRunner().invoke(cli, ["demo", "--endpoint", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1 and "start it with `spanlake up`" in result.output


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Without openai or the instrumentation, `spanlake demo` and `up`'s first start say what to install."""
    from spanlake.cli import demo
    from spanlake.server import demo as first_start

    for module in (demo, first_start):
        monkeypatch.setattr(module, "missing_packages", lambda: ["opentelemetry-instrumentation-openai-v2"])
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 1 and "pip install opentelemetry-instrumentation-openai-v2" in result.output
    first = first_start.FirstStartDemo(tmp_path / "data", None, disabled=False)
    assert first.wanted
    first.start("http://127.0.0.1:4318")
    assert first.process is None and not (tmp_path / "data" / "demo.log").exists()


def test_dashboard_pages_render(run: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each dashboard page, run with Streamlit's AppTest on the demo's lake, shows demo data."""
    from streamlit.testing.v1 import AppTest

    from tests.examples.helpers import ROOT

    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(run["collector"].data_dir))
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "off")  # AppTest binds no address: auto would ask to sign in
    escalated = next(t for t in run["tickets"] if "no_pii" in t["failed_validations"])

    def page(name: str | None = None, **query: str) -> AppTest:
        at = AppTest.from_file(ROOT / "dashboard" / "streamlit_app.py", default_timeout=60).run()
        at.sidebar.selectbox(key="global_project").set_value("demo").run()
        if name is not None:
            at.query_params.update(query)
            at.switch_page(f"app_pages/{name}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    assert page().caption[0].value.startswith(f"{TICKETS} traces")
    trace: dict[str, str] = {}
    for m in page("trace", trace=escalated["trace_id"], project="demo").metric:
        trace.setdefault(m.label, m.value)  # the trace's figures come first, then the selected span's
    assert int(trace["LLM calls"]) >= 2 and trace["Cost"].startswith("$")
    assert len(page("sessions").dataframe[0].value) > 5
    assert {m.label: m.value for m in page("overview").metric}["Tasks"] == str(TICKETS)
    assert len(page("reports").dataframe[0].value) > 0


def test_first_start_is_local_and_empty_only(tmp_path: Any) -> None:
    from spanlake.server.demo import FirstStartDemo, lake_is_empty

    assert lake_is_empty(tmp_path / "new", None)
    assert not lake_is_empty(tmp_path / "new", "s3://bucket/lake")  # shared: a deployment, not a first try
    (tmp_path / "replay" / "wal").mkdir(parents=True)
    (tmp_path / "replay" / "wal" / "1-a.wal").write_bytes(b"x")
    assert not lake_is_empty(tmp_path / "replay", None)  # the log will be replayed into the lake
    assert not FirstStartDemo(tmp_path / "new", None, disabled=True).wanted


def test_first_start_declares_the_demos_evaluators(tmp_path: Any) -> None:
    """The demo's evaluators file parses; its judge is the URL given, its template shows the fake
    judge the documents and the answer; a file already there is left alone."""
    from spanlake.evaluators.definition import parse
    from spanlake.server.demo import FirstStartDemo

    first = FirstStartDemo(tmp_path, None, disabled=False)
    assert first.write_evaluators("http://127.0.0.1:5/v1")
    found = parse((tmp_path / "evaluators.toml").read_text(), "default")
    judge = found.get("demo", "groundedness")
    assert (judge.kind, judge.params["base_url"], judge.params["model"]) == (
        "llm_judge", "http://127.0.0.1:5/v1", "judge-grounded"
    )  # fmt: skip
    assert "\nDocuments:\n{documents}\nAnswer:\n{output}" in judge.params["template"]
    assert found.get("demo", "reply_json").kind == "json_schema"
    (rule,) = found.rules
    assert (rule.evaluators, rule.sample, rule.target, rule.queue_when) == (
        ("groundedness", "reply_json"), 1.0, "trace", "fail"
    )  # fmt: skip
    (tmp_path / "evaluators.toml").write_text("# the team's own\n")
    assert not first.write_evaluators("http://127.0.0.1:6/v1")
    assert (tmp_path / "evaluators.toml").read_text() == "# the team's own\n"
