"""The real `google-genai` client through opentelemetry-instrumentation-google-genai (the official
OTel one) → real OTLP exporters (traces, logs, metrics) → the real collector.

The library cannot share .venv: it needs opentelemetry-util-genai >= 1.x, and openai-v2 2.4b0
there needs 0.4b0. So the instrumented client (tests/collector/instrumented_gemini.py) runs
with the python of .venv-google-genai (scripts/venv-google-genai pins it) against spanlake's
fake Gemini server, one process per content-capture mode, all at once. Expected numbers come
from the fake server's documented rule (worked out in test_instrumentations_gemini.py, same
scenarios); the cost from genai-prices' `calc_price`, computed here.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from spanlake.analytics.reports.genai_metrics import DURATION, TOKEN_USAGE
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_details
from spanlake.demo.fake_gemini import FakeGemini
from tests.collector import instrumented_gemini as client
from tests.collector.instrumented_runs import (
    Launch,
    Runs,
    check_observed,
    observed_keys,
    observed_lines,
    run_configurations,
)
from tests.collector.test_instrumentations_gemini import CHAT, EXPECTED, REPLY

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "instrumentations.md"
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
EMIT_EVENT = "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"
EPOCH = datetime.fromtimestamp(0, UTC)
DETAILS = "gen_ai.client.inference.operation.details"  # the one log record per call
CONTENT_KEYS = {
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.definitions",
}


@dataclass(frozen=True)
class Config:
    """One content-capture mode of the library, and where it was observed to put the messages."""

    protocol: str
    env: dict[str, str] = field(default_factory=dict)
    span_content: bool = False  # gen_ai.*.messages on the span (the `content` column)
    log_content: bool = False  # ... as attributes of the call's log record
    metrics: bool = False
    scenarios: tuple[str, ...] = client.SCENARIOS


CONFIGS = {
    # The default: no content anywhere; the log record still comes, with the span's attributes.
    "otel": Config("http", metrics=True),
    # Content on spans. EMIT_EVENT=false does not stop the log record: instrument() sets it to true.
    "otel_span": Config("grpc", {CAPTURE: "span_only", EMIT_EVENT: "false"}, span_content=True),
    "otel_event": Config("http", {CAPTURE: "event_only"}, log_content=True),
    # `true` (openai-v2's default mode takes it) is no mode of util-genai 1.x: no content.
    "otel_true": Config("grpc", {CAPTURE: "true"}, scenarios=("chat",)),
}
MODES = [name for name, c in CONFIGS.items() if c.scenarios == client.SCENARIOS]


LIBRARY = ("google.genai", "opentelemetry.instrumentation.google_genai", "opentelemetry.exporter.otlp.proto.grpc")


def _has_library(python: str) -> bool:
    code = f"import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in {LIBRARY!r}))"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def genai_python() -> str:
    """A python with opentelemetry-instrumentation-google-genai: `SPANLAKE_GOOGLE_GENAI_PYTHON`,
    else .venv-google-genai (skips when neither has it; under SPANLAKE_REQUIRE_ALL_TESTS=1 that fails)."""
    local = ROOT / ".venv-google-genai" / "bin" / "python"
    for python in (os.environ.get("SPANLAKE_GOOGLE_GENAI_PYTHON"), str(local)):
        if python and Path(python).exists() and _has_library(python):
            return python
    pytest.skip("opentelemetry-instrumentation-google-genai not installed: run scripts/venv-google-genai")


@pytest.fixture(scope="module")
def runs(genai_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    def launch(fake: FakeGemini, name: str, config: Config) -> Launch:
        argv = [genai_python, "-m", "tests.collector.instrumented_gemini", "otel", "--url", fake.url]
        argv += ["--metrics"] if config.metrics else []
        argv += ["--scenarios", ",".join(config.scenarios)]
        # PYTHON*: nothing of this interpreter's setup (PYTHONPATH...) may reach the other venv
        return Launch(argv, config.protocol, ("OTEL_", "GOOGLE_", "GEMINI_", "PYTHON"), config.env)

    with run_configurations(tmp_path_factory.mktemp("gemini-otel") / "data", FakeGemini(), CONFIGS, launch) as r:
        yield r


@pytest.fixture(params=MODES)
def config(request: pytest.FixtureRequest) -> str:
    return request.param


def _by_scenario(runs: Runs, config: str, sql: str) -> dict[str, list[dict[str, Any]]]:
    """Rows of `sql` (over the config's project, with a trace_id column), by scenario."""
    scenario = {runs.trace(config, s): s for s in CONFIGS[config].scenarios}
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in CONFIGS[config].scenarios}
    for row in runs.collector.query(sql, [config]):
        out[scenario[row["trace_id"]]].append(row)
    return out


def _calls(runs: Runs, config: str) -> dict[str, dict[str, Any]]:
    """Per scenario, the library's span (the only child of the scenario span)."""
    rows = _by_scenario(runs, config, "SELECT * FROM spans WHERE project = ? AND name NOT LIKE 'scenario %'")
    assert {s: len(r) for s, r in rows.items()} == dict.fromkeys(CONFIGS[config].scenarios, 1)
    return {s: r[0] for s, r in rows.items()}


def _details(runs: Runs, config: str) -> dict[str, dict[str, Any]]:
    """Per scenario, the trace view's LLM span (with `cost_usd` and `messages`)."""
    ids = [runs.trace(config, s) for s in CONFIGS[config].scenarios]
    details = trace_details(Analytics(runs.collector.data_dir), ids, config)
    out = {}
    for scenario in CONFIGS[config].scenarios:
        (call,) = [s for s in details[runs.trace(config, scenario)].spans if s["category"] == "llm"]
        out[scenario] = call
    return out


def test_calls_are_normalized(runs: Runs, config: str) -> None:
    calls = _calls(runs, config)
    traces = {
        r[0]["trace_id"]: r[0] for r in _by_scenario(runs, config, "SELECT * FROM traces WHERE project = ?").values()
    }
    for scenario, exp in EXPECTED.items():
        row = calls[scenario]
        assert (row["category"], row["operation"], row["provider"]) == ("llm", "generate_content", "gcp.gemini")
        assert (row["request_model"], row["response_model"]) == (client.MODEL, client.MODEL)  # modelVersion
        got = (row["input_tokens"], row["output_tokens"], row["total_tokens"])
        assert got == (exp["in"], exp["out"], exp["in"] + exp["out"]), scenario
        assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (exp["read"], None), scenario
        # Gemini reports thoughts apart from candidates; the library adds them to output_tokens,
        # as spanlake's rule wants (reasoning ⊂ output), and sends them as reasoning.output_tokens.
        assert row["reasoning_tokens"] == exp["reasoning"], scenario
        assert row["finish_reasons"] == ["stop"], scenario  # mapped from STOP, a function call's too
        assert (row["status_code"], row["error_type"], row["kind"]) == ("UNSET", None, "CLIENT")
        assert row["service_name"] == "it-gemini-otel"
        if scenario == "stream":  # gen_ai.response.time_to_first_chunk
            assert 0 < row["time_to_first_token_ms"] <= row["duration_ms"]
        else:
            assert row["time_to_first_token_ms"] is None, scenario
        # The log record repeats the usage: the trace still counts one call, its tokens once.
        trace = traces[row["trace_id"]]
        assert (trace["span_count"], trace["llm_calls"], trace["total_tokens"]) == (2, 1, exp["in"] + exp["out"])


def test_failed_call(runs: Runs, config: str) -> None:
    row = _calls(runs, config)["error"]
    assert (row["category"], row["provider"], row["request_model"]) == ("llm", "gcp.gemini", "fail-429")
    assert (row["status_code"], row["error_type"]) == ("ERROR", "429")  # error.type: the HTTP status
    assert row["status_message"].startswith("429 RESOURCE_EXHAUSTED")
    assert (row["response_model"], row["input_tokens"], row["total_tokens"], row["finish_reasons"]) == (None,) * 4
    assert row["events"] is None  # no exception event
    (trace,) = runs.collector.query("SELECT has_error FROM traces WHERE trace_id = ?", [row["trace_id"]])
    assert trace["has_error"]


def test_cost_is_genai_prices(runs: Runs, config: str) -> None:
    calls = _details(runs, config)
    for scenario, exp in EXPECTED.items():
        usage = Usage(input_tokens=exp["in"], cache_read_tokens=exp["read"], output_tokens=exp["out"])
        want = float(calc_price(usage, client.MODEL, provider_id="google").total_price)
        assert want > 0 and calls[scenario]["cost_usd"] == pytest.approx(want, rel=1e-9, abs=1e-12), scenario
    assert calls["error"]["cost_usd"] is None


def test_every_call_has_one_log_record_linked_to_its_span(runs: Runs, config: str) -> None:
    """The library emits gen_ai.client.inference.operation.details for every call, in every mode."""
    lib = CONFIGS[config]
    calls = _calls(runs, config)
    logs = _by_scenario(runs, config, "SELECT * FROM logs WHERE project = ?")
    for scenario, row in calls.items():
        (rec,) = logs[scenario]
        assert (rec["event_name"], rec["span_id"], rec["body"]) == (DETAILS, row["span_id"], None)
        # No timestamp on the record (0): spanlake's `time` is then the observed time.
        observed = EPOCH + timedelta(microseconds=rec["observed_time_unix_nano"] // 1000)
        assert (rec["time_unix_nano"], rec["time"]) == (0, observed), scenario
        attrs, span_attrs = json.loads(rec["attributes"]), json.loads(row["attributes"])
        assert {k: attrs.get(k) for k in span_attrs} == span_attrs, scenario  # usage included
        extra = set(attrs) - set(span_attrs)  # the messages, when captured for events
        assert extra <= CONTENT_KEYS
        assert bool(extra) == lib.log_content, scenario
        assert (row["content"] is not None) == lib.span_content, scenario


def _msg(role: str, content: str | None, direction: str, finish: str | None = None, calls: Any = ()) -> dict[str, Any]:
    return {
        "role": role,
        "content": content,
        "tool_calls": list(calls),
        "tool_call_id": None,
        "finish_reason": finish,
        "direction": direction,
    }


ARGS = '{"location":"Paris"}'
MESSAGES = {
    "chat": [
        _msg("system", client.SYSTEM, "input"),
        _msg("user", client.QUESTION, "input"),
        _msg("assistant", REPLY, "output", "stop"),
    ],
    "tools": [
        _msg("user", client.WEATHER, "input"),
        # Gemini's functionCall has no id: the library makes one, `<name>_<part index>`.
        _msg("assistant", None, "output", "stop", [{"id": "get_weather_0", "name": "get_weather", "arguments": ARGS}]),
    ],
    "thinking": [
        _msg("user", client.QUESTION, "input"),
        # include_thoughts: the thought comes back as a part; the library sends it as a reasoning part.
        _msg("assistant", f"[reasoning] Thinking about: {client.QUESTION}\n{REPLY}", "output", "stop"),
    ],
    "error": [_msg("user", client.QUESTION, "input")],
}  # fmt: skip
MESSAGES["stream"] = MESSAGES["chat"]


def test_messages(runs: Runs, config: str) -> None:
    """What the trace view shows: from the span's content, or the log record's attributes, or none."""
    lib = CONFIGS[config]
    calls = _details(runs, config)
    for scenario, want in MESSAGES.items():
        assert calls[scenario]["messages"] == (want if lib.span_content or lib.log_content else []), scenario
    if lib.span_content:  # the message keys are content, never facts
        tools = _calls(runs, config)["tools"]
        content = json.loads(tools["content"])
        assert set(content) == {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.definitions"}
        assert client.WEATHER not in tools["attributes"]
        (definition,) = json.loads(content["gen_ai.tool.definitions"])
        assert (definition["name"], definition["type"]) == ("get_weather", "function")


def test_capture_true_is_no_content(runs: Runs) -> None:
    chat = _calls(runs, "otel_true")["chat"]
    assert chat["content"] is None and (chat["input_tokens"], chat["output_tokens"]) == (CHAT["in"], CHAT["out"])
    (rec,) = _by_scenario(runs, "otel_true", "SELECT * FROM logs WHERE project = ?")["chat"]
    assert rec["event_name"] == DETAILS and not set(json.loads(rec["attributes"])) & CONTENT_KEYS
    assert _details(runs, "otel_true")["chat"]["messages"] == []


def test_metrics_equal_the_spans(runs: Runs) -> None:
    """gen_ai.client.token.usage / operation.duration, exported cumulatively after every scenario:
    the genai-metrics report equals the spans' totals per model (streams and thoughts included)."""
    c = runs.collector
    spans = c.query(
        "SELECT request_model AS model, sum(input_tokens) AS i, sum(output_tokens) AS o, count(*) AS calls "
        "FROM spans WHERE project = 'otel' AND category = 'llm' GROUP BY ALL"
    )
    df, source = run_report(Analytics(c.data_dir), "genai-metrics", Filters(project="otel"))
    got = {row["model"]: row for row in df.to_dicts()}
    assert source == "raw" and set(got) == {r["model"] for r in spans} == {client.MODEL, "fail-429"}
    totals = {"in": sum(e["in"] for e in EXPECTED.values()), "out": sum(e["out"] for e in EXPECTED.values())}
    assert totals == {"in": 9 + 9 + 7 + 6, "out": 8 + 8 + 3 + 16}
    for row in spans:
        m = got[row["model"]]
        assert (m["input_tokens"], m["output_tokens"]) == (row["i"], row["o"]), row["model"]
        assert m["operations"] == row["calls"] and m["mean_duration_s"] > 0, row["model"]
    assert (got[client.MODEL]["input_tokens"], got[client.MODEL]["output_tokens"]) == (totals["in"], totals["out"])
    assert (got["fail-429"]["input_tokens"], got["fail-429"]["operations"]) == (None, 1)
    repeats = c.query(
        "SELECT max(n) AS n FROM (SELECT count(*) AS n FROM metrics WHERE project = 'otel' AND metric_name = ? "
        "GROUP BY attributes)",
        [TOKEN_USAGE],
    )
    assert repeats[0]["n"] >= 4  # re-exported after every scenario: summing the points would overcount
    assert c.query("SELECT count(*) AS n FROM metrics WHERE project <> 'otel'") == [{"n": 0}]
    assert {r["metric_name"] for r in c.query("SELECT DISTINCT metric_name FROM metrics")} >= {TOKEN_USAGE, DURATION}


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    c = runs.collector
    out = []
    for name, config in CONFIGS.items():
        spans = c.query(
            "SELECT DISTINCT name, kind, scope_name, attributes, content, events FROM spans "
            "WHERE project = ? AND name NOT LIKE 'scenario %'",
            [name],
        )
        logs = c.query(
            "SELECT event_name, any_value(scope_name) AS scope, list(attributes) AS attrs, "
            "count(body) AS bodies FROM logs WHERE project = ? GROUP BY event_name ORDER BY event_name",
            [name],
        )
        env = ", ".join(f"`{k}={v}`" for k, v in config.env.items()) or "none"
        out += [f"### `{name}`", "", f"- over OTLP/{config.protocol}; environment: {env}"]
        out += observed_lines(spans)
        out += [
            f"- log record `{r['event_name']}` (scope `{r['scope']}`, {'a' if r['bodies'] else 'no'} body): "
            f"attributes {observed_keys(r['attrs'])}"
            for r in logs
        ]
        if config.metrics:
            metrics = c.query(
                "SELECT metric_name, any_value(kind) AS kind, any_value(unit) AS unit, list(attributes) AS attrs "
                "FROM metrics WHERE project = ? GROUP BY metric_name ORDER BY metric_name",
                [name],
            )
            out += [
                f"- metric `{m['metric_name']}` ({m['kind']}, `{m['unit']}`): attributes {observed_keys(m['attrs'])}"
                for m in metrics
            ]
        out.append("")
    begin, end = "<!-- observed-gemini-otel:begin -->", "<!-- observed-gemini-otel:end -->"
    check_observed(runs, DOC, begin, end, "\n".join(out))
