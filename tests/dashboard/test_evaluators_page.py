"""The Evaluators page and the judge results on the trace view, with Streamlit's AppTest, over
the data directory of tests/dashboard/evaluators_data.py (judge, people's and end users' labels
written through the real labels API; every figure below is worked out by hand there)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from spanlake.analytics.labels import current_labels
from spanlake.dashboard import evaluator_view as evv
from spanlake.storage.reader import Lake
from tests.analytics.traces.seed import trace_hex
from tests.dashboard.conftest import APP, TIMEOUT_S
from tests.dashboard.evaluators_data import DISAGREEMENTS, REASON, SPAN_HEX, EvaluatorsDir, build

Open = Callable[..., AppTest]


@pytest.fixture(scope="module")
def evaluators_dir(tmp_path_factory: pytest.TempPathFactory) -> EvaluatorsDir:
    return build(tmp_path_factory.mktemp("evaluators") / "data")


@pytest.fixture
def open_page(evaluators_dir: EvaluatorsDir, monkeypatch: pytest.MonkeyPatch) -> Open:
    """open_page(page, **query): the app on `page` of project shop, last 24 hours (the default)."""
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "off")
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(evaluators_dir.root))

    def open_(page: str = "evaluators", **query: Any) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
        at.sidebar.selectbox(key="global_project").set_value("shop").run()
        at.query_params.update(query)
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_


def metrics(at: AppTest) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


TABLES = {  # a column only that table has (AppTest does not keep a dataframe's key)
    "evaluators": "kappa",
    "confusion": "people: pass",
    "disagreements": "reviewer",
    "feedback": "user id",
    "latest": "latency_ms",
    "history": "source",
}


def frame(at: AppTest, table: str) -> list[dict[str, Any]]:
    found = [d for d in at.dataframe if TABLES[table] in d.value.columns]
    assert len(found) == 1, f"{len(found)} {table} tables"
    return found[0].value.to_dict("records")


def has_frame(at: AppTest, table: str) -> bool:
    return any(TABLES[table] in d.value.columns for d in at.dataframe)


def test_every_evaluator_version_with_its_figures(open_page: Open) -> None:
    at = open_page()
    assert metrics(at)[:4] == [
        ("Evaluators", "4"),
        ("Results", "12"),
        ("Pass rate", "50.0%"),
        ("Judge cost", "$0.0036"),
    ]
    # 12 results: groundedness 8 + reply_json 3 + tone 1; 6 of them pass: 4 + 2 + 0, of 12 with a verdict
    rows = {r["evaluator"]: r for r in frame(at, "evaluators")}
    assert list(rows) == ["groundedness", "polite", "reply_json", "tone (not declared)"]
    g = rows["groundedness"]
    assert (g["version"], g["kind"], g["results"], g["pass_rate"], g["compared"]) == (1, "llm_judge", 8, 0.5, 7)
    assert g["kappa"] == pytest.approx(2 / 23)
    assert (g["precision_fail"], g["recall_fail"]) == (pytest.approx(0.75), pytest.approx(0.6))
    assert g["cost_usd"] == pytest.approx(0.0036) and g["mean_latency_ms"] == pytest.approx(450.0)
    r = rows["reply_json"]
    assert (r["results"], r["pass_rate"], r["compared"]) == (3, pytest.approx(2 / 3), 3)
    assert (r["kappa"], r["precision_fail"], r["recall_fail"]) == (pytest.approx(0.4), 1.0, 0.5)
    assert rows["polite"]["results"] == 0 and rows["polite"]["kind"] == "regex"  # declared, no results yet
    assert rows["tone (not declared)"]["kind"] == "" and rows["tone (not declared)"]["results"] == 1


def test_one_evaluator_its_confusion_its_disagreements_a_click_from_their_traces(open_page: Open) -> None:
    at = open_page()
    assert at.selectbox(key="evaluators_pick").value == "shop/groundedness@v1"  # the first with results
    assert (at.query_params["evaluator"], at.query_params["version"]) == ("groundedness", "1")  # the URL names it
    assert metrics(at)[4:] == [
        ("Results", "8"), ("Pass rate", "50.0%"), ("Kappa", "0.09"), ("Precision on fail", "75.0%"),
        ("Recall on fail", "60.0%"), ("Compared", "7"), ("Cost", "$0.0036"), ("Cost per result", "$0.00045"),
        ("Mean latency", "450 ms"),
    ]  # fmt: skip
    assert frame(at, "confusion") == [
        {"judge": "judge pass", "people: pass": 1, "people: fail": 2},
        {"judge": "judge fail", "people: pass": 1, "people: fail": 3},
    ]
    found = frame(at, "disagreements")
    assert sorted(r["trace"] for r in found) == [f"./trace?trace={t}&project=shop" for t in DISAGREEMENTS]
    by_trace = {r["trace"].split("=")[1].split("&")[0]: r for r in found}
    assert (by_trace[trace_hex(4)]["judge"], by_trace[trace_hex(4)]["people"]) == ("fail", "pass")
    assert by_trace[trace_hex(4)]["reviewer"] == "bob"
    thumbs = frame(at, "feedback")
    assert [(r["trace"], r["judge"], r["user"], r["user's comment"]) for r in thumbs] == [
        (f"./trace?trace={trace_hex(8)}&project=shop", "pass", "thumbs down", "made up")
    ]
    latest = frame(at, "latest")
    assert len(latest) == 8 and {r["verdict"] for r in latest} == {"pass", "fail"}
    assert next(r for r in latest if r["trace"].endswith(f"{trace_hex(3)}&project=shop"))["reason"] == REASON
    assert len(at.get("vega_lite_chart")) == 1  # the pass rate per week


def test_a_link_opens_another_evaluator(open_page: Open) -> None:
    at = open_page(evaluator="reply_json", version="1")
    assert at.selectbox(key="evaluators_pick").value == "shop/reply_json@v1"
    assert metrics(at)[4:10] == [("Results", "3"), ("Pass rate", "66.7%"), ("Kappa", "0.40"),
                                 ("Precision on fail", "100.0%"), ("Recall on fail", "50.0%"),
                                 ("Compared", "3")]  # fmt: skip
    assert not has_frame(at, "feedback")  # T1's thumbs up agrees with reply_json's pass
    at = open_page(evaluator="polite", version="1")
    assert "No results in the time range yet" in at.info[0].value


def test_the_trace_shows_judge_results_apart_from_people(open_page: Open) -> None:
    at = open_page("trace", trace=trace_hex(3), project="shop")
    assert "Evaluator results" in [h.value for h in at.subheader]
    lines = [m.value for m in at.markdown if "badge" in m.value and "@v" in m.value]
    facts = r"failure mode hallucination · judge judge\-grounded · \$0\.0003 · 300 ms"
    assert lines == [
        r":red-badge[fail] **groundedness@v1** · " + facts,
        r":red-badge[fail] **reply\_json@v1**",
    ]
    assert REASON in [t.value for t in at.text]
    history = frame(at, "history")
    assert {r["source"] for r in history} == {"human"} and len(history) == 2  # ana's pass, then her fail


def test_a_span_result_shows_on_its_span(open_page: Open, evaluators_dir: EvaluatorsDir) -> None:
    at = open_page("trace", trace=trace_hex(1), project="shop")
    on_trace = [m.value for m in at.markdown if "badge" in m.value and "@v" in m.value]
    assert [v.split("**")[1] for v in on_trace] == ["groundedness@v1", r"reply\_json@v1"]  # not tone: on a span
    assert "1 more on spans: see the Spans tab." in " ".join(c.value for c in at.caption)
    labels = current_labels(Lake(evaluators_dir.root), "shop", "judge", [trace_hex(1)])
    rows = [r for r in evv.on_trace(evv.results(labels), {SPAN_HEX: "chat acme-1"}) if r["span_id"] is not None]
    assert [(r["target"], r["evaluator"], r["verdict"], r["reason"]) for r in rows] == [
        (f"span chat acme-1 ({SPAN_HEX})", "tone@v3", "fail", "too curt")
    ]


def test_results_from_labels_without_metadata_or_with_a_foreign_author() -> None:
    found = evv.results([
        {"trace_id": "a" * 32, "span_id": None, "author": "check@v2", "verdict": "pass", "metadata": "{}"},
        {"trace_id": "b" * 32, "span_id": None, "author": "someone", "verdict": "fail", "metadata": "not json"},
        {"trace_id": "c" * 32, "span_id": None, "author": "x", "verdict": "fail",
         "metadata": '{"evaluator": "y", "evaluator_version": 4, "cost_usd": true}'},
    ])  # fmt: skip
    assert found.select("evaluator", "version", "cost_usd").to_dicts() == [
        {"evaluator": "y", "version": 4, "cost_usd": None},  # a boolean is no cost
        {"evaluator": "check", "version": 2, "cost_usd": None},
    ]  # "someone" names no evaluator version: not a result


def test_results_the_app_sent_are_one_evaluator_without_versions() -> None:
    t0 = datetime(2025, 6, 2, 10, tzinfo=UTC)
    rows = [
        {"project": "shop", "trace_id": "a" * 32, "span_id": "1" * 16, "author": "relevance@otel", "verdict": "fail",
         "score": 0.25, "comment": "off topic", "created_at": t0,
         "metadata": '{"evaluator": "relevance@otel", "label": "FAIL", "origin": "gen_ai.evaluation.result"}'},
        {"project": "shop", "trace_id": "b" * 32, "span_id": "2" * 16, "author": "relevance@otel", "verdict": None,
         "score": 1.0, "comment": None, "created_at": t0, "metadata": '{"label": "relevant"}'},
        {"project": "shop", "trace_id": "c" * 32, "span_id": None, "author": "tone@v2", "verdict": "pass",
         "created_at": t0, "metadata": "{}"},
    ]  # fmt: skip
    found = evv.results(rows)
    assert found.select("evaluator", "version", "verdict", "label").to_dicts() == [
        {"evaluator": "tone", "version": 2, "verdict": "pass", "label": None},
        {"evaluator": "relevance@otel", "version": None, "verdict": None, "label": "relevant"},
        {"evaluator": "relevance@otel", "version": None, "verdict": "fail", "label": "FAIL"},
    ]
    (app, ours) = evv.summaries([], found)
    assert (app.name, app.version, app.kind, app.results, app.passed, app.failed) == (
        "relevance@otel", None, evv.APP_KIND, 2, 0, 1,
    )  # fmt: skip
    assert (app.key, evv.title(app), ours.key, evv.title(ours)) == (
        "shop/relevance@otel", "relevance@otel", "shop/tone@v2", "tone v2",
    )  # fmt: skip
    assert evv.of_version(found, app).height == 2 and evv.of_version(found, ours).height == 1
    assert evv.list_rows([app], {})[0]["evaluator"] == "relevance@otel"  # not "(not declared)"
    shown = evv.on_trace(evv.of_version(found, app), {"1" * 16: "answer", "2" * 16: "retrieve"})
    assert [(r["target"], r["evaluator"], r["verdict"]) for r in shown] == [
        (f"span answer ({'1' * 16})", "relevance@otel", "fail"),
        (f"span retrieve ({'2' * 16})", "relevance@otel", "relevant"),  # a label that is not pass/fail: as sent
    ]


def test_weeks_start_on_monday_utc() -> None:
    at = [datetime(2025, 6, 1, 23, tzinfo=UTC), datetime(2025, 6, 2, 0, 30, tzinfo=UTC),
          datetime(2025, 6, 8, 12, tzinfo=UTC)]  # fmt: skip
    found = pl.DataFrame({"created_at": at, "verdict": ["pass", "fail", "pass"]})
    assert evv.weekly(found) == [
        {"week": "2025-05-26", "pass_rate": 1.0, "results": 1, "shown": "100.0%"},  # Sunday: the week before
        {"week": "2025-06-02", "pass_rate": 0.5, "results": 2, "shown": "50.0%"},
    ]
