"""Redaction in the collector: rules from a file, applied to each request before the WAL.

Rules live in a TOML file (`<data_dir>/redaction.toml`, or $SPANLAKE_REDACTION_FILE), one
section per project; a project without its own section uses the `"*"` section:

    [projects."*"]
    builtin = ["email", "api_key", "card_number"]

    [projects.support]
    builtin = ["email", "card_number"]
    patterns = [{ name = "order", regex = "ORD-[0-9]{6}", replacement = "[ORDER]" }]

What is rewritten: every string value of resource, scope, span, event, link and log-record
attributes (arrays and maps included; integers of 13 digits or more go through the card
rule), span names, event names, span status messages and log bodies. What is not: attribute
keys, ids, times, trace state, scope names and versions, the resource's project attributes
(they decide which rules apply), and what does not come in over OTLP (labels, feedback,
datasets).

The Ingestor asks `Redactor.current()` for each request. With no rules it gets None and the
request takes the usual path, untouched: the original bytes go to the WAL. With rules, the
parsed request is rewritten before validation and the rewritten request is what is stored.
The file is checked for changes at most once every RELOAD_INTERVAL_S; a file that breaks
while running keeps the previous rules (and logs why); a broken file at start is an error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanlake.collector.decode import resource_project
from spanlake.collector.redact_rules import EMPTY, RuleSet, compile_rules, parse_rules
from spanlake.collector.values import key_values
from spanlake.sdk import attributes as A

log = logging.getLogger(__name__)

REDACTION_FILE = "redaction.toml"
REDACTION_ENV = "SPANLAKE_REDACTION_FILE"
RELOAD_INTERVAL_S = 1.0
KEEP_RESOURCE_KEYS = frozenset({A.RESOURCE_PROJECT, A.OI_PROJECT_NAME})
CARD_MIN_INT = 10**12  # integers of 13 digits or more may be card numbers


class RedactionError(ValueError):
    """The rule file cannot be used; the message names the file and the problem."""


def redaction_path(data_dir: str | Path) -> Path:
    """The rule file: $SPANLAKE_REDACTION_FILE when set, else `<data_dir>/redaction.toml`."""
    env = os.environ.get(REDACTION_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else Path(data_dir).expanduser().resolve() / REDACTION_FILE


def load_rules(path: Path) -> RuleSet:
    """The rules in `path` (none when it does not exist); RedactionError when it is broken."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return EMPTY
    except (OSError, UnicodeDecodeError) as e:
        raise RedactionError(f"redaction rules {path}: cannot read: {e}") from None
    try:
        return parse_rules(text)
    except ValueError as e:
        raise RedactionError(f"redaction rules {path}: {e}") from None


class Redactor:
    """The rules of one file, re-read when the file changes (checked at most every interval)."""

    def __init__(self, path: str | Path, check_interval_s: float = RELOAD_INTERVAL_S) -> None:
        self.path = Path(path)
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._rules = load_rules(self.path)  # RedactionError: refuse to start
        self._next_check = time.monotonic() + check_interval_s

    def _file_stamp(self) -> tuple[int, int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)

    def current(self) -> RuleSet | None:
        """The rules to apply now, or None when there are none (the caller then does nothing)."""
        if time.monotonic() >= self._next_check:
            self._check()
        return self._rules or None

    def _check(self) -> None:
        with self._lock:
            self._next_check = time.monotonic() + self.check_interval_s
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                rules = load_rules(self.path)
            except RedactionError as e:
                log.error("%s; keeping the previous rules", e)
                return
            if stamp is None and self._rules:
                log.warning("redaction rules %s removed: nothing is redacted any more", self.path)
            else:
                log.info("redaction rules %s loaded (%s)", self.path, describe(rules))
            self._rules = rules

    def rules(self) -> RuleSet:
        """The rules in force (possibly none)."""
        return self.current() or EMPTY


def describe(rules: RuleSet) -> str:
    """One line for banners and logs: which rules apply where."""
    if not rules:
        return "no rules"
    parts = [f"{p}: {', '.join(r.name for r in rs) or 'none'}" for p, rs in rules.projects.items()]
    return "; ".join(parts)


# --- walking a request ----------------------------------------------------------------------


def redact_request(request: Message, signal: str, rules: RuleSet, project: str | None, default_project: str) -> int:
    """Rewrite an ExportTraceServiceRequest or ExportLogsServiceRequest in place.

    `project` is the project an API key pins the request to; without one each resource's
    own project attribute decides (as in the lake). Returns how many values changed.
    """
    changed = 0
    logs = signal == "logs"
    for rs in request.resource_logs if logs else request.resource_spans:  # type: ignore[attr-defined]
        resource_attrs = rs.resource.attributes
        proj = project or resource_project(key_values(resource_attrs), default_project)
        redact = rules.text_redactor(proj)
        if redact is None:
            continue
        cards = rules.for_project(proj)
        cards = tuple(r for r in cards if r.builtin and r.name == "card_number")
        walk = _Walk(redact, compile_rules(cards))
        changed += walk.attrs(resource_attrs, KEEP_RESOURCE_KEYS)
        for ss in rs.scope_logs if logs else rs.scope_spans:
            changed += walk.attrs(ss.scope.attributes)
            if logs:
                for record in ss.log_records:
                    changed += walk.attrs(record.attributes) + walk.value(record.body)
                continue
            for span in ss.spans:
                changed += walk.attrs(span.attributes)
                new = redact(span.name)
                if new != span.name:
                    span.name, changed = new, changed + 1
                if span.status.message:
                    new = redact(span.status.message)
                    if new != span.status.message:
                        span.status.message, changed = new, changed + 1
                for event in span.events:
                    changed += walk.attrs(event.attributes)
                    new = redact(event.name)
                    if new != event.name:
                        event.name, changed = new, changed + 1
                for link in span.links:
                    changed += walk.attrs(link.attributes)
    return changed


_NESTED_OR_INT = frozenset({"array_value", "kvlist_value", "int_value"})


class _Walk:
    """Applies one project's rules to attribute values (recursing into arrays and maps)."""

    def __init__(self, redact: Callable[[str], str], cards: Callable[[str], str] | None) -> None:
        self.redact = redact
        self.cards = cards  # for integers: only the card rule can match digits alone

    def attrs(self, kvs: Iterable[KeyValue], keep: frozenset[str] = frozenset()) -> int:
        changed = 0
        redact = self.redact
        for kv in kvs:
            v = kv.value
            kind = v.WhichOneof("value")
            if kind == "string_value":
                s = v.string_value
                new = redact(s)
                if new != s and not (keep and kv.key in keep):
                    v.string_value = new
                    changed += 1
            elif kind in _NESTED_OR_INT and not (keep and kv.key in keep):
                changed += self.value(v)
        return changed

    def value(self, v: AnyValue) -> int:
        kind = v.WhichOneof("value")
        if kind == "string_value":
            new = self.redact(v.string_value)
            if new != v.string_value:
                v.string_value = new
                return 1
        elif kind == "int_value" and self.cards is not None and abs(v.int_value) >= CARD_MIN_INT:
            text = str(v.int_value)
            new = self.cards(text)
            if new != text:
                v.string_value = new
                return 1
        elif kind == "array_value":
            return sum(self.value(x) for x in v.array_value.values)
        elif kind == "kvlist_value":
            return self.attrs(v.kvlist_value.values)
        return 0
