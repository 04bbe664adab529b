"""Hourly rollups of the cost report, materialized incrementally (`spanlake analytics run`).

Two tables under `<data_dir>/rollups/`, one Parquet file per UTC hour (written whole, then
renamed into place):

  calls/<hour>.parquet  call totals per (project, service, model, response_model, provider,
                        prompt_name, prompt_version): calls, tokens, cost, unpriced calls
  tasks/<hour>.parquet  task totals per (project, service, model, provider, prompt_name,
                        prompt_version): tasks, successes, failures, cost, unpriced calls

Each row is the raw report's answer for that hour, so summing rollup rows gives exactly the
raw answer for any window of whole hours and any grouping by those keys (floating-point
sums aside). `state.json` records, per lake hour, a signature of its files (name, size,
mtime) and a fingerprint of the prices. A run rebuilds the hours whose files changed — and,
for tasks, the `horizon` hours before them, since a late span can change an earlier task —
and everything when prices change, so a corrected price fixes the rollups too. Labels
(not yet stored) will need the same trigger.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from spanlake.analytics.engine import Analytics
from spanlake.analytics.query import Filters, GroupBy
from spanlake.analytics.reports.cost import DIMS, call_totals, finish, task_totals
from spanlake.analytics.tasks import TaskOptions
from spanlake.storage.layout import DataDir

STATE_VERSION = 1
CALL_KEYS = (*DIMS, "response_model")
TASK_KEYS = DIMS
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class RunResult:
    hours_seen: int
    call_hours_rebuilt: int
    task_hours_rebuilt: int
    full_rebuild: bool


def rollup_dir(dd: DataDir) -> Path:
    return dd.root / "rollups"


def _hour_name(h: datetime) -> str:
    return h.strftime("%Y%m%dT%H")


def source_signatures(dd: DataDir) -> dict[datetime, str]:
    """UTC hour → hash of the (name, size, mtime) of every span file of that hour, all projects."""
    files: dict[datetime, list[str]] = {}
    for f in (dd.lake / "spans").glob("project=*/date=*/hour=*/*.parquet"):
        date_part, hour_part = f.parent.parent.name[5:], f.parent.name[5:]
        h = datetime.fromisoformat(date_part).replace(hour=int(hour_part), tzinfo=UTC)
        st = f.stat()
        files.setdefault(h, []).append(f"{f.parent.parent.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return {h: hashlib.sha1("\n".join(sorted(v)).encode()).hexdigest() for h, v in files.items()}


def price_fingerprint(an: Analytics) -> str:
    """Changes when overrides or the price database change."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        db = version("genai-prices") if an.prices.use_database else "off"
    except PackageNotFoundError:
        db = "missing"
    overrides = [repr(o) for o in an.prices.overrides]
    return hashlib.sha1(json.dumps([db, overrides]).encode()).hexdigest()


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return state if state.get("version") == STATE_VERSION else {}


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _ranges(hours: Sequence[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering sorted hours."""
    out: list[tuple[datetime, datetime]] = []
    for h in sorted(hours):
        if out and out[-1][1] == h:
            out[-1] = (out[-1][0], h + HOUR)
        else:
            out.append((h, h + HOUR))
    return out


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
    state_path = root / "state.json"
    state = _load_state(state_path)
    fingerprint = price_fingerprint(an)
    signatures = source_signatures(dd)
    old = {} if full or state.get("prices") != fingerprint else state.get("hours", {})
    full_rebuild = not old
    changed = [h for h, sig in signatures.items() if old.get(_hour_name(h)) != sig]
    back = int(options.horizon / HOUR) + 1
    task_hours = {h - k * HOUR for h in changed for k in range(back + 1)} & set(signatures)
    removed = [name for name in old if name not in {_hour_name(h) for h in signatures}]
    total = len(changed) + len(task_hours)
    done = 0
    for table, hours, compute in (
        ("calls", changed, lambda f: call_totals(an, f, CALL_KEYS, bucket="hour")),
        ("tasks", sorted(task_hours), lambda f: task_totals(an, f, TASK_KEYS, bucket="hour", options=options)),
    ):
        for start, end in _ranges(hours):
            df = compute(Filters(since=start, until=end))
            for i in range(int((end - start) / HOUR)):
                h = start + i * HOUR
                part = df.filter(pl.col("hour") == h) if df.height else df
                path = root / table / f"{_hour_name(h)}.parquet"
                if part.height:
                    _write_atomic(path, part.write_parquet)
                else:
                    path.unlink(missing_ok=True)
                done += 1
                if progress:
                    progress(done, total)
    for name in removed:
        for table in ("calls", "tasks"):
            (root / table / f"{name}.parquet").unlink(missing_ok=True)
    new_state = {
        "version": STATE_VERSION,
        "prices": fingerprint,
        "hours": {_hour_name(h): s for h, s in signatures.items()},
    }
    _write_atomic(state_path, lambda p: p.write_text(json.dumps(new_state, indent=1, sort_keys=True)))
    return RunResult(len(signatures), len(changed), len(task_hours), full_rebuild)


def is_fresh(an: Analytics, since: datetime, until: datetime) -> bool:
    """True when the rollups cover every lake hour in [since, until) as the lake is now."""
    state = _load_state(rollup_dir(an.lake.data_dir) / "state.json")
    if not state or state.get("prices") != price_fingerprint(an):
        return False
    recorded = state.get("hours", {})
    return all(
        recorded.get(_hour_name(h)) == sig
        for h, sig in source_signatures(an.lake.data_dir).items()
        if since <= h < until
    )


def can_answer(filters: Filters, group_by: Sequence[str], bucket: str | None) -> bool:
    """Whether the cost report with these arguments can be read from rollups."""
    keys = [k for k in group_by if k]
    try:
        group = GroupBy.parse(keys, {k: k for k in TASK_KEYS}, bucket)
    except ValueError:
        return False
    aligned = all(
        t is not None and t == t.replace(minute=0, second=0, microsecond=0) for t in (filters.since, filters.until)
    )
    return aligned and not group.attrs and group.bucket != "minute" and not filters.attributes


CALL_METRICS = ["calls", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
                "reasoning_tokens", "cost_usd", "reported_cost_usd", "unpriced_calls"]  # fmt: skip
TASK_METRICS = ["tasks", "successful_tasks", "failed_tasks", "task_cost_usd", "task_unpriced_calls"]
NULLABLE = ("cost_usd", "reported_cost_usd", "task_cost_usd")


def cost_from_rollups(
    an: Analytics, filters: Filters, group_by: Sequence[str] = (), *, bucket: str | None = None
) -> pl.DataFrame:
    """The cost report summed from rollups (the caller checks `can_answer` and `is_fresh`)."""
    keys = [k for k in group_by if k]
    group = GroupBy.parse(keys, {k: k for k in TASK_KEYS}, bucket)
    root = rollup_dir(an.lake.data_dir)
    calls = _sum(root / "calls", filters, group, CALL_METRICS)
    tasks = _sum(root / "tasks", filters, group, TASK_METRICS)
    return finish(calls, tasks, group.names)


def _ceil_hour(t: datetime) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + HOUR


def cost_auto(
    an: Analytics, filters: Filters, group_by: Sequence[str] = (), *, options: TaskOptions | None = None
) -> tuple[pl.DataFrame, str]:
    """The cost report from rollups for the window's whole hours plus raw spans for its ragged
    edges when the rollups are fresh and can answer, else from raw spans; returns (frame, source)."""
    from spanlake.analytics.reports.cost import cost

    keys = [k for k in group_by if k]
    since, until = filters.since, filters.until
    if (
        since is None
        or until is None
        or not can_answer(
            replace(filters, since=_ceil_hour(since), until=until.replace(minute=0, second=0, microsecond=0)),
            keys,
            None,
        )
    ):
        return cost(an, filters, keys, options=options), "raw"
    inner = (_ceil_hour(since), until.replace(minute=0, second=0, microsecond=0))
    if inner[0] >= inner[1] or not is_fresh(an, *inner):
        return cost(an, filters, keys, options=options), "raw"
    group = GroupBy.parse(keys, {k: k for k in TASK_KEYS}, None)
    root = rollup_dir(an.lake.data_dir)
    middle = replace(filters, since=inner[0], until=inner[1])
    calls = [_sum(root / "calls", middle, group, CALL_METRICS)]
    tasks = [_sum(root / "tasks", middle, group, TASK_METRICS)]
    for lo, hi in ((since, inner[0]), (inner[1], until)):
        if lo < hi:
            edge = replace(filters, since=lo, until=hi)
            calls.append(call_totals(an, edge, keys))
            tasks.append(task_totals(an, edge, keys, options=options))
    return finish(_resum(calls, group, CALL_METRICS), _resum(tasks, group, TASK_METRICS), group.names), "rollups+raw"


def _resum(frames: list[pl.DataFrame], group: GroupBy, metrics: list[str]) -> pl.DataFrame:
    frames = [f.select([*group.names, *metrics]) for f in frames if f.height]
    if not frames:
        return pl.DataFrame()
    df = pl.concat(frames, how="vertical_relaxed")
    sums = [_nullable_sum(m) if m in NULLABLE else pl.col(m).sum().alias(m) for m in metrics]
    return df.group_by(group.names, maintain_order=True).agg(sums) if group.names else df.select(sums)


def _sum(folder: Path, f: Filters, group: GroupBy, metrics: list[str]) -> pl.DataFrame:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return pl.DataFrame()
    lf = pl.scan_parquet(files)
    if f.since is not None:
        lf = lf.filter(pl.col("hour") >= f.since)
    if f.until is not None:
        lf = lf.filter(pl.col("hour") < f.until)
    for name, value in (("project", f.project), ("service", f.service), ("provider", f.provider)):
        if value is not None:
            lf = lf.filter(pl.col(name) == value)
    for name, value in (("prompt_name", f.prompt_name), ("prompt_version", f.prompt_version)):
        if value is not None:
            lf = lf.filter(pl.col(name) == value)
    if f.model is not None:
        cond = pl.col("model") == f.model
        if "response_model" in lf.collect_schema().names():
            cond = cond | (pl.col("response_model") == f.model)
        lf = lf.filter(cond)
    keys = []
    if group.bucket:
        lf = lf.with_columns(
            pl.col("hour")
            .dt.truncate({"hour": "1h", "day": "1d", "week": "1w", "month": "1mo"}[group.bucket])
            .alias(group.bucket)
        )
        keys.append(group.bucket)
    keys += list(group.dims)
    sums = [_nullable_sum(m) if m in NULLABLE else pl.col(m).sum().alias(m) for m in metrics]
    out = lf.group_by(keys).agg(sums) if keys else lf.select(sums)
    return out.collect()


def _nullable_sum(m: str) -> pl.Expr:
    """SQL's sum: NULL when every value is NULL (an all-unpriced group has no cost, not 0)."""
    return pl.when(pl.col(m).is_not_null().any()).then(pl.col(m).sum()).otherwise(None).alias(m)
