"""Generate a synthetic lake and time every analytics report on it.

    python bench/analytics_lake.py --data-dir /tmp/bench-lake --spans 10000000 --days 7

Each trace is 5 spans: a task root (`answer`, app outcome success / failure / none), an LLM
call, a retrieval, a second LLM call and a validation; so 10M spans are 2M tasks. Rows are
written straight to Parquet with DuckDB (hive partitions project/date/hour, sorted by start
time like the collector's files), with the lake's full column list, and 1% of the traces are
written a second time into their partitions (an exporter's retries); then spanlake's own
compactor merges each partition, as it does in a running server (`--no-compact` leaves the lake
as flushed, every partition needing de-duplication at query time: the worst case). Every
report runs over a 1-day and the full window from raw spans; then the hourly rollups are built
and every report is timed from them. `--reuse` skips generation.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from spanlake.storage.layout import DataDir
from spanlake.storage.reader import duckdb_type
from spanlake.storage.schema import SPANS

START = datetime(2025, 6, 1, tzinfo=UTC)
RESENT_EVERY = 100  # one trace in this many is delivered twice
MODELS = "['gpt-4o-mini-2024-07-18', 'gpt-4o-2024-08-06', 'claude-3-5-sonnet-20241022', 'acme-internal']"
PROVIDERS = "['openai', 'openai', 'anthropic', 'acme']"

# One expression per stored column (unlisted columns are NULL). `t` is the trace number,
# `k` the span's position in the trace (0 root, 1 llm, 2 retrieval, 3 llm, 4 validation).
EXPR = {
    "project": "'bench'",
    # random-looking ids, as OTel SDKs make them (W3C trace context): sorting and hashing see no shared prefix
    "trace_id": "md5(t::VARCHAR)",
    "span_id": "left(md5((t * 8 + k + 1)::VARCHAR), 16)",
    "parent_span_id": "CASE WHEN k = 0 THEN NULL ELSE left(md5((t * 8 + 1)::VARCHAR), 16) END",
    "name": "['answer', 'chat', 'retrieve', 'chat', 'schema_check'][k + 1]",
    "kind": "'INTERNAL'",
    "start_time": "ts + to_microseconds((k * 40)::BIGINT * 1000)",
    "end_time": "ts + to_microseconds((k * 40)::BIGINT * 1000 + dur_us)",
    "start_time_unix_nano": "epoch_us(ts) * 1000 + k * 40000000",
    "duration_ns": "dur_us * 1000",
    "status_code": "CASE WHEN bh([t, k]) % 50 = 0 THEN 'ERROR' ELSE 'UNSET' END",
    "service_name": "['api', 'worker'][(t % 2) + 1]",
    "category": "['task', 'llm', 'retrieval', 'llm', 'guardrail'][k + 1]",
    "operation": "CASE WHEN k IN (1, 3) THEN 'chat' WHEN k = 2 THEN 'retrieval' END",
    "provider": f"CASE WHEN k IN (1, 3) THEN {PROVIDERS}[(t % 4) + 1] END",
    "request_model": f"CASE WHEN k IN (1, 3) THEN {MODELS}[(t % 4) + 1] END",
    "response_model": f"CASE WHEN k IN (1, 3) THEN {MODELS}[(t % 4) + 1] END",
    "input_tokens": "CASE WHEN k IN (1, 3) THEN 200 + bh([t, k]) % 4000 END",
    "output_tokens": "CASE WHEN k IN (1, 3) THEN 50 + bh([t, k, 1]) % 800 END",
    "cache_read_tokens": "CASE WHEN k = 3 THEN 100 END",
    "reasoning_tokens": "CASE WHEN k = 3 AND t % 4 = 0 THEN 20 END",
    "total_tokens": "CASE WHEN k IN (1, 3) THEN 250 + bh([t, k]) % 4000 + bh([t, k, 1]) % 800 END",
    "time_to_first_token_ms": "CASE WHEN k = 1 THEN (bh([t]) % 300)::DOUBLE END",
    "prompt_version": "CASE WHEN k IN (1, 3) THEN ['v1', 'v2'][(t // 3 % 2) + 1] END",
    "task_name": "CASE WHEN k = 0 THEN 'answer' END",
    "task_outcome": "CASE WHEN k = 0 THEN [NULL, 'success', 'success', 'failure'][(bh([t]) % 4) + 1] END",
    "validation_name": "CASE WHEN k = 4 THEN 'schema' END",
    "validation_passed": "CASE WHEN k = 4 THEN bh([t, 4]) % 10 <> 0 END",
    "attributes": "CASE WHEN k = 4 AND bh([t, 4]) % 10 = 0 THEN "
    "'{\"spanlake.validation.errors\": [\"missing field ''' || (t % 7) || '''\"]}' "
    "WHEN k = 2 THEN '{\"gen_ai.data_source.id\": \"kb' || (t % 3) || '\"}' ELSE '{}' END",
    "content": 'CASE WHEN k = 2 THEN \'{"gen_ai.retrieval.documents": [{"id": "d\' || (t % 97) || '
    '\'", "score": 0.8}, {"id": "d\' || (t % 89) || \'", "score": 0.4}]}\' END',
    "resource_attributes": '\'{"service.name": "api"}\'',
    "ingested_at": "ts",
}


def generate(data_dir: Path, spans: int, days: int) -> None:
    """Write `spans` spans (spans // 5 traces, spread over `days`) into data_dir's lake, and
    every RESENT_EVERY-th trace once more."""
    dd = DataDir(data_dir).create()
    out = dd.lake / "spans"
    if out.exists():
        shutil.rmtree(out)
    traces = spans // 5
    seconds = days * 86400
    cols = []
    for c in SPANS.all_columns:
        if c.name in ("date", "hour"):
            continue
        cols.append(f"CAST({EXPR.get(c.name, 'NULL')} AS {duckdb_type(c.type)}) AS {c.name}")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("CREATE MACRO bh(x) AS (hash(x) % 1000000007)::BIGINT")  # a BIGINT hash: list indexes need one
    sql = f"""
    COPY (
      WITH tr AS (
        SELECT t, TIMESTAMPTZ '{START.isoformat()}' + to_microseconds((t * {seconds}::BIGINT * 1000000) // {traces})
               AS ts FROM range({traces}) r(t)
      ),
      sp AS (SELECT t, k, ts, (CASE WHEN k = 0 THEN 200000 ELSE 5000 + bh([t, k]) % 60000 END)::BIGINT AS dur_us
             FROM tr, range(5) s(k) WHERE {{resent}})
      -- partitioned by each span's own start, as the collector does (a trace may cross an hour)
      SELECT *, CAST(start_time AS DATE) AS date, strftime(start_time, '%H') AS hour
      FROM (SELECT {", ".join(cols)} FROM sp) ORDER BY start_time
    ) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (project, date, hour), ROW_GROUP_SIZE 65536,
                  FILENAME_PATTERN '{{name}}-{{i}}', OVERWRITE_OR_IGNORE)
    """
    con.execute(sql.replace("{name}", "flushed").replace("{resent}", "TRUE"))
    con.execute(sql.replace("{name}", "resent").replace("{resent}", f"t % {RESENT_EVERY} = 7"))
    con.close()


def compact_lake(data_dir: Path) -> None:
    """Merge every partition with spanlake's compactor (as the server does once files settle)."""
    from spanlake.storage.compact import compact

    t0 = time.perf_counter()
    r = compact(DataDir(data_dir), min_age_s=0, settle_age_s=0)
    print(f"compacted {r.partitions} partitions: {r.rows_in} rows -> {r.rows_out} "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)  # fmt: skip


def time_reports(data_dir: Path, days: int) -> list[tuple[str, str, float, int]]:
    from spanlake.analytics import reports as R
    from spanlake.analytics.pricing import PriceBook, PriceOverride
    from spanlake.analytics.runner import Analytics
    from spanlake.analytics.spans import Filters

    an = Analytics(data_dir, prices=PriceBook(overrides=[PriceOverride(model="acme-*", input_mtok=1, output_mtok=2)]))
    end = START + timedelta(days=days)
    windows = {
        "1 day": Filters(since=end - timedelta(days=1), until=end),
        f"{days} days": Filters(since=START, until=end),
    }
    cases: dict[str, Callable[[Filters], Any]] = {
        "latency": lambda f: R.latency(an, f, ["model"]),
        "cost by model, day": lambda f: R.cost(an, f, ["model", "day"]),
        "unpriced": lambda f: R.unpriced(an, f),
        "tasks by outcome_source": lambda f: R.tasks(an, f, ["outcome_source"]),
        "task-list by cost": lambda f: R.task_list(an, f, sort="cost"),
        "validation by prompt_version": lambda f: R.validation(an, f, ["validator", "prompt_version"]),
        "validation-errors": lambda f: R.validation_errors(an, f),
        "retrieval": lambda f: R.retrieval(an, f),
        "retrieved-documents": lambda f: R.retrieved_documents(an, f),
        "compare v1 v2": lambda f: R.compare(an, f, "prompt_version", "v1", "v2"),
    }
    results = []
    for window, f in windows.items():
        for name, run in cases.items():
            t0 = time.perf_counter()
            df = run(f)
            elapsed = time.perf_counter() - t0
            results.append((window, name, elapsed, df.height))
            print(f"{window:>8}  {name:<30} {elapsed:8.2f} s  ({df.height} rows)", flush=True)
    return results


def time_rollups(data_dir: Path, days: int, check: bool) -> None:
    """Build the hourly rollups from scratch, then time every report read from them (and, with
    `check`, compare each with the raw report: counts and sums equal, percentiles within ALPHA)."""
    from spanlake.analytics import sketch
    from spanlake.analytics.pricing import PriceBook, PriceOverride
    from spanlake.analytics.reports.registry import run_report
    from spanlake.analytics.rollups import materialize
    from spanlake.analytics.rollups.tables import rollup_dir
    from spanlake.analytics.runner import Analytics
    from spanlake.analytics.spans import Filters
    from spanlake.analytics.traces.overview import overview

    an = Analytics(data_dir, prices=PriceBook(overrides=[PriceOverride(model="acme-*", input_mtok=1, output_mtok=2)]))
    t0 = time.perf_counter()
    result = materialize.run(an, full=True)
    print(f"rollups: full build of {result.hours_seen} hours in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    result = materialize.run(an)
    print(f"rollups: incremental run with nothing new in {time.perf_counter() - t0:.2f} s", flush=True)
    size = sum(f.stat().st_size for f in rollup_dir(an.lake.data_dir).rglob("*.parquet"))
    print(f"rollups: {size / 1e6:.1f} MB on disk", flush=True)
    end = START + timedelta(days=days)
    cases: dict[str, Callable[[Filters], tuple[Any, str]]] = {
        "latency by model": lambda f: run_report(an, "latency", f, ["model"], source="rollups"),
        "cost by model, day": lambda f: run_report(an, "cost", f, ["model", "day"], source="rollups"),
        "tasks by outcome_source": lambda f: run_report(an, "tasks", f, ["outcome_source"], source="rollups"),
        "validation by prompt_version": lambda f: run_report(
            an, "validation", f, ["validator", "prompt_version"], source="rollups"
        ),
        "retrieval": lambda f: run_report(an, "retrieval", f, ["data_source"], source="rollups"),
        "compare v1 v2": lambda f: run_report(an, "compare", f, source="rollups", by="prompt_version", a="v1", b="v2"),
        "overview (dashboard)": lambda f: (lambda o: (o.trend, o.source))(overview(an, f)),
        "unpriced": lambda f: run_report(an, "unpriced", f),
        "task-list by cost": lambda f: run_report(an, "task-list", f, sort="cost"),
        "validation-errors": lambda f: run_report(an, "validation-errors", f),
        "retrieved-documents": lambda f: run_report(an, "retrieved-documents", f),
    }
    raw_of: dict[str, Callable[[Filters], Any]] = {
        "latency by model": lambda f: run_report(an, "latency", f, ["model"], source="raw")[0],
        "cost by model, day": lambda f: run_report(an, "cost", f, ["model", "day"], source="raw")[0],
        "tasks by outcome_source": lambda f: run_report(an, "tasks", f, ["outcome_source"], source="raw")[0],
        "validation by prompt_version": lambda f: run_report(
            an, "validation", f, ["validator", "prompt_version"], source="raw"
        )[0],
        "retrieval": lambda f: run_report(an, "retrieval", f, ["data_source"], source="raw")[0],
        "compare v1 v2": lambda f: run_report(an, "compare", f, source="raw", by="prompt_version", a="v1", b="v2")[0],
        "overview (dashboard)": lambda f: overview(an, f, source="raw").trend,
        "unpriced": lambda f: run_report(an, "unpriced", f, source="raw")[0],
        "task-list by cost": lambda f: run_report(an, "task-list", f, sort="cost", source="raw")[0],
        "validation-errors": lambda f: run_report(an, "validation-errors", f, source="raw")[0],
        "retrieved-documents": lambda f: run_report(an, "retrieved-documents", f, source="raw")[0],
    }
    ragged = timedelta(minutes=17), timedelta(minutes=43)  # edges off the hour: read raw, the rest rolled up
    windows = {
        "1 day": (end - timedelta(days=1), end),
        f"{days} days": (START, end),
        "ragged 1 day": (end - timedelta(days=1) + ragged[0], end - ragged[1]),
        f"ragged {days} days": (START + ragged[0], end - ragged[1]),
    }
    for label, (since, until) in windows.items():
        f = Filters(since=since, until=until)
        for name, run in cases.items():
            t0 = time.perf_counter()
            df, source = run(f)
            elapsed = time.perf_counter() - t0
            print(f"{label:>14}  {name:<30} {elapsed:6.3f} s from {source} ({df.height} rows)", flush=True)
            if check and name in raw_of:
                t0 = time.perf_counter()
                raw = raw_of[name](f)
                raw_s = time.perf_counter() - t0
                same, worst = agree(df, raw)
                print(f"{'':>16}{'':<30} vs raw ({raw_s:.1f} s): other columns equal={same}, "
                      f"worst percentile error {worst:.4%} (bound {sketch.ALPHA:.0%})", flush=True)  # fmt: skip


def agree(rolled: Any, raw: Any) -> tuple[bool, float]:
    """(every column but percentiles equal, to 1e-9 relative; the worst relative percentile error)."""
    import polars as pl
    from polars.testing import assert_frame_equal

    pct = [c for c in raw.columns if c.endswith("_ms") and (c.startswith("p") or c.startswith("ttft_p"))]
    other = [c for c in raw.columns if c not in pct]
    keys = [c for c in other if raw.schema[c] in (pl.String, pl.Datetime("us", "UTC"))] or other
    rolled, raw = rolled.sort(keys, nulls_last=True), raw.sort(keys, nulls_last=True)
    try:
        assert_frame_equal(rolled.select(other), raw.select(other), check_dtypes=False, rel_tol=1e-9)
        same = True
    except AssertionError:
        same = False
    worst = 0.0
    for col in pct:
        for a, b in zip(rolled[col].to_list(), raw[col].to_list(), strict=True):
            if a is not None and b:
                worst = max(worst, abs(a - b) / b)
    return same, worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/spanlake-bench-analytics"))
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--reuse", action="store_true", help="time reports on an existing generated lake")
    ap.add_argument("--skip-raw", action="store_true", help="only build and time the rollups")
    ap.add_argument("--check", action="store_true", help="compare latency and tasks from rollups with raw spans")
    ap.add_argument("--no-compact", action="store_true", help="leave the generated lake uncompacted (worst case)")
    args = ap.parse_args()
    if not args.reuse:
        t0 = time.perf_counter()
        generate(args.data_dir, args.spans, args.days)
        print(f"generated {args.spans} spans in {time.perf_counter() - t0:.1f} s", flush=True)
        if not args.no_compact:
            compact_lake(args.data_dir)
    if not args.skip_raw:
        time_reports(args.data_dir, args.days)
    time_rollups(args.data_dir, args.days, args.check)


if __name__ == "__main__":
    main()
