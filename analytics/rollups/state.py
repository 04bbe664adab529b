"""What the rollups know of the lake, and which of their hours are up to date with it.

`state.json` records, per lake hour, a signature of its span files (name, size, mtime), the
label files seen, and a fingerprint of prices and task options. Every report relates spans of
one trace only (a task and its spans, a step and the attempt before it, a check and its task),
so a change in lake hour c can change the rows of hour c and of the hours where the traces of
c's spans also have spans — found with the trace-id index. Around an hour retention removed,
each table's reach. Reads check the same per hour (`fresh_hours`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from spanlake.analytics.rollups.tables import (
    HOUR,
    Table,
    hour_name,
    parse_hour,
    rollup_dir,
    whole_hours,
)
from spanlake.analytics.rollups.trace_index import hour_files, labelled_hours, linked_hours
from spanlake.analytics.runner import Analytics
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.storage.json_file import JsonFile
from spanlake.storage.late import late_by_hour, late_covering
from spanlake.storage.layout import DataDir
from spanlake.storage.schema import SPANS

STATE_VERSION = 2


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
    try:
        db = version("genai-prices") if an.prices.use_database else "off"
    except PackageNotFoundError:
        db = "missing"
    overrides = [repr(o) for o in an.prices.overrides]
    o = options or TaskOptions()
    opts = [o.default_outcome, o.horizon.total_seconds(), o.skew.total_seconds()]
    return hashlib.sha1(json.dumps([db, overrides, opts]).encode()).hexdigest()


def _parse_state(raw: bytes) -> dict[str, Any]:
    try:
        state = json.loads(raw)
    except ValueError:
        return {}
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else {}


def dump_state(state: dict[str, Any]) -> bytes:
    """`state.json`'s bytes for `state`."""
    return json.dumps(state, indent=1, sort_keys=True).encode()


def load_state(path: Path) -> dict[str, Any]:
    """The recorded state (empty when missing, unreadable or of another version)."""
    return JsonFile(path, _parse_state, dump_state, dict, "rollup state", mode=0o644).read()


def expand(changed: set[datetime], reach: tuple[int, int]) -> set[datetime]:
    """Hours whose rows a change in `changed` can affect: h - after … h + before."""
    before, after = reach
    return {c + k * HOUR for c in changed for k in range(-after, before + 1)}


def changed_hours(state: dict[str, Any], signatures: dict[datetime, str]) -> set[datetime]:
    """Lake hours whose span files differ from the recorded state, or that disappeared."""
    old = state.get("hours", {})
    names = {hour_name(h) for h in signatures}
    changed = {h for h, sig in signatures.items() if old.get(hour_name(h)) != sig}
    gone = {parse_hour(n) for n in old if n not in names}
    return changed | gone


def affected(
    table: Table, options: TaskOptions, changed: set[datetime], lake: set[datetime],
    linked: Callable[[], set[datetime]],
) -> set[datetime]:  # fmt: skip
    """Hours whose rows of `table` a change in the `changed` lake hours can affect: those hours,
    the indexed hours sharing a trace with them, and around hours that disappeared (retention)
    the hours within the table's reach."""
    if table.reach(options) == (0, 0):
        return set(changed)
    return changed | linked() | expand(changed - lake, table.reach(options))


_LINKED: dict[tuple[Any, ...], set[datetime]] = {}


def _linked_cached(an: Analytics, changed: set[datetime], among: set[datetime]) -> set[datetime]:
    """linked_hours, remembered while the changed hours' files and the rollup state stay the same."""
    if not changed:
        return set()
    dd = an.lake.data_dir
    own = [f for c in changed for f in hour_files(dd, c)] + [Path(f) for f in late_covering(dd, SPANS, changed)]
    files = sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in own)
    state = rollup_dir(dd) / "state.json"
    key = (str(dd.root), tuple(files), state.stat().st_mtime_ns if state.exists() else 0, tuple(sorted(among)))
    if key not in _LINKED:
        if len(_LINKED) > 64:
            _LINKED.clear()
        _LINKED[key] = linked_hours(an, changed, among)
    return _LINKED[key]


def changed_since(
    an: Analytics,
    table: Table,
    options: TaskOptions,
    then: dict[datetime, str],
    now: dict[datetime, str],
    among: set[datetime],
) -> set[datetime]:
    """The hours of `among` whose rows of `table` a change of the lake between two snapshots of
    its signatures (`source_signatures`) can have changed (as `fresh_hours` decides)."""
    changed = {h for h in then.keys() | now.keys() if then.get(h) != now.get(h)}
    if not changed:
        return set()
    lake = set(now)
    return affected(table, options, changed, lake, lambda: _linked_cached(an, changed & lake, among)) & among


def fresh_hours(
    an: Analytics,
    table: Table,
    since: datetime,
    until: datetime,
    options: TaskOptions | None = None,
    signatures: dict[datetime, str] | None = None,
) -> set[datetime]:
    """The whole hours in [since, until) whose rows of `table` are up to date with the lake
    (`signatures`: the lake's `source_signatures`, when the caller has just read them)."""
    options = options or TaskOptions()
    dd = an.lake.data_dir
    state = load_state(rollup_dir(dd) / "state.json")
    if not state.get("hours") or state.get("prices") != price_fingerprint(an, options):
        return set()
    hours = whole_hours(since, until)
    signatures = source_signatures(dd) if signatures is None else signatures
    changed = changed_hours(state, signatures)
    lake = set(signatures)
    stale = affected(table, options, changed, lake, lambda: _linked_cached(an, changed & lake, hours))
    if table.labels:
        relabelled = labelled_hours(an, state, label_signatures(dd))
        if relabelled is None:
            return set()
        stale |= relabelled
    return hours - stale


def is_fresh(
    an: Analytics, tables: Sequence[Table], since: datetime, until: datetime, options: TaskOptions | None = None
) -> bool:
    """True when `tables` cover every whole hour in [since, until) as the lake is now."""
    n = len(whole_hours(since, until))
    return all(len(fresh_hours(an, t, since, until, options)) == n for t in tables)
