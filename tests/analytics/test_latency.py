"""Latency: percentiles by hand, errors and timeouts, slow share, TTFT of streamed calls, retries."""

from __future__ import annotations

import importlib
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanlake.analytics.pricing import PriceBook
from spanlake.analytics.reports import latency
from spanlake.analytics.reports import tasks as tasks_report
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from tests.analytics.helpers import MS, T0, span, write

WINDOW = Filters(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1))


def _llm(model: str, **extra: object) -> dict[str, object]:
    return {"gen_ai.operation.name": "chat", "gen_ai.request.model": model, **extra}


@pytest.fixture
def an(tmp_path: Path) -> Analytics:
    final = span(20, 5, 1, at_ms=70, ms=40, name="final", **_llm("m1"))
    # OpenInference's streamed-call marker: the first-token event 8 ms after the start
    draft = span(20, 3, 1, at_ms=20, ms=20, name="draft", **_llm("m1"))
    draft.events.append(Span.Event(time_unix_nano=draft.start_time_unix_nano + 8 * MS, name="First Token Stream Event"))
    spans = [
        span(20, 1, name="T1", ms=400),
        span(20, 2, 1, at_ms=1, ms=10, name="plan", **_llm("m1")),
        draft,
        span(20, 4, 1, at_ms=45, ms=30, name="review", **_llm("m1", **{"gen_ai.response.time_to_first_chunk": 0.012})),
        final,
        # a timed-out call, then the same step again under the same parent: a retry
        span(
            20, 6, 1, at_ms=120, ms=100, name="summarize", error=True, **_llm("m2", **{"error.type": "APITimeoutError"})
        ),
        span(20, 7, 1, at_ms=230, ms=50, name="summarize", **_llm("m2")),
        # an agent loop: the same tool twice, both fine — a repeat, not a retry
        span(21, 1, name="T2", ms=300),
        span(21, 2, 1, at_ms=1, ms=250, name="agent", **{"gen_ai.operation.name": "invoke_agent"}),
        span(21, 3, 2, at_ms=2, ms=5, name="search", **{"gen_ai.operation.name": "execute_tool"}),
        span(21, 4, 2, at_ms=9, ms=7, name="search", **{"gen_ai.operation.name": "execute_tool"}),
        span(22, 1, name="T3", ms=1000, error=True),
    ]
    write(tmp_path, spans)
    return Analytics(tmp_path, prices=PriceBook(use_database=False))


def test_task_and_step_percentiles(an: Analytics) -> None:
    rows = {r["level"]: r for r in latency(an, WINDOW, slow_ms=35).to_dicts()}
    # Tasks T2 300, T1 400, T3 1000 (linear interpolation at position (n-1)q):
    # p50 = 400; p90 at 1.8 → 400 + 0.8*600 = 880; p99 at 1.98 → 400 + 0.98*600 = 988
    t = rows["task"]
    assert (t["count"], t["p50_ms"], t["p90_ms"], t["p99_ms"], t["max_ms"]) == (3, 400, 880, pytest.approx(988), 1000)
    assert t["error_rate"] == pytest.approx(1 / 3) and t["slow_share"] == 1.0
    # LLM calls 10, 20, 30, 40, 50, 100: p50 at 2.5 → 30 + 0.5*10 = 35; p90 at 4.5 → 50 + 0.5*50 = 75;
    # p95 at 4.75 → 87.5; p99 at 4.95 → 97.5
    llm = rows["llm"]
    assert llm["count"] == 6
    assert (llm["p50_ms"], llm["p90_ms"], llm["p95_ms"]) == (pytest.approx(35), pytest.approx(75), pytest.approx(87.5))
    assert (llm["p99_ms"], llm["max_ms"]) == (pytest.approx(97.5), 100)
    assert llm["error_rate"] == pytest.approx(1 / 6) and llm["timeout_rate"] == pytest.approx(1 / 6)
    assert llm["slow_share"] == pytest.approx(3 / 6)  # 40, 50, 100 are over 35 ms
    # TTFT: review 0.012 s → 12 ms (OTel attribute), draft 8 ms (OpenInference event): p50 = 10, p95 = 8 + 0.95*4
    assert (llm["ttft_count"], llm["ttft_p50_ms"], llm["ttft_p95_ms"]) == (2, 10, pytest.approx(11.8))
    assert (llm["repeats"], llm["retries"]) == (1, 1)
    tool = rows["tool"]
    assert (tool["count"], tool["repeats"], tool["retries"]) == (2, 1, 0)
    assert rows["agent"]["count"] == 1


def test_per_model(an: Analytics) -> None:
    got = {(r["level"], r["model"]): r for r in latency(an, WINDOW, ["model"]).to_dicts()}
    # m1: 10, 20, 30, 40 → p50 25; m2: 100 (timed out), 50 → p50 75
    assert got[("llm", "m1")]["p50_ms"] == pytest.approx(25)
    assert got[("llm", "m2")]["p50_ms"] == pytest.approx(75)
    assert got[("llm", "m2")]["timeout_rate"] == pytest.approx(0.5)
    # tasks by model: a task's model is its first LLM call's (T1 → m1); T2 and T3 made none
    assert got[("task", "m1")]["count"] == 1 and got[("task", None)]["count"] == 2


def test_group_by_allow_list(an: Analytics) -> None:
    with pytest.raises(ValueError, match="cannot group by"):
        latency(an, WINDOW, ["model; DROP TABLE spans"])


@pytest.fixture
def attempts(tmp_path: Path) -> Analytics:
    hour_ms = 3600 * 1000
    tool = {"gen_ai.operation.name": "execute_tool"}
    agent = {"gen_ai.operation.name": "invoke_agent"}
    spans = [
        span(30, 1, name="T", ms=100),
        span(30, 2, 1, at_ms=1, ms=90, name="agent-a", **agent),
        span(30, 3, 1, at_ms=2, ms=90, name="agent-b", **agent),
        span(30, 4, 1, at_ms=3, ms=90, name="agent-c", **agent),
        # one step three times under parent 2: m1 fails, the fallback m2 fails, m3 succeeds
        span(30, 20, 2, at_ms=10, ms=5, name="call", error=True, **_llm("m1")),
        span(30, 21, 2, at_ms=20, ms=5, name="call", error=True, **_llm("m2")),
        span(30, 22, 2, at_ms=30, ms=5, name="call", **_llm("m3")),
        # the same name under another parent, right after: not a repeat
        span(30, 23, 3, at_ms=31, ms=5, name="call", **_llm("m1")),
        # two attempts starting in the same millisecond: ordered by span id, so 0x0b follows the failed 0x0a
        span(30, 0x0B, 4, at_ms=50, ms=5, name="call", **_llm("m1")),
        span(30, 0x0A, 4, at_ms=50, ms=5, name="call", error=True, **_llm("m1")),
        # a tool polled again after more than RETRY_LOOKBACK (not a repeat), then right away (a repeat)
        span(31, 1, name="T", ms=2 * hour_ms),
        span(31, 2, 1, at_ms=1, ms=5, name="poll", error=True, **tool),
        span(31, 3, 1, at_ms=1 + hour_ms + 1, ms=5, name="poll", **tool),
        span(31, 4, 1, at_ms=1 + hour_ms + 2, ms=5, name="poll", **tool),
    ]
    write(tmp_path, spans)
    return Analytics(tmp_path, prices=PriceBook(use_database=False))


def _repeats(df: object) -> dict[tuple[str, str | None], tuple[int, int, int]]:
    return {(r["level"], r.get("model")): (r["count"], r.get("repeats"), r.get("retries")) for r in df.to_dicts()}  # type: ignore[attr-defined]


def test_repeats_and_retries_by_hand(attempts: Analytics) -> None:
    window = Filters(since=T0, until=T0 + timedelta(hours=3))
    got = _repeats(latency(attempts, window, ["model"]))
    # m1: 20 (first), 23 (other parent), 0x0a (first), 0x0b (after the failed 0x0a) → 1 repeat, 1 retry
    # m2: 21 after the failed 20 → 1, 1; m3: 22 after the failed 21 → 1, 1
    assert got[("llm", "m1")] == (4, 1, 1)
    assert got[("llm", "m2")] == (1, 1, 1)
    assert got[("llm", "m3")] == (1, 1, 1)
    # polls: the second came over an hour after the failed first (not a repeat); the third repeats the second
    assert got[("tool", None)] == (3, 1, 0)
    assert got[("agent", None)] == (3, 0, 0)  # three names under one parent
    # a model filter still matches each step with the attempt before it: m3's was m2's failure
    only_m3 = _repeats(latency(attempts, Filters(since=window.since, until=window.until, model="m3"), ["model"]))
    assert only_m3[("llm", "m3")] == (1, 1, 1)
    assert {k for k in only_m3 if k[0] != "task"} == {("llm", "m3")}


def test_step_groups_sharing_a_key_hash_fail_loudly(attempts: Analytics, monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("spanlake.analytics.reports.latency")
    monkeypatch.setattr(module, "_key_hash", lambda exprs: "0::UBIGINT")  # every group one hash
    with pytest.raises(Exception, match="share a key hash"):
        latency(attempts, Filters(since=T0, until=T0 + timedelta(hours=3)), ["model"])


def test_tasks_and_steps_each_read_their_own_window(tmp_path: Path) -> None:
    """Latency reads spans once for both parts; each part still sees only what its source reads:
    steps the hour before the window (for the attempt before), tasks only `skew` before it."""
    since = T0 + timedelta(hours=2)
    at = (since - T0) / timedelta(milliseconds=1)
    write(
        tmp_path,
        [
            # a task in the window with a child stamped 30 min early (beyond the 5 min skew): the
            # task's first call is m-late's, as the tasks report says
            span(41, 1, name="T", at_ms=at + 60_000, ms=10),
            span(41, 2, 1, at_ms=at - 1_800_000, ms=5, name="early", **_llm("m-early")),
            span(41, 3, 1, at_ms=at + 120_000, ms=5, name="late", **_llm("m-late")),
            # a failed call 30 min before the window, retried inside it
            span(42, 1, name="T", at_ms=at - 1_800_000, ms=3_600_000),
            span(42, 2, 1, at_ms=at - 1_800_000 + 1, ms=5, name="call", error=True, **_llm("m-late")),
            span(42, 3, 1, at_ms=at + 60_000, ms=5, name="call", **_llm("m-late")),
            # after the window: read for tasks that started in it (horizon), not a step of it
            span(42, 4, 1, at_ms=at + 4_200_000, ms=5, name="call", **_llm("m-late")),
        ],
    )
    an = Analytics(tmp_path, prices=PriceBook(use_database=False))
    window = Filters(since=since, until=since + timedelta(hours=1))
    got = _repeats(latency(an, window, ["model"]))
    assert got == {("task", "m-late"): (1, None, None), ("llm", "m-late"): (2, 1, 1)}  # type: ignore[comparison-overlap]
    by_model = tasks_report(an, window, ["model"])
    assert by_model.select("model", "tasks").rows() == [("m-late", 1)]
