"""The app's own `gen_ai.evaluation.result` events through a real server: sent by the OTel SDK
(span events with `span.add_event`, and one log record through the Logs API) over loopback,
read by the evaluation watch with no rule at all, written as judge labels worked out by hand;
then counted by the judge report, filtered and shown by the trace list, measured against
people (API and CLI), never deciding a task's outcome; malformed events recorded on their
evaluator while later events keep arriving."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner
from opentelemetry import trace

from spanlake.cli.main import cli
from spanlake.server.evaluation_watch import INTERVAL_ENV
from tests.conftest import RunningCollector, start_collector
from tests.evaluators.online_helpers import PROJECT, evaluation, otel_app, status, wait_for, write_evaluators

EVENT = "gen_ai.evaluation.result"
TASK = {"spanlake.task.name": "answer"}
NO_RULES = '[settings]\nquiet_period = "1s"\n'  # no evaluator, no rule: the events need none
LONG_LABEL = "x" * 10_000


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningCollector]:
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    data = tmp_path / "data"
    write_evaluators(data, NO_RULES)
    running, stop = start_collector(data)
    try:
        yield running
    finally:
        stop()


def ids(span: Any) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def send_first(http: str) -> dict[str, tuple[str, str]]:
    """Traces A (two events on its task span, one on a child), B (a pass, an error and three
    malformed events) and C (a log record on its task span); (trace, span) by name."""
    got = {}
    with otel_app(http) as (tracer, logger):
        with tracer.start_as_current_span("answer", attributes=TASK) as a:
            a.add_event(EVENT, evaluation("relevance", score=0.25, label="FAIL", explanation="off topic"))
            a.add_event(EVENT, evaluation("groundedness", label="Pass"))
            with tracer.start_as_current_span("retrieve") as child:
                child.add_event(EVENT, evaluation("relevance", score=1, label="relevant"))
            got["a"], got["a_child"] = ids(a), ids(child)
        with tracer.start_as_current_span("answer", attributes=TASK) as b:
            b.add_event(EVENT, evaluation("relevance", score=0.9, label="pass"))
            b.add_event(EVENT, evaluation("toxicity", error="TimeoutError", explanation="judge timed out"))
            b.add_event(EVENT, evaluation("tone", score="high"))
            b.add_event(EVENT, evaluation(None, label="pass"))
            b.add_event(EVENT, evaluation("verbosity", label=LONG_LABEL))
            got["b"] = ids(b)
        with tracer.start_as_current_span("answer", attributes=TASK) as c:
            got["c"] = ids(c)
        # evaluated after the span ended, as the Logs/Events API sends it: parented to the span
        logger.emit(event_name=EVENT, attributes=evaluation("relevance", score=0.1, label="fail", explanation="wrong"),
                    context=trace.set_span_in_context(c), timestamp=time.time_ns())  # fmt: skip
    return got


def external(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The status's counts of the app's evaluators, by `project/name@otel`."""
    return {k: v for k, v in status(data_dir).get("evaluators", {}).items() if k.endswith("@otel")}


def counts(data_dir: Path, key: str, *fields: str) -> tuple[int, ...]:
    s = external(data_dir).get(f"{PROJECT}/{key}", {})
    return tuple(int(s.get(f, 0)) for f in fields)


def labels(c: RunningCollector, view: str = "labels") -> list[dict[str, Any]]:
    sql = f"""SELECT trace_id, span_id, author, verdict, score, comment, metadata FROM {view}
              WHERE source = 'judge' ORDER BY trace_id, span_id, author, score"""
    return c.query(sql)


def api(c: RunningCollector, path: str, **params: Any) -> Any:
    r = httpx.get(f"{c.http}/api/v1{path}", params=params, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_apps_evaluation_events_become_judge_labels_everywhere(server: RunningCollector) -> None:
    c = server
    t = send_first(c.http)
    wait_for(lambda: counts(c.data_dir, "relevance@otel", "evaluated") == (4,)
             and counts(c.data_dir, "verbosity@otel", "malformed") == (1,), 90, "the first events read")  # fmt: skip
    # read after the malformed ones: the watcher went on
    with otel_app(c.http) as (tracer, _), tracer.start_as_current_span("answer", attributes=TASK) as d:
        d.add_event(EVENT, evaluation("groundedness", label="PASS", score=0.75))
    t["d"] = ids(d)
    wait_for(lambda: counts(c.data_dir, "groundedness@otel", "evaluated") == (2,), 90, "the later event read")
    c.flush()

    got = [
        (r["trace_id"], r["span_id"], r["author"], r["verdict"], r["score"], r["comment"],
         (m := orjson.loads(r["metadata"])).get("label"), m["signal"], m["evaluation_name"], m["scope"])
        for r in labels(c)
    ]  # fmt: skip
    want = [
        (*t["a"], "groundedness@otel", "pass", None, None, "Pass", "span_event", "groundedness", "app.evals"),
        (*t["a"], "relevance@otel", "fail", 0.25, "off topic", "FAIL", "span_event", "relevance", "app.evals"),
        (*t["a_child"], "relevance@otel", None, 1.0, None, "relevant", "span_event", "relevance", "app.evals"),
        (*t["b"], "relevance@otel", "pass", 0.9, None, "pass", "span_event", "relevance", "app.evals"),
        (*t["c"], "relevance@otel", "fail", 0.1, "wrong", "fail", "log_record", "relevance", "app.evals"),
        (*t["d"], "groundedness@otel", "pass", 0.75, None, "PASS", "span_event", "groundedness", "app.evals"),
    ]
    assert sorted(got, key=str) == sorted(want, key=str)
    assert len(labels(c, "labels_raw")) == 6  # each written once
    assert all("decides_outcome" not in orjson.loads(r["metadata"]) for r in labels(c))

    # errors and malformed events: recorded on their evaluator, with the trace and span
    s = external(c.data_dir)
    fields = ("evaluated", "passed", "failed", "errors", "malformed")
    assert {k: tuple(v[f] for f in fields) for k, v in s.items()} == {
        "shop/relevance@otel": (4, 1, 2, 0, 0),
        "shop/groundedness@otel": (2, 2, 0, 0, 0),
        "shop/toxicity@otel": (0, 0, 0, 1, 0),
        "shop/tone@otel": (0, 0, 0, 0, 1),
        "shop/(no name)@otel": (0, 0, 0, 0, 1),
        "shop/verbosity@otel": (0, 0, 0, 0, 1),
    }
    assert (s["shop/toxicity@otel"]["last_error"], s["shop/toxicity@otel"]["last_error_span"]) == (
        "TimeoutError: judge timed out",
        t["b"][1],
    )
    problem = "malformed gen_ai.evaluation.result event: "
    assert (
        s["shop/tone@otel"]["last_error"]
        == problem + "gen_ai.evaluation.score.value must be a number (double), got 'high'"
    )
    assert s["shop/(no name)@otel"]["last_error"] == problem + "gen_ai.evaluation.name is missing"
    assert s["shop/verbosity@otel"]["last_error"].startswith(
        problem + "gen_ai.evaluation.score.label is 10,000 characters"
    )
    assert all(v["last_error_trace"] == t["b"][0] for k, v in s.items() if v.get("last_error"))
    st = api(c, "/evaluators/status", project=PROJECT)
    assert {e["evaluator"]: (e["results"], e["errors"], e["malformed"]) for e in st["external"]} == {
        "relevance@otel": (4, 0, 0), "groundedness@otel": (2, 0, 0), "toxicity@otel": (0, 1, 0),
        "tone@otel": (0, 0, 1), "(no name)@otel": (0, 0, 1), "verbosity@otel": (0, 0, 1),
    }  # fmt: skip
    assert st["events"]["read"] == 5 and st["events"]["more"] is False  # spans A, A's child, B, D; C's record

    # the judge report: relevance passed B, failed A and C, A's child has no verdict;
    # scores 0.25 + 1 + 0.9 + 0.1 = 2.25 over 4
    rep = api(c, "/reports/judge", project=PROJECT, since="1h", group_by="evaluator")
    rows = {r["evaluator"]: r for r in rep["rows"]}
    assert set(rows) == {"relevance@otel", "groundedness@otel"}
    rel, gro = rows["relevance@otel"], rows["groundedness@otel"]
    assert (rel["labels"], rel["passed"], rel["failed"], rel["scored"], rel["traces"]) == (4, 1, 2, 4, 3)
    assert rel["pass_rate"] == pytest.approx(1 / 3) and rel["mean_score"] == pytest.approx(2.25 / 4)
    assert (gro["labels"], gro["passed"], gro["failed"], gro["pass_rate"], gro["scored"]) == (2, 2, 0, 1.0, 1)
    only = api(c, "/reports/judge", project=PROJECT, since="1h", evaluator="relevance@otel")["rows"]
    assert [(r["labels"], r["failed"]) for r in only] == [(4, 2)]

    # the trace list: judge filter and column; the outcome is not theirs to decide
    def listed(**f: Any) -> set[str]:
        return {r["trace_id"] for r in api(c, "/traces", project=PROJECT, since="1h", **f)["traces"]}

    assert listed(judge="relevance@otel:fail") == {t["a"][0], t["c"][0]}
    assert listed(judge="groundedness@otel:pass") == {t["a"][0], t["d"][0]}
    assert listed(judge="relevance:fail") == set()  # no evaluator of ours by that name
    rows = {r["trace_id"]: r for r in api(c, "/traces", project=PROJECT, since="1h")["traces"]}
    assert {k: rows[v[0]]["judge"] for k, v in t.items() if k != "a_child"} == {
        "a": "1 fail · 1 pass", "b": "1 pass", "c": "1 fail", "d": "1 pass",
    }  # fmt: skip
    assert {r["outcome"] for r in rows.values()} == {"unknown"}  # a fail from the app decides nothing

    # against people: A passed, B and C failed by a reviewer (on the same spans)
    human = [{"trace_id": t[k][0], "span_id": t[k][1], "source": "human", "author": "ann", "verdict": v,
              "project": PROJECT} for k, v in (("a", "pass"), ("b", "fail"), ("c", "fail"))]  # fmt: skip
    assert httpx.post(f"{c.http}/api/v1/labels", json=human, timeout=60).status_code == 200
    c.flush()
    # judge vs people: (fail, pass) A, (pass, fail) B, (fail, fail) C → precision 1/2, recall 1/2;
    # agreement 1/3, chance (2/3)(2/3) + (1/3)(1/3) = 5/9, kappa (1/3 - 5/9) / (4/9) = -1/2
    (al,) = api(c, "/evaluators/relevance@otel/alignment", project=PROJECT)
    assert (al["evaluator"], al["version"], al["items"]) == ("relevance@otel", None, 3)
    assert al["confusion"] == {"judge_pass_human_pass": 0, "judge_pass_human_fail": 1, "judge_fail_human_pass": 1,
                               "judge_fail_human_fail": 1}  # fmt: skip
    assert (al["precision"], al["recall"], al["kappa"]) == (0.5, 0.5, pytest.approx(-0.5))
    dis = api(c, "/evaluators/relevance@otel/disagreements", project=PROJECT)
    assert {(d["trace_id"], d["judge_verdict"], d["human_verdict"]) for d in dis} == {
        (t["a"][0], "fail", "pass"), (t["b"][0], "pass", "fail"),
    }  # fmt: skip
    r = httpx.get(f"{c.http}/api/v1/evaluators/relevance@otel/alignment", params={"project": PROJECT, "version": 1})
    assert r.status_code == 400 and "no versions" in r.text
    base = ["--data-dir", str(c.data_dir), "--project", PROJECT, "--format", "json"]
    out = CliRunner().invoke(cli, ["evaluators", "alignment", "relevance@otel", *base], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert (doc["evaluator"], doc["version"], doc["alignment"]["items"]) == ("relevance@otel", None, 3)
