"""A budget's figure, by hand, for every metric — equal to the report's figure for the same
filters and window, from raw spans and from hourly rollups — and the level classify() gives it
against absolute and relative thresholds (analytics.budgets.measure)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spanlake.analytics import sketch
from spanlake.analytics.budgets.definition import Budget, budget_from_dict
from spanlake.analytics.budgets.measure import Figure, classify, figure_of, measure, sort_for, worst_traces
from spanlake.analytics.budgets.metrics import METRICS
from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.rollups import materialize as rollups
from spanlake.analytics.runner import Analytics
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir, PartitionKey
from spanlake.storage.schema import LABELS
from spanlake.storage.writer import LakeWriter
from tests.analytics.helpers import T0, judge_event, llm, span, tid, write, write_labels

MIN = 60_000  # ms
H = 60 * MIN
DAY = 24 * H
TASK, OUTCOME = "spanlake.task.name", "spanlake.task.outcome"
TOOL = {"gen_ai.operation.name": "execute_tool"}
DOCS = json.dumps([{"id": "a", "score": 0.9}])
KB = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb"}
WITH_DOCS = {**KB, "gen_ai.retrieval.documents": DOCS}
NO_TOKENS = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme", "gen_ai.request.model": "acme-1"}
PASS = {"spanlake.validation.name": "schema", "spanlake.validation.passed": True}
FAIL = {"spanlake.validation.name": "schema", "spanlake.validation.passed": False}
AT = T0 + timedelta(hours=2)  # the budgets' window: [10:00, 12:00), whole hours
RAGGED_AT = AT + timedelta(minutes=30)  # [10:30, 12:30)


def ttft(seconds: float) -> dict[str, float]:
    return {"gen_ai.response.time_to_first_chunk": seconds}


def feedback(d: Path, trace: int, at_ms: int, **fields: Any) -> None:
    """An end user's feedback event on `trace`, `at_ms` after T0."""
    when = T0 + timedelta(milliseconds=at_ms)
    row = {c.name: None for c in LABELS.columns}
    row.update(label_id=uuid.uuid4().hex, trace_id=tid(trace).hex(), source="user_feedback", created_at=when,
               ingested_at=when, **fields)  # fmt: skip
    key = PartitionKey(DEFAULT_PROJECT, when.date(), when.hour)
    LakeWriter(DataDir(d)).write_batch(LABELS, {key: {k: [v] for k, v in row.items()}}, uuid.uuid4().hex)


def build(d: Path) -> None:
    """The window [10:00, 12:00) holds tasks A-E; F starts at 12:00 (out: until is exclusive), G at
    09:59:59.999 (out; its call and check at 10:00:00.00x are in). Four tasks a week before."""
    a_call = span(1, 2, 1, at_ms=1, ms=50, name="chat", **llm("acme-1", 1000, **ttft(0.02)))
    c, d_, e, f = 30 * MIN, H + 5 * MIN, H + 50 * MIN, 2 * H
    write(
        d,
        [
            # A 100 ms, success (app): a streamed call (TTFT 20 ms), a retrieval, a passing check
            span(1, 1, at_ms=0, ms=100, name="A", **{TASK: "answer", OUTCOME: "success"}),
            a_call,
            span(1, 3, 1, at_ms=60, ms=12, name="kb", **WITH_DOCS),
            span(1, 4, 1, at_ms=80, ms=2, name="check", **PASS),
            # B 200 ms, ERROR timeout → failure (error): a failed call retried, a tool, a passing check
            span(2, 1, at_ms=10 * MIN, ms=200, name="B", error=True, **{TASK: "answer", "error.type": "TimeoutError"}),
            span(2, 2, 1, at_ms=10 * MIN + 1, ms=30, name="chat", error=True, **llm("acme-1", 2000)),
            span(2, 3, 1, at_ms=10 * MIN + 40, ms=60, name="chat", **llm("acme-1", 500)),
            span(2, 4, 1, at_ms=10 * MIN + 110, ms=8, name="search", **TOOL),
            span(2, 5, 1, at_ms=10 * MIN + 150, ms=2, name="check", **PASS),
            # C 400 ms, a failed check → failure (validation)
            span(3, 1, at_ms=c, ms=400, name="C", **{TASK: "answer"}),
            span(3, 2, 1, at_ms=c + 1, ms=90, name="chat", **llm("acme-1", 3000, **ttft(0.04))),
            span(3, 3, 1, at_ms=c + 100, ms=25, name="kb", **WITH_DOCS),
            span(3, 4, 1, at_ms=c + 130, ms=16, name="search", **TOOL),
            span(3, 5, 1, at_ms=c + 200, ms=2, name="check", **FAIL),
            # D 800 ms, task "lookup", nothing decides → unknown: an unpriced call, a call without
            # tokens (a step, not a billable call), a retrieval whose content was not recorded
            span(4, 1, at_ms=d_, ms=800, name="D", **{TASK: "lookup"}),
            span(4, 2, 1, at_ms=d_ + 1, ms=20, name="chat", **llm("mystery-9", 400)),
            span(4, 3, 1, at_ms=d_ + 30, ms=10, name="chat", **NO_TOKENS),
            span(4, 4, 1, at_ms=d_ + 50, ms=100, name="kb", **KB),
            # E 6000 ms (slow), success (app): a tool that hits a deadline, two passing checks
            span(5, 1, at_ms=e, ms=6000, name="E", **{TASK: "answer", OUTCOME: "success"}),
            span(5, 2, 1, at_ms=e + 1, ms=70, name="chat", **llm("acme-1", 4000, **ttft(0.03))),
            span(5, 3, 1, at_ms=e + 100, ms=5, name="kb", **WITH_DOCS),
            span(5, 4, 1, at_ms=e + 200, ms=4, name="search", **TOOL),
            span(5, 5, 1, at_ms=e + 300, ms=30, name="fetch", error=True, **TOOL, **{"error.type": "DeadlineExceeded"}),
            span(5, 6, 1, at_ms=e + 400, ms=2, name="check", **PASS),
            span(5, 7, 1, at_ms=e + 410, ms=2, name="check", **PASS),
            # F at 12:00:00.000 exactly: outside [10:00, 12:00)
            span(6, 1, at_ms=f, ms=9999, name="F", **{TASK: "answer", OUTCOME: "success"}),
            span(6, 2, 1, at_ms=f + 1, ms=35, name="chat", **llm("acme-1", 10_000)),
            span(6, 3, 1, at_ms=f + 5, ms=2, name="check", **FAIL),
            # G at 09:59:59.999: its task is out, its call and failed check (10:00:00.00x) are in
            span(7, 1, at_ms=-1, ms=1000, name="G", **{TASK: "answer", OUTCOME: "success"}),
            span(7, 2, 1, at_ms=1, ms=40, name="chat", **llm("acme-1", 700)),
            span(7, 3, 1, at_ms=2, ms=2, name="check", **FAIL),
        ],
    )
    write(d, [a_call])  # the exporter retried: A's call delivered twice
    # A week before: four successful tasks of 200, 200, 400, 400 ms, each with a 1000-token call.
    week = -7 * DAY
    write(
        d,
        [
            s
            for i, (at, ms) in enumerate(((0, 200), (20 * MIN, 200), (40 * MIN, 400), (H, 400)))
            for s in (
                span(20 + i, 1, at_ms=week + at, ms=ms, name="A", **{TASK: "answer", OUTCOME: "success"}),
                span(20 + i, 2, 1, at_ms=week + at + 1, ms=10, name="chat", **llm("acme-1", 1000)),
            )
        ],
    )
    feedback(d, 1, 5 * MIN, author="u1", value="up")
    feedback(d, 2, 15 * MIN, author="u1", value="down")
    feedback(d, 2, 16 * MIN, author="u2", value="down")
    feedback(d, 3, 35 * MIN, author="u1", value="up")
    feedback(d, 3, 36 * MIN, author="u1", value="down")  # changes their vote
    feedback(d, 4, H + 10 * MIN, score=2.0)  # anonymous, a score without a value
    feedback(d, 5, H + 55 * MIN, author="u2", value="up", score=5.0)
    feedback(d, 6, 2 * H + 1000, author="u1", value="down", score=1.0)  # F: outside
    feedback(d, 7, 1000, author="u1", value="down", score=1.0)  # G: outside
    at = [T0 + timedelta(milliseconds=ms) for ms in (5 * MIN, 15 * MIN, 40 * MIN, 41 * MIN, H + 10 * MIN, H + 56 * MIN)]
    write_labels(
        d,
        [
            judge_event(1, at[0], "pass"),  # A
            judge_event(2, at[1], "fail"),  # B
            judge_event(3, at[2], "fail"),  # C
            judge_event(3, at[3], "pass", name="h"),  # C, another evaluator
            judge_event(4, at[4], None, score=0.5),  # D: a score, no verdict
            judge_event(5, at[5], "pass"),  # E
            judge_event(6, T0 + timedelta(milliseconds=2 * H + 5 * MIN), "fail"),  # F: outside
            judge_event(7, at[0], "fail"),  # G: outside
        ],
    )


# By hand over [10:00, 12:00).
# Tasks A-E: 100, 200, 400, 800, 6000 ms. quantile_cont at h = (n - 1) q: p50 x[2] = 400;
# p95 h 3.8: 800 + 0.8 * 5200 = 4960; p99 h 3.96: 800 + 0.96 * 5200 = 5792.
# LLM calls (A's counted once; F out, G's in): 10, 20, 30, 40, 50, 60, 70, 90: p50 45;
# p95 h 6.65: 70 + 0.65 * 20 = 83; p99 h 6.93: 88.6. Retrieval 5, 12, 25, 100: p50 18.5;
# p95 h 2.85: 25 + 0.85 * 75 = 88.75; p99 97.75. Tools 4, 8, 16, 30: p50 12; p95 27.9; p99 29.58.
# TTFT 20, 30, 40: p95 h 1.9: 39. Costs at $1/M input: tasks A 1000, B 2500, C 3000, D none
# (unpriced), E 4000 = 10500e-6 over 5 tasks, 2 successful (A, E); spend = those calls + G's 700.
HAND: dict[str, tuple[float | None, int]] = {
    "p50_latency": (400, 5),
    "p95_latency": (4960, 5),
    "p99_latency": (5792, 5),
    "p50_latency/llm": (45, 8),
    "p95_latency/llm": (83, 8),
    "p99_latency/llm": (88.6, 8),
    "p50_latency/retrieval": (18.5, 4),
    "p95_latency/retrieval": (88.75, 4),
    "p99_latency/retrieval": (97.75, 4),
    "p50_latency/tool": (12, 4),
    "p95_latency/tool": (27.9, 4),
    "p99_latency/tool": (29.58, 4),
    "ttft_p95": (39, 3),
    "cost_per_successful_task": (10500e-6 / 2, 5),
    "cost_per_task": (10500e-6 / 5, 5),
    "spend": (11200e-6, 7),  # billable calls: A, B x2, C, D's unpriced one, E, G
    "success_rate": (2 / 5, 5),
    "error_rate": (1 / 5, 5),  # B's task span
    "error_rate/llm": (1 / 8, 8),  # B's first call
    "error_rate/tool": (1 / 4, 4),  # E's fetch
    "timeout_rate": (1 / 5, 5),  # B: TimeoutError
    "timeout_rate/tool": (1 / 4, 4),  # E: DeadlineExceeded
    "timeout_rate/llm": (0.0, 8),
    "slow_share": (1 / 5, 5),  # E, over the default 5000 ms
    "slow_share@300": (3 / 5, 5),  # C, D, E
    "slow_share/tool@10": (2 / 4, 4),  # 16 and 30 ms
    "validation_failure_rate": (2 / 6, 6),  # A, B, E x2 pass; C and G's (at 10:00:00.002) fail; F's is out
    "retry_rate": (1 / 8, 8),  # B's second call follows a failed one; D's second call repeats a good one
    "unpriced_calls": (1, 7),
    "negative_feedback_share": (2 / 4, 4),  # A up, B down, C down (u1's latest), E up; D has a score only
    "mean_feedback_score": ((2 + 5) / 2, 2),
    "judge_pass_rate": (3 / 5, 5),  # A pass, B fail, C fail and pass (h), E pass; D's score is no verdict
    "traffic": (5, 5),
}
PERCENTILE = {k for k in HAND if k.split("/")[0].split("@")[0] in ("p50_latency", "p95_latency", "p99_latency")}
PERCENTILE |= {"ttft_p95"}


def budget(key: str, window: str = "2h", **kw: Any) -> Budget:
    """A budget for HAND's key `metric[/step][@slow_ms]` with thresholds that never matter here."""
    metric, _, slow = key.partition("@")
    metric, _, step = metric.partition("/")
    spec = METRICS[metric]
    raw: dict[str, Any] = {"name": key.replace("/", "-").replace("@", "-"), "metric": metric, "window": window,
                           "min_samples": 1}  # fmt: skip
    if spec.worse == "higher":
        raw["warning"] = 1.0 if spec.unit == "fraction" else 1e9
    else:
        raw["warning"] = 0.0
    if step:
        raw["step"] = step
    if slow:
        raw["slow_ms"] = float(slow)
    return budget_from_dict(raw | kw, DEFAULT_PROJECT)


def report_value(an: Analytics, b: Budget, since: datetime, until: datetime, source: str) -> tuple[Any, str]:
    """The budget's figure read off the report as a user would (same filters and window)."""
    f = b.filters(since, until)
    m = b.metric
    if METRICS[m].report == "latency":
        params = {} if b.slow_ms is None else {"slow_ms": b.slow_ms}
        df, used = run_report(an, "latency", f, source=source, **params)
        level = "llm" if m in ("ttft_p95", "retry_rate") else b.step
        (row,) = [r for r in df.to_dicts() if r["level"] == level]
        col = {"p50_latency": "p50_ms", "p95_latency": "p95_ms", "p99_latency": "p99_ms", "ttft_p95": "ttft_p95_ms"}
        if m == "retry_rate":
            return row["retries"] / row["count"], used
        return row[col.get(m, m)], used
    if m in ("spend", "unpriced_calls"):
        df, used = run_report(an, "cost", f, source=source)
        return df.row(0, named=True)["cost_usd" if m == "spend" else "unpriced_calls"], used
    if m == "validation_failure_rate":
        df, used = run_report(an, "validation", f, source=source)
        return df["failures"].sum() / df["checks"].sum(), used
    if m in ("negative_feedback_share", "mean_feedback_score"):
        df, used = run_report(an, "feedback", f, source=source)
        return df.row(0, named=True)["negative_share" if m == "negative_feedback_share" else "mean_score"], used
    if m == "judge_pass_rate":
        df, used = run_report(an, "judge", f, source=source)
        return df.row(0, named=True)["pass_rate"], used
    df, used = run_report(an, "tasks", f, source=source)
    return df.row(0, named=True)["tasks" if m == "traffic" else m], used


def close(got: float | None, want: float | None, percentile: bool) -> bool:
    if got is None or want is None:
        return got is want
    if percentile:
        return abs(got - want) <= sketch.ALPHA * abs(want) + 1e-3
    return got == pytest.approx(want, rel=1e-9, abs=1e-15)


def lake(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    d = tmp_path_factory.mktemp("lake")
    build(d)
    book = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)
    return Analytics(d, prices=book)


@pytest.fixture(scope="module")
def an(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    """The lake without rollups: every figure from raw spans."""
    return lake(tmp_path_factory)


@pytest.fixture(scope="module")
def rolled(tmp_path_factory: pytest.TempPathFactory) -> Analytics:
    """The lake with every hour rolled up (`spanlake analytics run`)."""
    an = lake(tmp_path_factory)
    rollups.run(an)
    return an


def test_every_metric_has_a_hand_worked_figure() -> None:
    assert {k.split("/")[0].split("@")[0] for k in HAND} == set(METRICS)


@pytest.mark.parametrize("key", list(HAND))
def test_raw_figure_equals_the_hand_value_and_the_report(an: Analytics, key: str) -> None:
    b = budget(key)
    r = measure(an, b, AT)
    value, samples = HAND[key]
    assert (r.figure.since, r.figure.until, r.figure.source) == (T0, AT, "raw")
    assert r.figure.value == pytest.approx(value, rel=1e-9) and r.figure.samples == samples
    assert r.figure.value == pytest.approx(report_value(an, b, T0, AT, "raw")[0], rel=1e-12)
    assert r.level == "ok" and r.baseline is None


def test_rollups_figures_equal_the_hand_value_and_the_report(rolled: Analytics) -> None:
    an = rolled
    raw_only = {"negative_feedback_share", "mean_feedback_score", "judge_pass_rate", "slow_share@300",
                "slow_share/tool@10"}  # fmt: skip
    for key, (value, samples) in HAND.items():
        b = budget(key)
        r = measure(an, b, AT)
        pct = key in PERCENTILE
        assert r.figure.source == ("raw" if key in raw_only else "rollups"), key
        reported, used = report_value(an, b, T0, AT, "auto")
        assert used == r.figure.source and close(r.figure.value, reported, False), (key, r.figure.value, reported)
        assert close(r.figure.value, value, pct) and r.figure.samples == samples, (key, r.figure, value)
        # ragged edges: [10:30, 11:00) and [12:00, 12:30) from raw spans, hour 11 from rollups
        r = measure(an, b, RAGGED_AT)
        reported, used = report_value(an, b, RAGGED_AT - b.window, RAGGED_AT, "auto")
        assert used == r.figure.source == ("raw" if key in raw_only else "rollups+raw"), key
        assert close(r.figure.value, reported, False), (key, r.figure.value, reported)
        raw, _ = report_value(an, b, RAGGED_AT - b.window, RAGGED_AT, "raw")
        assert close(r.figure.value, raw, pct), (key, r.figure.value, raw)
    # [10:30, 12:30): C, D, E and F (12:00); E and F succeed; checks C fail, E pass x2, F fail
    assert measure(an, budget("traffic"), RAGGED_AT).figure.value == 4
    assert measure(an, budget("success_rate"), RAGGED_AT).figure.value == 0.5
    assert measure(an, budget("validation_failure_rate"), RAGGED_AT).figure.value == 0.5
    # judges on C (fail, pass), E (pass), F (fail): 2 of 4
    assert measure(an, budget("judge_pass_rate"), RAGGED_AT).figure.value == 0.5


def test_a_task_scope(an: Analytics) -> None:
    # task "answer": A, B, C, E (D is "lookup"); calls of answer tasks (G's included) are all priced
    figure = {k: measure(an, budget(k, task="answer"), AT).figure for k in ("traffic", "success_rate", "spend")}
    assert (figure["traffic"].value, figure["success_rate"].value) == (4, 0.5)
    assert figure["spend"].value == pytest.approx(11200e-6) and figure["spend"].samples == 6
    assert measure(an, budget("unpriced_calls", task="answer"), AT).figure.value == 0
    assert measure(an, budget("unpriced_calls", task="lookup"), AT).figure.value == 1
    # LLM calls inside answer tasks: 30, 40, 50, 60, 70, 90 → p95 h 4.75: 70 + 0.75 * 20
    r = measure(an, budget("p95_latency/llm", task="answer"), AT)
    assert (r.figure.value, r.figure.samples) == (pytest.approx(85.0), 6)
    assert r.figure.value == pytest.approx(report_value(an, budget("p95_latency/llm", task="answer"), T0, AT, "raw")[0])


def test_absolute_thresholds_both_directions(an: Analytics) -> None:
    p95 = {"warning": 4000, "critical": 5000}
    r = measure(an, budget("p95_latency", **p95), AT)
    assert (r.level, r.warning_at, r.critical_at) == ("warning", 4000, 5000)
    assert measure(an, budget("p95_latency", warning=4000, critical=4900), AT).level == "critical"
    assert measure(an, budget("p95_latency", warning=4960), AT).level == "ok"  # at the threshold is not beyond it
    # lower is worse: success rate 0.4
    assert measure(an, budget("success_rate", warning=0.5, critical=0.3), AT).level == "warning"
    assert measure(an, budget("success_rate", warning=0.5, critical=0.45), AT).level == "critical"
    assert measure(an, budget("success_rate", warning=0.4), AT).level == "ok"
    # 5 tasks: min_samples 6 is no data, 5 is enough
    r = measure(an, budget("p95_latency", min_samples=6, **p95), AT)
    assert r.level == "no_data" and "5 tasks or steps, fewer than 6" in r.reason
    assert measure(an, budget("p95_latency", min_samples=5, **p95), AT).level == "warning"


def test_empty_windows(an: Analytics) -> None:
    quiet = T0 + timedelta(hours=5)  # [13:00, 15:00): nothing
    r = measure(an, budget("traffic", warning=3, critical=1), quiet)
    assert (r.figure.value, r.figure.samples, r.level) == (0, 0, "critical")  # zero traffic is a figure
    assert measure(an, budget("spend", warning=1.0), quiet).figure.value == 0.0
    assert measure(an, budget("spend", warning=1.0), quiet).level == "ok"
    for key in ("p95_latency", "success_rate", "validation_failure_rate", "negative_feedback_share", "ttft_p95",
                "judge_pass_rate"):  # fmt: skip
        r = measure(an, budget(key), quiet)
        assert (r.level, r.figure.value, r.figure.samples) == ("no_data", None, 0), key
    # [11:00, 11:10): D only, which did not succeed: cost per successful task is undefined
    r = measure(an, budget("cost_per_successful_task", window="10m"), T0 + timedelta(hours=1, minutes=10))
    assert (r.level, r.figure.value, r.figure.samples) == ("no_data", None, 1)
    assert "no successful task" in r.reason


def test_relative_thresholds_against_a_hand_made_baseline(an: Analytics) -> None:
    # p50: now 400; a week ago 200, 200, 400, 400 → 300: +20 % = 360 (warning), +50 % = 450
    r = measure(an, budget("p50_latency", warning=20, critical=50, baseline="7d ago"), AT)
    assert r.baseline is not None and r.baseline.value == 300 and (r.baseline.since, r.baseline.until) == (
        T0 - timedelta(days=7), AT - timedelta(days=7))  # fmt: skip
    assert (r.level, r.warning_at, r.critical_at) == ("warning", pytest.approx(360), pytest.approx(450))
    # the previous 7 days: the week-old four and G (1000 ms) → p50 400: +20 % = 480
    r = measure(an, budget("p50_latency", warning=20, baseline="previous 7d"), AT)
    assert r.baseline is not None and (r.baseline.value, r.baseline.samples) == (400, 5)
    assert (r.baseline.since, r.baseline.until) == (T0 - timedelta(days=7), T0)
    assert (r.level, r.warning_at) == ("ok", pytest.approx(480))
    # lower is worse: success rate 0.4 against 1.0 a week ago: -20 % = 0.8, -50 % = 0.5
    r = measure(an, budget("success_rate", warning=20, critical=50, baseline="7d ago"), AT)
    assert (r.level, r.warning_at, r.critical_at) == ("critical", pytest.approx(0.8), pytest.approx(0.5))
    # spend: 11200e-6 against 4000e-6 a week ago: +100 % = 8000e-6, +200 % = 12000e-6
    r = measure(an, budget("spend", warning=100, critical=200, baseline="7d ago"), AT)
    assert (r.level, r.warning_at) == ("warning", pytest.approx(8000e-6))
    # an additive metric against the previous 7 days: their sum per 2-hour window (2 h / 168 h)
    r = measure(an, budget("traffic", warning=10, baseline="previous 7d"), AT)
    assert r.baseline is not None and r.baseline.samples == 5
    assert r.baseline.value == pytest.approx(5 * 2 / 168) and r.baseline.scale == pytest.approx(2 / 168)
    assert r.level == "ok"
    # a baseline without samples is no data
    for key in ("p50_latency", "traffic", "spend"):
        r = measure(an, budget(key, warning=10, baseline="14d ago"), AT)
        assert r.level == "no_data" and "baseline (14d ago)" in r.reason, key


def test_classify_by_hand() -> None:
    b = budget("error_rate", warning=0.1, critical=0.2, min_samples=10)
    at = T0

    def fig(value: float | None, samples: int) -> Figure:
        return Figure(value, samples, at - b.window, at)

    assert classify(b, at, fig(0.15, 10), None).level == "warning"
    assert classify(b, at, fig(0.25, 10), None).level == "critical"
    assert classify(b, at, fig(0.1, 10), None).level == "ok"
    assert classify(b, at, fig(0.25, 9), None).level == "no_data"
    rel = budget("error_rate", warning=50, critical=100, baseline="7d ago", min_samples=10)
    r = classify(rel, at, fig(0.25, 10), fig(0.1, 10))
    assert (r.level, r.warning_at, r.critical_at) == ("critical", pytest.approx(0.15), pytest.approx(0.2))
    assert classify(rel, at, fig(0.25, 10), fig(0.1, 9)).level == "no_data"
    assert classify(rel, at, fig(0.25, 10), fig(None, 10)).level == "no_data"
    assert classify(rel, at, fig(0.25, 10), None).level == "no_data"
    traffic = budget("traffic", warning=50, baseline="7d ago")
    assert classify(traffic, at, fig(0.0, 0), fig(10.0, 10)).level == "warning"  # 0 < 5


def test_figure_of_a_window_with_other_task_options(an: Analytics) -> None:
    # unknown outcomes counted as successes: A, D, E
    got = figure_of(an, budget("success_rate"), T0, AT, TaskOptions(default_outcome="success"))
    assert got.value == pytest.approx(3 / 5)


def ids(*traces: int) -> list[str]:
    return [tid(t).hex() for t in traces]


WORST = {
    # tasks: A 100, B 200, C 400, D 800, E 6000 ms; costs E 4000 > C 3000 > B 2500 > A 1000 > D (none)
    "p95_latency": ids(5, 4, 3, 2, 1),
    "slow_share": ids(5, 4, 3, 2, 1),
    "cost_per_task": ids(5, 3, 2, 1, 4),
    "cost_per_successful_task": ids(5, 3, 2, 1, 4),
    "spend": ids(5, 3, 2, 1, 4),
    # failed tasks, the latest first: C (10:30), B (10:10)
    "success_rate": ids(3, 2),
    "error_rate": ids(3, 2),
    "timeout_rate": ids(3, 2),
    "validation_failure_rate": ids(3, 2),
    # steps: the slowest call of each trace: C 90, E 70, B 60, A 50, G 40, D 20
    "p95_latency/llm": ids(3, 5, 2, 1, 7),
    "p99_latency/retrieval": ids(4, 3, 1, 5),
    "error_rate/tool": ids(5),
    "timeout_rate/tool": ids(5),
    "ttft_p95": ids(3, 5, 1),
    "retry_rate": ids(2),  # B's failed call
    "unpriced_calls": ids(4),
    "negative_feedback_share": ids(3, 2),  # C's last vote (10:36) is later than B's (10:16)
    "mean_feedback_score": ids(4, 5),  # 2 (anonymous on D), 5 (u2 on E)
    "judge_pass_rate": ids(3, 2),  # judged fail: C (10:40), B (10:15)
    "traffic": [],
}


@pytest.mark.parametrize("key", list(WORST))
def test_worst_traces(an: Analytics, key: str) -> None:
    assert worst_traces(an, budget(key), T0, AT) == WORST[key]


def test_worst_traces_scope_limit_and_rollups(an: Analytics, rolled: Analytics) -> None:
    assert worst_traces(an, budget("p95_latency", task="answer"), T0, AT) == ids(5, 3, 2, 1)  # D is "lookup"
    assert worst_traces(an, budget("p95_latency/llm", task="lookup"), T0, AT) == ids(4)
    assert worst_traces(an, budget("cost_per_task"), T0, AT, n=2) == ids(5, 3)
    assert worst_traces(an, budget("success_rate"), T0, T0 + timedelta(minutes=30)) == ids(2)  # C at 10:30 is out
    for key in ("p95_latency", "spend", "success_rate"):
        assert worst_traces(rolled, budget(key), T0, AT) == WORST[key], key


def test_sort_for() -> None:
    assert sort_for("p95_latency") == {"sort": "duration", "trace_sort": "duration_ms", "outcome": None}
    assert sort_for("ttft_p95")["sort"] == "duration"
    for m in ("spend", "cost_per_successful_task", "cost_per_task", "unpriced_calls"):
        assert sort_for(m) == {"sort": "cost", "trace_sort": "cost_usd", "outcome": None}, m
    for m in ("success_rate", "error_rate", "timeout_rate", "validation_failure_rate", "negative_feedback_share"):
        assert sort_for(m) == {"sort": "start", "trace_sort": "start_time", "outcome": "failure"}, m
    assert sort_for("traffic") == {"sort": "start", "trace_sort": "start_time", "outcome": None}
    assert all(sort_for(m)["sort"] in ("duration", "cost", "start") for m in METRICS)
    with pytest.raises(ValueError, match="unknown metric"):
        sort_for("p96_latency")
