"""Spark (pyspark, local mode) reads a lake spanlake wrote and gets the latency and cost
reports' numbers that DuckDB gets (analytics.spark vs analytics.reports)."""

from __future__ import annotations

import hashlib
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from spanlake.analytics.pricing import PriceBook, PriceOverride
from spanlake.analytics.reports.cost import cost
from spanlake.analytics.reports.latency import latency
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.spark import SparkReports, register_lake
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.collector.decode import decode_spans
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.analytics import call_pair_data as call_pairs
from tests.conftest import start_collector
from tests.factories import make_request, make_span

pytestmark = pytest.mark.slow
HOUR_NS = 3600 * 10**9
MODELS = ("gpt-a", "gpt-b", "mystery")  # the last has no price
PRICES = PriceBook(
    overrides=[
        PriceOverride(
            model="gpt-a",
            input_mtok=2.5,
            output_mtok=10.0,
            cache_read_mtok=1.25,
            cache_write_mtok=3.0,
            cache_write_1h_mtok=5.0,
        ),
        PriceOverride(model="gpt-b", input_mtok=0.15, output_mtok=0.6, provider="openai"),
    ],
    use_database=False,
)


def sid(*parts: object) -> bytes:
    return hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()


def trace_requests(n_traces: int) -> list[bytes]:
    """Agent traces: a root task, LLM calls (some streamed, failed, timed out, retried), tools, retrieval."""
    now = time.time_ns()
    bodies = []
    for t in range(n_traces):
        tid = hashlib.blake2b(f"t{t}".encode(), digest_size=16).digest()
        start = now - (t % 5) * HOUR_NS - t * 10**6
        root = sid(t, "root")
        failed = t % 7 == 0
        spans = [
            make_span(
                "agent",
                trace_id=tid,
                span_id=root,
                start_ns=start,
                duration_ns=(200 + 37 * t) * 10**6,
                attributes={"gen_ai.operation.name": "invoke_agent"},
                status_code=2 if failed else 0,
            )
        ]
        for i in range(1 + t % 3):
            model = MODELS[(t + i) % 3]
            error = (t + i) % 5 == 0
            attrs: dict[str, Any] = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": 100 + 13 * t + i,
                "gen_ai.usage.output_tokens": 20 + 7 * i,
            }
            if (t + i) % 4 == 0:
                attrs["gen_ai.usage.cache_read_input_tokens"] = 40
            if (t + i) % 4 == 1:  # cache writes, part of them 1-hour ones (priced at their own rate)
                attrs["gen_ai.usage.cache_write.input_tokens"] = 30
                attrs["anthropic.usage.cache_creation.ephemeral_1h_input_tokens"] = 10 + t % 3 * 10
            if (t + i) % 3 == 1:
                attrs["gen_ai.response.time_to_first_chunk"] = 0.05 + 0.01 * t
            if error:
                attrs["error.type"] = "timeout" if t % 2 else "RateLimitError"
            spans.append(
                make_span(
                    "chat",
                    trace_id=tid,
                    span_id=sid(t, "llm", i),
                    parent_span_id=root,
                    start_ns=start + (i + 1) * 10**7,
                    duration_ns=(50 + 11 * t + 3 * i) * 10**6,
                    attributes=attrs,
                    status_code=2 if error else 0,
                )
            )
        spans.append(
            make_span(
                "search",
                trace_id=tid,
                span_id=sid(t, "tool"),
                parent_span_id=root,
                start_ns=start + 5 * 10**7,
                duration_ns=(5 + t) * 10**6,
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
            )
        )
        if t % 5 >= 2 and t % 2:  # the tool again after more than the retry look-back: not a repeat
            spans.append(
                make_span(
                    "search",
                    trace_id=tid,
                    span_id=sid(t, "tool", "late"),
                    parent_span_id=root,
                    start_ns=start + 5 * 10**7 + 61 * 60 * 10**9,
                    duration_ns=(5 + t) * 10**6,
                    attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
                )
            )
        project = "alpha" if t % 3 else "beta"
        req = make_request(spans, resource={"service.name": f"svc-{t % 2}", "spanlake.project": project})
        bodies.append(req.SerializeToString())
    return bodies


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake written by a real collector over OTLP/HTTP, some requests delivered twice."""
    data = tmp_path_factory.mktemp("spark") / "data"
    running, stop = start_collector(data)
    try:
        with httpx.Client(timeout=10) as client:
            bodies = trace_requests(60)
            for body in [*bodies, *bodies[::4]]:  # re-sent: both engines must count them once
                r = client.post(
                    f"{running.http}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
                )
                assert r.status_code == 200
        running.flush()
    finally:
        stop()
    raw, dedup = (
        Lake(data).query(f"SELECT count(*) AS n FROM {v}").to_pylist()[0]["n"] for v in ("spans_raw", "spans")
    )
    assert raw > dedup > 0
    return data


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="pip install pyspark (a dev dependency of the Spark test)")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("spanlake-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is None and b is None
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def assert_rows_match(duck: pl.DataFrame, spark_rows: list[dict[str, Any]], keys: list[str]) -> None:
    """Every Spark row equals DuckDB's row with the same keys, column by column."""
    assert spark_rows, "Spark returned nothing"
    assert len(spark_rows) == duck.height, (spark_rows, duck)
    by_key = {tuple(r[k] for k in keys): r for r in duck.to_dicts()}
    for row in spark_rows:
        d = by_key[tuple(row[k] for k in keys)]
        diff = {c: (v, d[c]) for c, v in row.items() if not same(v, d[c])}
        assert not diff, f"{dict((k, row[k]) for k in keys)}: spark vs duckdb {diff}"


@pytest.mark.parametrize("project", [None, "alpha"])
def test_spark_latency_and_cost_match_duckdb(lake_dir: Path, spark: Any, project: str | None) -> None:
    an = Analytics(lake_dir, prices=PRICES)
    options = TaskOptions(default_outcome="success")
    filters = Filters(project=project)
    register_lake(spark, str(Lake(lake_dir).data_dir.lake))
    reports = SparkReports(spark, PRICES, default_outcome="success")

    for group in ((), ("project",), ("model",)):
        duck = latency(an, filters, list(group), options=options)
        ours = reports.latency(filters, list(group))
        assert ours["unsupported_traces"] == [0]
        steps = duck.filter(pl.col("level") != "task")
        assert_rows_match(steps, ours["steps"], ["level", *group])
        if "model" not in group:
            assert_rows_match(
                duck.filter(pl.col("level") == "task").drop(steps_only(duck)),
                ours["tasks"],
                [
                    "level",
                    *group,
                ],
            )

    for group in ((), ("model",)):
        duck = cost(an, filters, list(group), options=options)
        ours = reports.cost(filters, list(group))
        call_cols = [c for c in ours["calls"][0]]
        assert_rows_match(duck.select(call_cols), ours["calls"], list(group))
        if not group:
            task_cols = list(ours["tasks"][0])
            assert_rows_match(duck.select(task_cols), ours["tasks"], [])
    totals = cost(an, filters, [], options=options).to_dicts()[0]
    assert totals["unpriced_calls"] > 0 and totals["cost_usd"] > 0 and totals["failed_tasks"] > 0


def steps_only(df: pl.DataFrame) -> list[str]:
    """Columns DuckDB's latency report fills for steps only."""
    return [c for c in ("ttft_count", "ttft_p50_ms", "ttft_p95_ms", "repeats", "retries") if c in df.columns]


def test_spark_reads_the_late_arrival_area(tmp_path: Path, spark: Any) -> None:
    """Rows a write sent to the late area (storage.late) are in Spark's views, once each,
    in their own hour, exactly as DuckDB's views have them."""
    dd = DataDir(tmp_path / "data").create()
    start = 1_700_000_000_000_000_000  # ns
    hours = [make_span(trace_id=sid(h), span_id=sid(h, "s")[:8], start_ns=start + h * 3_600_000_000_000)
             for h in range(6)]  # fmt: skip
    batch = decode_spans(make_request(hours), time.time_ns())
    LakeWriter(dd, max_hour_files=2).write_batch(SPANS, batch, "late-test")  # 2 hour files, 4 hours late
    assert list((dd.lake / "_late" / "spans").rglob("*.parquet"))
    register_lake(spark, str(dd.lake))
    sql = "SELECT date, hour, count(*) AS n FROM spans_raw GROUP BY date, hour ORDER BY date, hour"
    ours = [tuple(r) for r in spark.sql(sql).collect()]
    duck = [tuple(r.values()) for r in Lake(dd).query(sql).to_pylist()]
    assert len(ours) == 6 and all(n == 1 for *_, n in ours)
    assert ours == duck


def test_spark_counts_one_call_once(tmp_path: Path, spark: Any) -> None:
    """On tests/analytics/call_pair_data.py's lake (a client library's own span and an
    instrumentation's of one call, and calls that are not pairs), Spark counts what DuckDB
    counts: each call once, with the client's numbers, and the retry under instrumented calls."""
    call_pairs.build(tmp_path)
    prices = PriceBook(overrides=[PriceOverride(model="acme-*", input_mtok=1.0, output_mtok=2.0)], use_database=False)
    an = Analytics(tmp_path, prices=prices)
    register_lake(spark, str(Lake(tmp_path).data_dir.lake))
    reports = SparkReports(spark, prices, default_outcome="success")
    options = TaskOptions(default_outcome="success")
    duck = cost(an, Filters(), ["model"], options=options)
    ours = reports.cost(Filters(), ["model"])
    assert_rows_match(duck.select(list(ours["calls"][0])), ours["calls"], ["model"])
    assert {r["model"]: (r["calls"], r["input_tokens"], r["output_tokens"]) for r in ours["calls"]} == {
        "acme-1": (10, 6710, 671),
        "acme-2": (1, 50, 5),
    }
    (tasks,) = reports.cost(Filters())["tasks"]
    assert tasks["task_cost_usd"] == pytest.approx((6760 + 2 * 676) / 1e6)
    steps = latency(an, Filters(), options=options).filter(pl.col("level") != "task")
    ours_steps = reports.latency(Filters())["steps"]
    assert_rows_match(steps, ours_steps, ["level"])
    (llm,) = [r for r in ours_steps if r["level"] == "llm"]
    assert (llm["count"], llm["repeats"], llm["retries"]) == (12, 1, 1)


def test_spark_counts_one_call_of_three_layers_once(tmp_path: Path, spark: Any) -> None:
    """On tests/analytics/call_pair_data.py's three-layer lake (a framework's span over a client
    instrumentation's over a client's own), Spark counts each call once, as DuckDB does."""
    call_pairs.build_layers(tmp_path)
    prices = PriceBook(overrides=[PriceOverride(model="acme-*", input_mtok=1.0, output_mtok=2.0)], use_database=False)
    an = Analytics(tmp_path, prices=prices)
    register_lake(spark, str(Lake(tmp_path).data_dir.lake))
    reports = SparkReports(spark, prices, default_outcome="success")
    f = Filters(project="default")
    duck = cost(an, f, ["model"], options=TaskOptions(default_outcome="success"))
    ours = reports.cost(f, ["model"])
    assert_rows_match(duck.select(list(ours["calls"][0])), ours["calls"], ["model"])
    assert {r["model"]: (r["calls"], r["input_tokens"], r["output_tokens"]) for r in ours["calls"]} == {
        "acme-1": (12, 4420, 446),
        "acme-2": (1, 50, 5),
    }


def test_spark_counts_framework_calls_once(tmp_path: Path, spark: Any) -> None:
    """On tests/analytics/call_pair_data.py's frameworks lake (model names across a provider prefix
    and a dated snapshot, LlamaIndex's later siblings, wrappers and helpers, the most complete span
    of a call counting, a group through the anchor's anchor), Spark counts what DuckDB counts."""
    call_pairs.build_frameworks(tmp_path)
    price = PriceOverride(model="*acme-*", input_mtok=1.0, output_mtok=2.0, cache_read_mtok=0.5)
    prices = PriceBook(overrides=[price], use_database=False)
    an = Analytics(tmp_path, prices=prices)
    register_lake(spark, str(Lake(tmp_path).data_dir.lake))
    reports = SparkReports(spark, prices, default_outcome="success")
    f = Filters(project="default")
    options = TaskOptions(default_outcome="success")
    # DuckDB's report also lists `acme/acme-1`, named by a duplicate only, with no call (Spark: no row)
    duck = cost(an, f, ["model"], options=options).filter(pl.col("calls").is_not_null())
    ours = reports.cost(f, ["model"])
    assert_rows_match(duck.select(list(ours["calls"][0])), ours["calls"], ["model"])
    (total,) = reports.cost(f)["calls"]
    assert (total["calls"], total["input_tokens"], total["output_tokens"], total["cache_read_tokens"]) == (
        23,
        8150,
        815,
        270,
    )
    assert total["cost_usd"] == pytest.approx(call_pairs.cached_cost(8150, 815, 270), rel=1e-12)
    steps = latency(an, f, options=options).filter(pl.col("level") != "task")
    assert_rows_match(steps, reports.latency(f)["steps"], ["level"])
