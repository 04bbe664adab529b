"""Hourly rollups, materialized incrementally (`spanlake analytics run`, or the server's schedule).

One Parquet file per table and UTC hour under `<data_dir>/rollups/<table>/<hour>.parquet`
(written whole, then renamed into place); the tables are in analytics.rollup_tables. Each
row is what the raw report computes for that hour, so the rows of a window's hours add up
to the raw answer (percentiles within analytics.sketch.ALPHA).

`state.json` records, per lake hour, a signature of its span files (name, size, mtime), the
label files seen, and a fingerprint of prices and task options. Every report relates spans
of one trace only (a task and its spans, a step and the attempt before it, a check and its
task), so a change in lake hour c can change the rows of hour c and of the hours where the
traces of c's spans also have spans — found with the trace-id index (the `traces` table). A
run rebuilds those hours, the hours of traces that got new human labels (tables holding
outcomes), and everything when prices or options change; around an hour retention removed,
each table's reach. Reads check the same per hour: an hour that is not up to date is
computed from raw spans on the fly.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from spanlake.analytics.rollup_tables import CALL_KEYS, COST_DIMS, TABLES, Table
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters, GroupBy
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.storage.late import late_by_hour, late_covering
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS

STATE_VERSION = 2
HOUR = timedelta(hours=1)
CHUNK = 24  # hours per builder query during a run
TASK_KEYS = COST_DIMS  # group keys of the cost report's task columns
__all__ = ["CALL_KEYS", "TABLES", "RunResult", "run"]


@dataclass(frozen=True)
class RunResult:
    hours_seen: int
    call_hours_rebuilt: int
    task_hours_rebuilt: int
    full_rebuild: bool
    rebuilt: dict[str, int] = field(default_factory=dict)  # table → hours rebuilt
    labelled_hours: int = 0  # hours rebuilt because their traces got new labels


def rollup_dir(dd: DataDir) -> Path:
    return dd.root / "rollups"


def _hour_name(h: datetime) -> str:
    return h.strftime("%Y%m%dT%H")


def _floor(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil(t: datetime) -> datetime:
    f = _floor(t)
    return f if f == t else f + HOUR


def source_signatures(dd: DataDir) -> dict[datetime, str]:
    """UTC hour → hash of the (name, size, mtime) of every span file of that hour, all projects
    (a late-arrival file counts in every hour it has rows of)."""
    files: dict[datetime, list[str]] = {}
    for f in (dd.lake / "spans").glob("project=*/date=*/hour=*/*.parquet"):
        date_part, hour_part = f.parent.parent.name[5:], f.parent.name[5:]
        h = datetime.fromisoformat(date_part).replace(hour=int(hour_part), tzinfo=UTC)
        st = f.stat()
        files.setdefault(h, []).append(f"{f.parent.parent.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    for h, entries in late_by_hour(dd, SPANS).items():
        files.setdefault(h, []).extend(f"{e.rel}:{e.size}:{e.mtime}" for e in entries)
    return {h: hashlib.sha1("\n".join(sorted(v)).encode()).hexdigest() for h, v in files.items()}


def label_signatures(dd: DataDir) -> dict[str, str]:
    """Label file (relative path) → size:mtime."""
    root = dd.lake / "labels"
    out = {}
    for f in root.glob("project=*/date=*/hour=*/*.parquet"):
        st = f.stat()
        out[str(f.relative_to(root))] = f"{st.st_size}:{st.st_mtime_ns}"
    return out


def price_fingerprint(an: Analytics, options: TaskOptions | None = None) -> str:
    """Changes when overrides, the price database or the task options change."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        db = version("genai-prices") if an.prices.use_database else "off"
    except PackageNotFoundError:
        db = "missing"
    overrides = [repr(o) for o in an.prices.overrides]
    o = options or TaskOptions()
    opts = [o.default_outcome, o.horizon.total_seconds(), o.skew.total_seconds()]
    return hashlib.sha1(json.dumps([db, overrides, opts]).encode()).hexdigest()


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return state if state.get("version") == STATE_VERSION else {}


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One run at a time per data directory (the server's schedule and the CLI may overlap)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ranges(hours: Sequence[datetime], limit: int = 10**9) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering sorted hours, at most `limit` hours each."""
    out: list[tuple[datetime, datetime]] = []
    for h in sorted(hours):
        if out and out[-1][1] == h and (h - out[-1][0]) < limit * HOUR:
            out[-1] = (out[-1][0], h + HOUR)
        else:
            out.append((h, h + HOUR))
    return out


def _expand(changed: set[datetime], reach: tuple[int, int]) -> set[datetime]:
    """Hours whose rows a change in `changed` can affect: h - after … h + before."""
    before, after = reach
    return {c + k * HOUR for c in changed for k in range(-after, before + 1)}


def _changed_hours(state: dict[str, Any], signatures: dict[datetime, str]) -> set[datetime]:
    old = state.get("hours", {})
    names = {_hour_name(h) for h in signatures}
    changed = {h for h, sig in signatures.items() if old.get(_hour_name(h)) != sig}
    gone = {_parse_hour(n) for n in old if n not in names}
    return changed | gone


def labelled_hours(an: Analytics, state: dict[str, Any], labels: dict[str, str]) -> set[datetime] | None:
    """Hours holding traces that got labels since `state` (via the trace-id index).

    Label files that disappeared are not looked at: compaction merges them into a new file
    (looked up as new), and retention deletes a label partition only after the older span
    partitions of the traces it labelled (the same rules apply to every table by date), so
    their hours are gone already. The result is never None today; None would mean "all"."""
    old: dict[str, str] = state.get("labels", {})
    new = [name for name, sig in labels.items() if old.get(name) != sig]
    index = sorted((rollup_dir(an.lake.data_dir) / "traces").glob("*.parquet"))
    if not new or not index:
        return set()
    root = an.lake.data_dir.lake / "labels"
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        files = [str(root / n) for n in new]
        sql = """
          WITH l AS (SELECT DISTINCT project, lower(trace_id) AS trace_id
                     FROM read_parquet($files, hive_partitioning = true, union_by_name = true))
          SELECT DISTINCT epoch_us(i.hour) FROM read_parquet($index) i SEMI JOIN l USING (project, trace_id)"""
        rows = con.execute(sql, {"files": files, "index": [str(f) for f in index]}).fetchall()
    finally:
        con.close()
    return {datetime.fromtimestamp(r[0] / 1e6, UTC) for r in rows}


def linked_hours(an: Analytics, changed: set[datetime], among: set[datetime] | None = None) -> set[datetime]:
    """Indexed hours (of `among`, default all) holding traces that have spans in the `changed`
    lake hours: the only other hours whose rows those spans can change, since every report
    relates spans of one trace only (a task and its spans, a step and the attempt before it,
    a check and its task)."""
    dd = an.lake.data_dir
    spans = [str(f) for c in changed for f in _hour_files(dd, c)]
    index_dir = rollup_dir(dd) / "traces"
    if among is None:
        index = [str(f) for f in sorted(index_dir.glob("*.parquet")) if _parse_hour(f.stem) not in changed]
    else:
        index = [
            str(f) for f in (index_dir / f"{_hour_name(h)}.parquet" for h in sorted(among - changed)) if f.exists()
        ]
    late = late_covering(dd, SPANS, changed)
    if not (spans or late) or not index:
        return set()
    params: dict[str, list[str]] = {"index": index}
    sources = []
    if spans:
        params["spans"] = spans
        sources.append(
            "SELECT project, trace_id FROM read_parquet($spans, hive_partitioning = true, union_by_name = true)"
        )
    if late:
        params["late"] = late
        sources.append(
            "SELECT project, trace_id FROM read_parquet($late, hive_partitioning = true, "
            "hive_types = {'project': VARCHAR}, union_by_name = true)"
        )
    con = duckdb.connect(":memory:")
    try:
        sql = f"""
          WITH n AS (SELECT DISTINCT project, trace_id FROM ({" UNION ALL ".join(sources)}))
          SELECT DISTINCT epoch_us(i.hour) FROM read_parquet($index) i SEMI JOIN n USING (project, trace_id)"""
        rows = con.execute(sql, params).fetchall()
    finally:
        con.close()
    return {datetime.fromtimestamp(r[0] / 1e6, UTC) for r in rows}


def _hour_files(dd: DataDir, h: datetime) -> list[Path]:
    root = dd.lake / "spans"
    out: list[Path] = []
    for hour in {f"{h.hour:02d}", str(h.hour)}:
        out += root.glob(f"project=*/date={h.date().isoformat()}/hour={hour}/*.parquet")
    return out


def _parse_hour(name: str) -> datetime:
    return datetime.strptime(name, "%Y%m%dT%H").replace(tzinfo=UTC)


def _affected(
    an: Analytics, table: Table, options: TaskOptions, changed: set[datetime], lake: set[datetime],
    linked: Callable[[], set[datetime]],
) -> set[datetime]:  # fmt: skip
    """Hours whose rows of `table` a change in the `changed` lake hours can affect: those hours,
    the indexed hours sharing a trace with them, and around hours that disappeared (retention)
    the hours within the table's reach."""
    if table.reach(options) == (0, 0):
        return set(changed)
    return changed | linked() | _expand(changed - lake, table.reach(options))


def trace_hours(an: Analytics, trace_id: str, project: str | None = None) -> list[datetime]:
    """The hours a trace has spans in, from the trace-id index (empty when not indexed yet)."""
    files = sorted((rollup_dir(an.lake.data_dir) / "traces").glob("*.parquet"))
    if not files:
        return []
    con = duckdb.connect(":memory:")
    try:
        where = "trace_id = $t" + (" AND project = $p" if project is not None else "")
        params: dict[str, Any] = {"files": [str(f) for f in files], "t": trace_id.strip().lower()}
        if project is not None:
            params["p"] = project
        sql = f"SELECT DISTINCT epoch_us(hour) FROM read_parquet($files) WHERE {where} ORDER BY 1"
        return [datetime.fromtimestamp(r[0] / 1e6, UTC) for r in con.execute(sql, params).fetchall()]
    finally:
        con.close()


def run(
    an: Analytics,
    options: TaskOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    full: bool = False,
) -> RunResult:
    """Bring the rollups up to date with the lake; `progress(done, total)` reports hours written."""
    options = options or TaskOptions()
    dd = an.lake.data_dir
    root = rollup_dir(dd)
    with _locked(root):
        state = _load_state(root / "state.json")
        fingerprint = price_fingerprint(an, options)
        if full or state.get("prices") != fingerprint:
            state = {}
        signatures = source_signatures(dd)
        labels = label_signatures(dd)
        lake_hours = set(signatures)
        changed = _changed_hours(state, signatures)
        full_rebuild = not state.get("hours")
        relabelled = labelled_hours(an, state, labels) if not full_rebuild else set()
        plan: dict[str, list[datetime]] = {}
        cache: list[set[datetime]] = []

        def linked() -> set[datetime]:
            if not cache:
                cache.append(linked_hours(an, changed & lake_hours) if not full_rebuild else set())
            return cache[0]

        for name, table in TABLES.items():
            hours = _affected(an, table, options, changed, lake_hours, linked)
            if table.labels:
                hours |= lake_hours if relabelled is None else relabelled
            plan[name] = sorted(hours & lake_hours)
        total = sum(len(h) for h in plan.values())
        done = 0
        for name, hours in plan.items():
            table = TABLES[name]
            for start, end in _ranges(hours, CHUNK):
                df = table.build(an, Filters(since=start, until=end), options)
                for i in range(int((end - start) / HOUR)):
                    h = start + i * HOUR
                    part = df.filter(pl.col("hour") == h) if df.height else df
                    path = root / name / f"{_hour_name(h)}.parquet"
                    if part.height:
                        _write_atomic(path, part.write_parquet)
                    else:
                        path.unlink(missing_ok=True)
                    done += 1
                    if progress:
                        progress(done, total)
        for h in changed - lake_hours:
            for name in TABLES:
                (root / name / f"{_hour_name(h)}.parquet").unlink(missing_ok=True)
        new_state = {
            "version": STATE_VERSION,
            "prices": fingerprint,
            "hours": {_hour_name(h): s for h, s in signatures.items()},
            "labels": labels,
        }
        _write_atomic(root / "state.json", lambda p: p.write_text(json.dumps(new_state, indent=1, sort_keys=True)))
    n_labelled = len(lake_hours) if relabelled is None else len(relabelled & lake_hours)
    return RunResult(
        len(signatures),
        len(plan["calls"]),
        len(plan["tasks"]),
        full_rebuild,
        {k: len(v) for k, v in plan.items()},
        n_labelled,
    )


_LINKED: dict[tuple[Any, ...], set[datetime]] = {}


def _linked_cached(an: Analytics, changed: set[datetime], among: set[datetime]) -> set[datetime]:
    """linked_hours, remembered while the changed hours' files and the rollup state stay the same."""
    if not changed:
        return set()
    dd = an.lake.data_dir
    own = [f for c in changed for f in _hour_files(dd, c)] + [Path(f) for f in late_covering(dd, SPANS, changed)]
    files = sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in own)
    state = rollup_dir(dd) / "state.json"
    key = (str(dd.root), tuple(files), state.stat().st_mtime_ns if state.exists() else 0, tuple(sorted(among)))
    if key not in _LINKED:
        if len(_LINKED) > 64:
            _LINKED.clear()
        _LINKED[key] = linked_hours(an, changed, among)
    return _LINKED[key]


def fresh_hours(
    an: Analytics, table: str, since: datetime, until: datetime, options: TaskOptions | None = None
) -> set[datetime]:
    """The whole hours in [since, until) whose rows of `table` are up to date with the lake."""
    options = options or TaskOptions()
    dd = an.lake.data_dir
    state = _load_state(rollup_dir(dd) / "state.json")
    if not state.get("hours") or state.get("prices") != price_fingerprint(an, options):
        return set()
    t = TABLES[table]
    first, last = _ceil(since), _floor(until)
    hours = {first + i * HOUR for i in range(max(0, int((last - first) / HOUR)))}
    signatures = source_signatures(dd)
    changed = _changed_hours(state, signatures)
    stale = _affected(
        an, t, options, changed, set(signatures), lambda: _linked_cached(an, changed & set(signatures), hours)
    )
    if t.labels:
        relabelled = labelled_hours(an, state, label_signatures(dd))
        if relabelled is None:
            return set()
        stale |= relabelled
    return hours - stale


def is_fresh(an: Analytics, since: datetime, until: datetime, options: TaskOptions | None = None) -> bool:
    """True when the cost rollups (calls, tasks) cover every whole hour in [since, until) as the lake is now."""
    first, last = _ceil(since), _floor(until)
    n = max(0, int((last - first) / HOUR))
    return all(len(fresh_hours(an, t, since, until, options)) == n for t in ("calls", "tasks"))


def rows(
    an: Analytics, table: str, filters: Filters, options: TaskOptions | None = None
) -> tuple[pl.DataFrame, str] | None:
    """The rows of `table` for the window of `filters` (its project only; the caller applies
    the other filters): up-to-date hours from the rollup files, the rest (ragged edges,
    stale hours) computed from raw spans. None when no hour can come from rollups."""
    options = options or TaskOptions()
    since, until = filters.since, filters.until
    if since is None or until is None or since >= until:
        return None
    fresh = fresh_hours(an, table, since, until, options)
    if not fresh:
        return None
    root = rollup_dir(an.lake.data_dir) / table
    files = [p for p in (root / f"{_hour_name(h)}.parquet" for h in sorted(fresh)) if p.exists()]
    frames = []
    if files:
        lf = pl.scan_parquet(files)
        if filters.project is not None:
            lf = lf.filter(pl.col("project") == filters.project)
        frames.append(lf.collect())
    pieces = _gaps(since, until, fresh)
    window = Filters(project=filters.project)
    if pieces:
        # Edges are small queries with single-threaded stretches (planning, footers): side by side.
        with ThreadPoolExecutor(len(pieces)) as pool:
            build = TABLES[table].build
            frames += pool.map(lambda r: build(an, replace(window, since=r[0], until=r[1]), options), pieces)
    frames = [f for f in frames if f.height] or frames[:1]
    df = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    return df, "rollups+raw" if pieces else "rollups"


def _gaps(since: datetime, until: datetime, fresh: set[datetime]) -> list[tuple[datetime, datetime]]:
    """The parts of [since, until) not covered by the `fresh` hours, as ranges."""
    out: list[tuple[datetime, datetime]] = []
    t = since
    while t < until:
        h = _floor(t)
        end = min(h + HOUR, until)
        if not (h in fresh and t == h and end == h + HOUR):
            if out and out[-1][1] == t:
                out[-1] = (out[-1][0], end)
            else:
                out.append((t, end))
        t = end
    return out


def apply_filters(df: pl.DataFrame, f: Filters, table: Table) -> pl.DataFrame:
    """The dimension filters of `f` on rollup rows (a model matches `model` or `response_model`)."""
    if df.height == 0:
        return df
    cols = set(df.columns)
    for name in ("project", "service", "provider", "prompt_name", "prompt_version"):
        value = getattr(f, name)
        if value is not None and (name in cols or table.name != "overview"):
            df = df.filter(pl.col(name) == value)
    if f.model is not None:
        cond = pl.col("model") == f.model
        if "response_model" in cols:
            cond = cond | (pl.col("response_model") == f.model)
        df = df.filter(cond)
    return df


# The cost report from rollups (kept as it was: calls and tasks tables).
CALL_METRICS = ["calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
                "reasoning_tokens", "cost_usd", "reported_cost_usd", "unpriced_calls"]  # fmt: skip
TASK_METRICS = ["tasks", "successful_tasks", "failed_tasks", "task_cost_usd", "task_unpriced_calls"]
NULLABLE = ("cost_usd", "reported_cost_usd", "task_cost_usd", "top1_sum", "score_sum")


def can_answer(filters: Filters, group_by: Sequence[str], bucket: str | None) -> bool:
    """Whether a report with these arguments can be read from rollups (no attributes, no minute buckets)."""
    keys = [k for k in group_by if k]
    if any(k.strip().startswith("attr:") for k in keys) or filters.attributes:
        return False
    return bucket != "minute" and "minute" not in keys


def cost_from_rollups(
    an: Analytics, filters: Filters, group_by: Sequence[str] = (), *, bucket: str | None = None
) -> pl.DataFrame:
    """The cost report summed from rollups alone (whole hours; the caller checks freshness)."""
    from spanlake.analytics.reports.cost import finish

    group = GroupBy.parse([k for k in group_by if k], {k: k for k in TASK_KEYS}, bucket)
    root = rollup_dir(an.lake.data_dir)
    calls = _read_all(root / "calls", filters)
    tasks = _read_all(root / "tasks", filters)
    return finish(
        sum_rows(apply_filters(calls, filters, TABLES["calls"]), group, CALL_METRICS),
        sum_rows(apply_filters(tasks, filters, TABLES["tasks"]), group, TASK_METRICS),
        group.names,
    )


def cost_auto(
    an: Analytics, filters: Filters, group_by: Sequence[str] = (), *, options: TaskOptions | None = None
) -> tuple[pl.DataFrame, str]:
    """The cost report from rollups where up to date and raw spans elsewhere; returns (frame, source)."""
    from spanlake.analytics.reports.cost import cost, finish

    keys = [k for k in group_by if k]
    if can_answer(filters, keys, None):
        group = GroupBy.parse(keys, {k: k for k in TASK_KEYS}, None)
        with ThreadPoolExecutor(2) as pool:
            pending = pool.submit(rows, an, "calls", filters, options)
            tasks = rows(an, "tasks", filters, options)
            calls = pending.result()
        if calls is not None and tasks is not None:
            c = sum_rows(apply_filters(calls[0], filters, TABLES["calls"]), group, CALL_METRICS)
            t = sum_rows(apply_filters(tasks[0], filters, TABLES["tasks"]), group, TASK_METRICS)
            source = "rollups" if calls[1] == tasks[1] == "rollups" else "rollups+raw"
            return finish(c, t, group.names), source
    return cost(an, filters, keys, options=options), "raw"


def _read_all(folder: Path, f: Filters) -> pl.DataFrame:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return pl.DataFrame()
    lf = pl.scan_parquet(files)
    if f.since is not None:
        lf = lf.filter(pl.col("hour") >= f.since)
    if f.until is not None:
        lf = lf.filter(pl.col("hour") < f.until)
    return lf.collect()


def with_bucket(df: pl.DataFrame, bucket: str | None) -> pl.DataFrame:
    """Add the time bucket column (`hour`, `day`, `week`, `month`) from the rows' hour."""
    if not bucket or bucket == "hour" or df.height == 0:
        return df
    every = {"day": "1d", "week": "1w", "month": "1mo"}[bucket]
    return df.with_columns(pl.col("hour").dt.truncate(every).alias(bucket))


def sum_rows(df: pl.DataFrame, group: GroupBy, metrics: Sequence[str]) -> pl.DataFrame:
    """Sum `metrics` of rollup rows per group (a NULL-only sum stays NULL, as in SQL)."""
    if df.height == 0:
        return pl.DataFrame()
    df = with_bucket(df, group.bucket)
    sums = [_nullable_sum(m) if m in NULLABLE else pl.col(m).sum().alias(m) for m in metrics]
    return df.group_by(group.names, maintain_order=True).agg(sums) if group.names else df.select(sums)


def _nullable_sum(m: str) -> pl.Expr:
    """SQL's sum: NULL when every value is NULL (an all-unpriced group has no cost, not 0)."""
    return pl.when(pl.col(m).is_not_null().any()).then(pl.col(m).sum()).otherwise(None).alias(m)
