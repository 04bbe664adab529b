"""Production sides from a designed lake: counts, costs and durations worked out by hand, equal
to the compare report's figures; unknown outcomes; reviewer verdicts overriding the app."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports.registry import run_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.experiments.production import production_sides
from spanlake.experiments.sides import Side
from spanlake.experiments.stats import quantile_cont, statistic_of
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir, PartitionKey
from spanlake.storage.schema import LABELS
from spanlake.storage.writer import LakeWriter
from tests.analytics.helpers import T0, sid, span, tid, write

W = Filters(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1))
PRICES = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=1.0)], use_database=False)
OUTCOME = "spanlake.task.outcome"


def chat(version: str, tokens: int, model: str = "acme-1") -> dict[str, object]:
    """A chat call of `tokens` input tokens: $tokens / 1e6 with acme-1 ($1 per million)."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.prompt.version": version,
        "gen_ai.usage.input_tokens": tokens,
    }


def label(d: Path, trace: int, minutes: float, verdict: str, mode: str | None = None, span_id: int | None = 1) -> None:
    """A reviewer's verdict on trace `trace` (its task span 1, or the whole trace), `minutes` after T0."""
    when = T0 + timedelta(minutes=minutes)
    row = {c.name: None for c in LABELS.columns}
    row.update(
        label_id=uuid.uuid4().hex,
        trace_id=tid(trace).hex(),
        span_id=sid(span_id).hex() if span_id else None,
        source="human",
        author="ana",
        created_at=when,
        ingested_at=when,
        verdict=verdict,
        failure_mode=mode,
    )
    key = PartitionKey(DEFAULT_PROJECT, when.date(), when.hour)
    LakeWriter(DataDir(d)).write_batch(LABELS, {key: {k: [v] for k, v in row.items()}}, uuid.uuid4().hex)


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    at = {n: n * 1000 for n in range(20)}  # trace n starts n seconds after T0
    write(
        tmp_path,
        [
            # v1
            span(1, 1, at_ms=at[1], ms=100, name="answer", **{OUTCOME: "success"}),
            span(1, 2, 1, at_ms=at[1], name="chat", **chat("v1", 1000)),
            span(2, 1, at_ms=at[2], ms=200, name="answer", **{OUTCOME: "failure"}),  # the reviewer passes it
            span(2, 2, 1, at_ms=at[2], name="chat", **chat("v1", 3000)),
            span(3, 1, at_ms=at[3], ms=400, name="answer"),  # no outcome: unknown
            span(3, 2, 1, at_ms=at[3], name="chat", **chat("v1", 2000)),
            span(4, 1, at_ms=at[4], ms=800, name="answer", **{OUTCOME: "success"}),
            span(4, 2, 1, at_ms=at[4], name="chat", **chat("v1", 5000, model="mystery-9")),  # unpriced
            # v2
            span(5, 1, at_ms=at[5], ms=300, name="answer", **{OUTCOME: "success"}),  # the reviewer fails it
            span(5, 2, 1, at_ms=at[5], name="chat", **chat("v2", 1000)),
            span(6, 1, at_ms=at[6], ms=500, name="answer", **{OUTCOME: "success"}),
            span(6, 2, 1, at_ms=at[6], name="chat", **chat("v2", 2000)),
            span(7, 1, at_ms=at[7], ms=700, name="answer", error=True),  # ERROR status: failure
            span(7, 2, 1, at_ms=at[7], name="chat", **chat("v2", 4000)),
            span(8, 1, at_ms=at[8], ms=900, name="answer"),  # failed by a label on the whole trace
            span(8, 2, 1, at_ms=at[8], name="chat", **chat("v2", 1500)),
            span(9, 1, at_ms=at[9], ms=1000, name="answer"),  # unknown
            span(9, 2, 1, at_ms=at[9], name="chat", **chat("v2", 500)),
            # neither side: another version, and a v1 task after the window
            span(10, 1, at_ms=at[10], ms=50, name="answer", **{OUTCOME: "success"}),
            span(10, 2, 1, at_ms=at[10], name="chat", **chat("v3", 100)),
            span(11, 1, at_ms=2 * 3_600_000, ms=50, name="answer", **{OUTCOME: "success"}),
            span(11, 2, 1, at_ms=2 * 3_600_000, name="chat", **chat("v1", 100)),
        ],
    )
    label(tmp_path, 2, 10, "fail", "hallucination")
    label(tmp_path, 2, 20, "pass")  # the latest verdict passes it: no failure mode left
    label(tmp_path, 5, 10, "fail", "incomplete")
    label(tmp_path, 5, 20, "fail", "hallucination")  # the latest failing verdict's mode
    label(tmp_path, 8, 10, "fail", "refusal", span_id=None)  # on the trace: applies to its root task
    return Analytics(tmp_path, prices=PRICES)


def test_sides_by_hand(an: Analytics) -> None:
    v1, v2 = production_sides(an, W, "prompt_version", "v1", "v2")
    assert (v1.name, v2.name) == ("v1", "v2")
    got1 = [(i.trace_id, i.success, i.cost_usd, i.duration_ms, i.failure_mode) for i in v1.items]
    assert got1 == [
        (tid(1).hex(), True, pytest.approx(0.001), 100, None),
        (tid(2).hex(), True, pytest.approx(0.003), 200, None),  # the label overrides the app's failure
        (tid(3).hex(), None, pytest.approx(0.002), 400, None),  # unknown
        (tid(4).hex(), True, None, 800, None),  # unpriced: cost unknown
    ]
    got2 = [(i.success, i.cost_usd, i.duration_ms, i.failure_mode) for i in v2.items]
    assert got2 == [
        (False, pytest.approx(0.001), 300, "hallucination"),  # the label overrides the app's success
        (True, pytest.approx(0.002), 500, None),
        (False, pytest.approx(0.004), 700, None),  # ERROR status, no reviewer: no failure mode
        (False, pytest.approx(0.0015), 900, "refusal"),
        (None, pytest.approx(0.0005), 1000, None),
    ]
    assert all(i.key is None for i in (*v1.items, *v2.items))  # production tasks are not paired


def figures(side: Side) -> dict[str, float | None]:
    """The compare report's figures computed from a side's items."""
    costs = [math.nan if i.cost_usd is None else i.cost_usd for i in side.items]
    wins = [i.success is True for i in side.items]
    durations = [i.duration_ms for i in side.items]
    n = len(side.items)
    cps = statistic_of(costs, "cost_per_success", wins)
    return {
        "tasks": n,
        "success_rate": sum(wins) / n,
        "cost_per_task": sum(c for c in costs if not math.isnan(c)) / n,
        "cost_per_successful_task": None if math.isnan(cps) else cps,
        "p50_ms": quantile_cont(durations, 0.5),
        "p95_ms": quantile_cont(durations, 0.95),
    }


def test_sides_equal_the_compare_report(an: Analytics) -> None:
    v1, v2 = production_sides(an, W, "prompt_version", "v1", "v2")
    df, used = run_report(an, "compare", W, source="raw", by="prompt_version", a="v1", b="v2")
    rows = {r["prompt_version"]: r for r in df.to_dicts()}
    # By hand. v1: 4 tasks, 3 successes (1, 2 by label, 4), $0.001 + 0.003 + 0.002 (4 unpriced);
    # durations 100, 200, 400, 800: p50 at 1.5 → 300, p95 at 2.85 → 400 + 0.85·400 = 740.
    want1 = {"tasks": 4, "success_rate": 0.75, "cost_per_task": 0.0015, "cost_per_successful_task": 0.002,
             "p50_ms": 300, "p95_ms": 740}  # fmt: skip
    # v2: 5 tasks, 1 success (6); $0.001 + 0.002 + 0.004 + 0.0015 + 0.0005 = 0.009;
    # durations 300 ... 1000: p50 700, p95 at 3.8 → 900 + 0.8·100 = 980.
    want2 = {"tasks": 5, "success_rate": 0.2, "cost_per_task": 0.0018, "cost_per_successful_task": 0.009,
             "p50_ms": 700, "p95_ms": 980}  # fmt: skip
    for side, want in ((v1, want1), (v2, want2)):
        mine = figures(side)
        report = {k: rows[side.name][k] for k in want}
        assert mine == pytest.approx(want) and report == pytest.approx(want)
        assert mine["tasks"] == report["tasks"]
        for k in ("p50_ms", "p95_ms"):  # the same interpolation (to the bit on DuckDB's x86-64 wheels)
            assert abs(mine[k] - report[k]) <= math.ulp(report[k])
    assert used == "raw"


def test_other_dimensions_and_a_side_without_tasks(an: Analytics) -> None:
    acme, mystery = production_sides(an, W, "model", "acme-1", "mystery-9")
    assert (len(acme.items), len(mystery.items)) == (9, 1)  # traces 1-3, 5-9 and 10 (3 + 5 + 1); 4
    assert [i.trace_id for i in mystery.items] == [tid(4).hex()]
    v1, nothing = production_sides(an, W, "prompt_version", "v1", "v7")
    assert len(v1.items) == 4 and nothing.items == [] and nothing.name == "v7"


def test_bounded_and_bad_input(an: Analytics) -> None:
    with pytest.raises(ValueError, match=r"more than 4 tasks.*narrow the window"):
        production_sides(an, W, "prompt_version", "v1", "v2", max_tasks=4)  # v2 has 5
    assert len(production_sides(an, W, "prompt_version", "v1", "v2", max_tasks=5)[1].items) == 5
    with pytest.raises(ValueError, match="compare by one of"):
        production_sides(an, W, "attributes", "a", "b")
