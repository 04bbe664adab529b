"""Cost: each dialect's cached and reasoning tokens priced once, duplicates, unpriced models, tasks.

Prices are user overrides with round numbers so every expected value is worked out by hand
(USD per million tokens; a call costs the sum of tokens * rate / 1e6).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports import cost, unpriced
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from tests.analytics.helpers import T0, call_cost, span, write
from tests.conftest import RunningCollector
from tests.factories import make_request

# acme-1: input 1.00, cache read 0.10, cache write 1.25, output 4.00; reasoning = output rate.
ACME = PriceOverride(model="acme-1", input_mtok=1.0, output_mtok=4.0, cache_read_mtok=0.1, cache_write_mtok=1.25)
WINDOW = Filters(since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1))

DIALECTS = {
    "otel": {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "acme-1",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 500,
        "gen_ai.usage.cache_read.input_tokens": 400,
        "gen_ai.usage.reasoning.output_tokens": 200,
    },
    "openinference": {
        "openinference.span.kind": "LLM",
        "llm.model_name": "acme-1",
        "llm.token_count.prompt": 1000,
        "llm.token_count.completion": 500,
        "llm.token_count.total": 1500,
        "llm.token_count.prompt_details.cache_read": 400,
        "llm.token_count.completion_details.reasoning": 200,
    },
    "openllmetry": {
        "llm.request.type": "chat",
        "gen_ai.request.model": "acme-1",
        "gen_ai.usage.prompt_tokens": 1000,
        "gen_ai.usage.completion_tokens": 500,
        "llm.usage.total_tokens": 1500,
        "gen_ai.usage.cache_read_input_tokens": 400,
        "gen_ai.usage.reasoning_tokens": 200,
    },
}


def test_cached_and_reasoning_tokens_priced_once_per_dialect(collector: RunningCollector) -> None:
    spans = []
    for i, (dialect, attrs) in enumerate(DIALECTS.items(), start=1):
        spans.append(span(i, 1, name="chat", **{"test.dialect": dialect}, **attrs))
    # Anthropic through OTel names: 1000 input of which 300 read from and 200 written to cache.
    anthropic = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "acme-1",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 100,
        "gen_ai.usage.cache_read.input_tokens": 300,
        "gen_ai.usage.cache_creation.input_tokens": 200,
    }
    spans.append(span(9, 1, name="chat", **{"test.dialect": "otel-cache-write"}, **anthropic))
    r = httpx.post(
        f"{collector.http}/v1/traces",
        content=make_request(spans).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 200
    collector.flush()

    an = Analytics(collector.data_dir, prices=PriceBook(overrides=[ACME], use_database=False))
    df = cost(an, WINDOW, ["attr:test.dialect"])
    got = {row["attr:test.dialect"]: row for row in df.iter_rows(named=True)}
    # 1000 input incl. 400 cached, 500 output incl. 200 reasoning:
    #   (1000-400)*1.00 + 400*0.10 + (500-200)*4.00 + 200*4.00 = 600 + 40 + 1200 + 800 = 2640 → $0.002640
    # (counting cached on top of input would give 3040; reasoning on top of output 3440)
    for dialect in DIALECTS:
        row = got[dialect]
        assert (row["input_tokens"], row["cache_read_tokens"]) == (1000, 400), dialect
        assert (row["output_tokens"], row["reasoning_tokens"]) == (500, 200), dialect
        assert row["cost_usd"] == pytest.approx(2640 / 1e6), dialect
    # (1000-300-200)*1.00 + 300*0.10 + 200*1.25 + 100*4.00 = 500 + 30 + 250 + 400 = 1180
    assert got["otel-cache-write"]["cache_write_tokens"] == 200
    assert got["otel-cache-write"]["cost_usd"] == pytest.approx(1180 / 1e6)


def test_reasoning_billed_at_its_own_rate() -> None:
    """When reasoning has its own price, only output minus reasoning is billed at the output rate."""
    book = PriceBook(overrides=[PriceOverride(model="r-1", input_mtok=1.0, output_mtok=4.0, reasoning_mtok=8.0)])
    (row,) = book.rows("", "r-1")
    # 600 + 400*1.00 (no cache rate: input rate) + 300*4 + 200*8 = 600 + 400 + 1200 + 1600 = 3800
    assert call_cost(row, 1000, 400, 0, 500, 200) == pytest.approx(3800 / 1e6)


def _llm(model: str, inp: int, out: int, **extra: object) -> dict[str, object]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "acme",
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        **extra,
    }


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """Four tasks (root spans marked as tasks), one delivered twice, one calling an unpriced model."""
    d = tmp_path / "data"
    t1 = [
        span(1, 1, name="t1", ms=100, **{"spanlake.task.name": "answer", "spanlake.task.outcome": "success"}),
        span(1, 2, 1, at_ms=1, name="chat", **_llm("acme-1", 1000, 500)),
    ]
    write(d, t1)
    write(d, t1)  # the exporter retried: same ids delivered twice
    write(
        d,
        [
            span(2, 1, name="t2", ms=100, **{"spanlake.task.name": "answer", "spanlake.task.outcome": "failure"}),
            span(2, 2, 1, at_ms=1, name="chat", **_llm("acme-1", 2000, 1000)),
            span(3, 1, name="t3", ms=100, **{"spanlake.task.name": "answer"}),
            span(3, 2, 1, at_ms=1, name="chat", **_llm("mystery-9", 100, 100)),
            span(3, 3, 1, at_ms=2, name="chat", **_llm("acme-1", 500, 0)),
            span(4, 1, name="t4", ms=100, **{"spanlake.task.name": "answer", "spanlake.task.outcome": "success"}),
            span(4, 2, 1, at_ms=1, name="chat", **_llm("acme-1", 0, 250, **{"llm.cost.total": 0.5})),
        ],
    )
    return d


def test_totals_duplicates_unpriced_and_cost_per_successful_task(lake: Path) -> None:
    an = Analytics(lake, prices=PriceBook(overrides=[ACME], use_database=False))
    (row,) = cost(an, WINDOW).iter_rows(named=True)
    # Priced calls: t1 1000*1 + 500*4 = 3000; t2 2000*1 + 1000*4 = 6000; t3 500*1 = 500; t4 250*4 = 1000
    # → 10500 / 1e6. The duplicated t1 call counts once; mystery-9 has no price.
    assert row["calls"] == 5
    assert row["input_tokens"] == 1000 + 2000 + 100 + 500 + 0
    assert row["cost_usd"] == pytest.approx(10500 / 1e6)
    assert row["unpriced_calls"] == 1
    assert row["reported_cost_usd"] == pytest.approx(0.5)  # kept beside, never mixed in
    # Tasks: t1 success, t2 failure, t3 unknown (no outcome, no error), t4 success.
    assert (row["tasks"], row["successful_tasks"], row["failed_tasks"]) == (4, 2, 1)
    assert row["success_rate"] == pytest.approx(2 / 4)
    assert row["task_cost_usd"] == pytest.approx(10500 / 1e6)
    assert row["task_unpriced_calls"] == 1
    assert row["cost_per_task"] == pytest.approx(10500 / 1e6 / 4)
    # all tasks' cost, the failed one included, over the successful ones: 0.0105 / 2
    assert row["cost_per_successful_task"] == pytest.approx(10500 / 1e6 / 2)


def test_by_model_calls_versus_tasks(lake: Path) -> None:
    an = Analytics(lake, prices=PriceBook(overrides=[ACME], use_database=False))
    got = {r["model"]: r for r in cost(an, WINDOW, ["model"]).iter_rows(named=True)}
    assert got["acme-1"]["calls"] == 4 and got["acme-1"]["cost_usd"] == pytest.approx(10500 / 1e6)
    # An unpriced model's cost is unknown (NULL), not zero.
    assert got["mystery-9"]["calls"] == 1 and got["mystery-9"]["cost_usd"] is None
    assert got["mystery-9"]["unpriced_calls"] == 1
    # A task's model is its first LLM call's: t3 called mystery-9 first, so it is a mystery-9 task
    # whose (priced) cost is its acme-1 call, 500 / 1e6.
    assert got["acme-1"]["tasks"] == 3 and got["acme-1"]["task_cost_usd"] == pytest.approx(10000 / 1e6)
    assert got["acme-1"]["cost_per_successful_task"] == pytest.approx(10000 / 1e6 / 2)
    assert got["mystery-9"]["tasks"] == 1 and got["mystery-9"]["task_cost_usd"] == pytest.approx(500 / 1e6)
    assert got["mystery-9"]["cost_per_successful_task"] is None  # no successful task: undefined, not 0


def test_unpriced_models_listed(lake: Path) -> None:
    an = Analytics(lake, prices=PriceBook(overrides=[ACME], use_database=False))
    rows = unpriced(an, WINDOW).to_dicts()
    assert [(r["provider"], r["model"], r["calls"], r["input_tokens"]) for r in rows] == [("acme", "mystery-9", 1, 100)]


def test_a_corrected_price_fixes_history(lake: Path) -> None:
    book = PriceBook(overrides=[ACME], use_database=False)
    an = Analytics(lake, prices=book)
    assert cost(an, WINDOW)["cost_usd"][0] == pytest.approx(10500 / 1e6)
    book.add_override(PriceOverride(model="acme-1", input_mtok=2.0, output_mtok=4.0))
    # input now 2.00: t1 2000 + 2000; t2 4000 + 4000; t3 1000; t4 1000 → 14000
    assert cost(an, WINDOW)["cost_usd"][0] == pytest.approx(14000 / 1e6)


def test_cost_by_day_bucket_and_window(lake: Path) -> None:
    an = Analytics(lake, prices=PriceBook(overrides=[ACME], use_database=False))
    df = cost(an, WINDOW, ["day"])
    assert df.height == 1 and df["day"][0].isoformat().startswith("2025-06-02")
    later = Filters(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
    empty = cost(an, later)
    assert empty.height == 0 or (empty["calls"][0] in (None, 0) and empty["tasks"][0] in (None, 0))
