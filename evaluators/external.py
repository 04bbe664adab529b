"""Judge results your app already sends: OTel GenAI `gen_ai.evaluation.result` events read as
judge labels (docs/evaluators.md, "Results your app already sends").

The event (OTel GenAI semantic conventions) carries `gen_ai.evaluation.name` (required),
`gen_ai.evaluation.score.value` (a double), `gen_ai.evaluation.score.label` (`pass`, `fail`,
`relevant`, ...), `gen_ai.evaluation.explanation`, and `error.type` when the evaluation
failed. Apps send it as a span event on the evaluated span (`span.add_event`) or as a log
record with that event name, parented to the span (the Logs/Events API); both are read.

An event becomes one label like spanlake's own evaluators' (evaluators/result.py): source
`judge`, author `<name>@otel` — spanlake's own are `<name>@v<N>` and their names cannot hold
`@`, so the two never meet —, verdict from the label (`pass`/`fail` in any case; any other
label gives no verdict and is kept in metadata), score from the value, comment from the
explanation, and metadata {origin, signal, evaluator, evaluation_name, span_id, scope, label,
event time}. No `decides_outcome`: these results never decide a task's outcome.

An event with `error.type` is an errored evaluation: no label, counted as an error of that
evaluator (as spanlake's own evaluators' errors are). An event spanlake cannot read (no name,
a score that is not a number, a label longer than MAX_LABEL, ...) gets no label either; it is
counted as `malformed` on its evaluator with the reason (`read_event` never raises).

Label ids are a pure function of where the event is stored (the span and the event's position
among its events, or the log record's id), so reading the same event again writes nothing new.
`events_after` finds the stored events by the time they were ingested, after a cursor;
`read_app_results` reads them as the online cycle's step 5 (evaluators.online).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from spanlake.analytics.runner import Analytics
from spanlake.evaluators.result import SOURCE

EVENT = "gen_ai.evaluation.result"
NAME = "gen_ai.evaluation.name"
SCORE = "gen_ai.evaluation.score.value"
LABEL = "gen_ai.evaluation.score.label"
EXPLANATION = "gen_ai.evaluation.explanation"
ERROR_TYPE = "error.type"
RESPONSE_ID = "gen_ai.response.id"
AUTHOR_SUFFIX = "@otel"
UNNAMED = "(no name)"  # the evaluator an event without a usable name is counted on
MAX_NAME = 200  # characters of gen_ai.evaluation.name (a label author holds at most 256)
MAX_LABEL = 200  # characters of gen_ai.evaluation.score.label: a category, not a text
MAX_COMMENT = 64 * 1024  # the explanation is cut here (the labels API's limit on a comment)
MAX_ERROR = 2000  # characters of a recorded error
DEFAULT_BATCH = 5000  # stored spans or log records read per cycle
Signal = Literal["span_event", "log_record"]


def author(name: str) -> str:
    """The label author (and evaluator name) of results the app sent: `relevance@otel`."""
    return f"{name}{AUTHOR_SUFFIX}"


def is_external(author_or_name: str | None) -> bool:
    """Whether a label author or evaluator name is an app's (`<name>@otel`)."""
    return bool(author_or_name) and str(author_or_name).endswith(AUTHOR_SUFFIX)


@dataclass(frozen=True)
class Stored:
    """One `gen_ai.evaluation.result` event as the lake holds it."""

    project: str
    trace_id: str | None
    span_id: str | None  # the evaluated span (None: a log record on the whole trace)
    attributes: Mapping[str, Any]
    signal: Signal
    where: str  # span events: "<span id>#<position among the span's events>"; log records: the record id
    time_unix_nano: int  # the event's time (0: unset)
    fallback_unix_nano: int  # the span's end, or the record's observed time
    scope: str | None = None
    scope_version: str | None = None


@dataclass(frozen=True)
class Read:
    """What one event became: a label event, or an error (`error.type`), or a problem (malformed)."""

    evaluator: str  # `<name>@otel` (UNNAMED@otel when the name is unusable)
    label: dict[str, Any] | None = None
    error: str | None = None
    problem: str | None = None


def label_id(project: str, trace_id: str, where: str) -> str:
    """The label id of an app's result: the same every time the event is read."""
    key = "\x00".join((project, trace_id.lower(), where, "otel"))
    return "ot" + hashlib.sha256(key.encode()).hexdigest()[:30]


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _name(a: Mapping[str, Any]) -> tuple[str, str | None]:
    """(the evaluator's name, a problem with it or None)."""
    raw = a.get(NAME)
    if not isinstance(raw, str) or not raw.strip():
        got = "missing" if raw is None else "empty" if isinstance(raw, str) else f"not a text ({type(raw).__name__})"
        return UNNAMED, f"{NAME} is {got}"
    name = raw.strip()
    if len(name) > MAX_NAME:
        return _short(name), f"{NAME} is {len(name):,} characters (at most {MAX_NAME})"
    return name, None


def _score(value: Any) -> tuple[float | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = repr(value) if not isinstance(value, str) else repr(_short(value))
        return None, f"{SCORE} must be a number (double), got {shown}"
    if not math.isfinite(value):
        return None, f"{SCORE} is not a finite number"
    return float(value), None


def _label(value: Any) -> tuple[str | None, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if not isinstance(value, str):
        return None, f"{LABEL} must be a text, got {_short(repr(value))}"
    if len(value) > MAX_LABEL:
        return None, f"{LABEL} is {len(value):,} characters (at most {MAX_LABEL}): {_short(value)!r}"
    return value.strip(), None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text or None


def read_event(ev: Stored, now_ns: int) -> Read:
    """The label (or error, or problem) of one stored event; never raises."""
    a = ev.attributes
    name, problem = _name(a)
    evaluator = author(name)
    if problem is None and not ev.trace_id:
        problem = "not attached to a trace (no trace id)"
    error_type = _text(a.get(ERROR_TYPE))
    explanation = _text(a.get(EXPLANATION))
    if problem is None and error_type:
        why = f"{error_type}: {explanation}" if explanation else error_type
        return Read(evaluator, error=why[:MAX_ERROR])
    score, score_problem = _score(a.get(SCORE))
    label, label_problem = _label(a.get(LABEL))
    problem = problem or score_problem or label_problem
    if problem is None and score is None and label is None:
        problem = f"neither {SCORE} nor {LABEL} nor {ERROR_TYPE}"
    if problem is not None:
        return Read(evaluator, problem=f"malformed {EVENT} event: {problem}"[:MAX_ERROR])
    assert ev.trace_id is not None
    verdict = label.lower() if label is not None and label.lower() in ("pass", "fail") else None
    t = ev.time_unix_nano if ev.time_unix_nano > 0 else ev.fallback_unix_nano
    meta: dict[str, Any] = {
        "origin": EVENT,
        "signal": ev.signal,
        "evaluator": evaluator,
        "evaluation_name": name,
        "span_id": ev.span_id,
        "scope": ev.scope,
        "scope_version": ev.scope_version,
        "event_time_unix_nano": ev.time_unix_nano,
    }
    if label is not None:
        meta["label"] = label
    if ev.signal == "log_record":
        meta["record_id"] = ev.where
    if isinstance(a.get(RESPONSE_ID), str):
        meta["response_id"] = a[RESPONSE_ID][:256]
    if explanation is not None and len(explanation) > MAX_COMMENT:
        meta["explanation_chars"] = len(explanation)
        explanation = explanation[: MAX_COMMENT - 1] + "…"
    event = {
        "label_id": label_id(ev.project, ev.trace_id, ev.where),
        "trace_id": ev.trace_id.lower(),
        "span_id": ev.span_id.lower() if ev.span_id else None,
        "created_at_unix_nano": min(t, now_ns) if t > 0 else now_ns,  # the evaluation's time, never ahead
        "project": ev.project,
        "source": SOURCE,
        "author": evaluator,
        "verdict": verdict,
        "failure_mode": None,
        "score": score,
        "comment": explanation,
        "expected_output": None,
        "metadata": meta,
    }
    return Read(evaluator, label=event)


# --- reading them from the lake -------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class EventCursor:
    """Where reading stopped: every row up to (ingested_at µs, project, key) in that order was
    read, key `s:<trace>:<span>` or `l:<record id>`. (t, "", "") reads on from microsecond t
    (projects are never empty)."""

    ingested_at_us: int = 0
    project: str = ""
    key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ingested_at_us": self.ingested_at_us, "project": self.project, "key": self.key}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> EventCursor:
        if not d:
            return cls()
        return cls(int(d.get("ingested_at_us") or 0), str(d.get("project") or ""), str(d.get("key") or ""))


# Spans carrying the event and log records named so, ingested in (cursor, horizon], in that order.
_EVENTS_SQL = f"""
WITH rows AS (
  SELECT epoch_us(ingested_at) AS at_us, project, 's:' || trace_id || ':' || span_id AS key,
    trace_id, span_id, NULL::VARCHAR AS record_id, events::VARCHAR AS payload,
    0::BIGINT AS time_unix_nano, start_time_unix_nano + duration_ns AS fallback_unix_nano,
    scope_name, scope_version
  FROM spans_raw
  WHERE epoch_us(ingested_at) BETWEEN $c_us AND $h_us AND contains(events::VARCHAR, '{EVENT}')
  UNION ALL
  SELECT epoch_us(ingested_at), project, 'l:' || record_id, trace_id, span_id, record_id,
    attributes::VARCHAR, time_unix_nano, observed_time_unix_nano, scope_name, scope_version
  FROM logs_raw
  WHERE epoch_us(ingested_at) BETWEEN $c_us AND $h_us AND event_name = '{EVENT}'
)
SELECT * FROM rows
WHERE at_us > $c_us OR project > $c_project OR (project = $c_project AND key > $c_key)
ORDER BY at_us, project, key LIMIT $limit"""


@dataclass
class Batch:
    """The events of one read: each stored event, the cursor past them, whether more wait."""

    events: list[Stored] = field(default_factory=list)
    cursor: EventCursor = field(default_factory=EventCursor)
    rows: int = 0  # spans and log records read
    more: bool = False


def events_after(an: Analytics, cursor: EventCursor, horizon_us: int, limit: int = DEFAULT_BATCH) -> Batch:
    """The evaluation events stored after `cursor` and ingested at or before `horizon_us`, at most
    `limit` spans or log records (a span's events all at once)."""
    if horizon_us < cursor.ingested_at_us:
        return Batch(cursor=cursor)
    params = {"c_us": cursor.ingested_at_us, "c_project": cursor.project, "c_key": cursor.key, "h_us": horizon_us,
              "limit": limit + 1}  # fmt: skip
    rows = an.lake.query(_EVENTS_SQL, params).to_pylist()
    more = len(rows) > limit
    rows = rows[:limit]
    out = Batch(rows=len(rows), more=more)
    for r in rows:
        out.events.extend(stored_events(r))
    if more:
        last = rows[-1]
        out.cursor = EventCursor(int(last["at_us"]), last["project"], last["key"])
    else:  # everything up to the horizon was read
        out.cursor = EventCursor(horizon_us + 1)
    return out


def stored_events(row: Mapping[str, Any]) -> list[Stored]:
    """The evaluation events of one row of _EVENTS_SQL (a span's events JSON, or a log record's attributes)."""
    try:
        payload = orjson.loads(row["payload"]) if row["payload"] else None
    except orjson.JSONDecodeError:
        payload = None
    common: dict[str, Any] = {
        "project": row["project"],
        "trace_id": row["trace_id"],
        "span_id": row["span_id"],
        "scope": row["scope_name"],
        "scope_version": row["scope_version"],
        "fallback_unix_nano": int(row["fallback_unix_nano"] or 0),
    }
    if row["record_id"] is not None:
        attrs = payload if isinstance(payload, dict) else {}
        t = int(row["time_unix_nano"] or 0)
        return [Stored(attributes=attrs, signal="log_record", where=row["record_id"], time_unix_nano=t, **common)]
    found = []
    for i, e in enumerate(payload if isinstance(payload, list) else []):
        if not isinstance(e, dict) or e.get("name") != EVENT:
            continue
        attrs = e.get("attributes") if isinstance(e.get("attributes"), dict) else {}
        t = e.get("time_unix_nano")
        where = f"{row['span_id']}#{i}"
        found.append(
            Stored(attributes=attrs, signal="span_event", where=where, time_unix_nano=t if isinstance(t, int) else 0,
                   **common)
        )  # fmt: skip
    return found


def read_all(events: Sequence[Stored], now_ns: int) -> list[tuple[Stored, Read]]:
    """`read_event` of each event, each label id once (a span stored twice carries the same events)."""
    seen: set[str] = set()
    out = []
    for ev in events:
        r = read_event(ev, now_ns)
        if r.label is not None:
            if r.label["label_id"] in seen:
                continue
            seen.add(r.label["label_id"])
        out.append((ev, r))
    return out


@dataclass
class AppResults:
    """One read of the app's results: label events, counts per evaluator, and what was read."""

    labels: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # "project/<name>@otel" → counts
    batch: Batch = field(default_factory=Batch)


def _stat(stats: dict[str, dict[str, Any]], project: str, evaluator: str) -> dict[str, Any]:
    return stats.setdefault(
        f"{project}/{evaluator}",
        {"version": None, "evaluated": 0, "passed": 0, "failed": 0, "errors": 0, "malformed": 0,
         "last_error": None, "last_error_trace": None, "last_error_span": None},
    )  # fmt: skip


def read_app_results(an: Analytics, cursor: EventCursor, horizon_us: int, limit: int, now_ns: int) -> AppResults:
    """The app's own `gen_ai.evaluation.result` events stored after `cursor`, up to the horizon:
    labels, or errors and problems counted on their evaluator."""
    out = AppResults(batch=events_after(an, cursor, horizon_us, limit))
    for ev, read in read_all(out.batch.events, now_ns):
        stat = _stat(out.stats, ev.project, read.evaluator)
        if read.label is not None:
            out.labels.append(read.label)
            stat["evaluated"] += 1
            verdict = read.label["verdict"]
            if verdict is not None:
                stat["passed" if verdict == "pass" else "failed"] += 1
            continue
        stat["errors" if read.error is not None else "malformed"] += 1
        stat["last_error"] = read.error or read.problem
        stat["last_error_trace"], stat["last_error_span"] = ev.trace_id, ev.span_id
    return out
