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
from collections.abc import Iterable
from pathlib import Path

from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanlake.collector.decode import resource_project
from spanlake.collector.redact_rules import EMPTY, Rule, RuleSet, apply_rules, parse_rules
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
        found = rules.for_project(proj)
        if not found:
            continue
        changed += _attrs(resource_attrs, found, keep=KEEP_RESOURCE_KEYS)
        for ss in rs.scope_logs if logs else rs.scope_spans:
            changed += _attrs(ss.scope.attributes, found)
            if logs:
                for record in ss.log_records:
                    changed += _attrs(record.attributes, found) + _value(record.body, found)
                continue
            for span in ss.spans:
                changed += _attrs(span.attributes, found)
                new = apply_rules(span.name, found)
                if new != span.name:
                    span.name, changed = new, changed + 1
                new = apply_rules(span.status.message, found)
                if new != span.status.message:
                    span.status.message, changed = new, changed + 1
                for event in span.events:
                    changed += _attrs(event.attributes, found)
                    new = apply_rules(event.name, found)
                    if new != event.name:
                        event.name, changed = new, changed + 1
                for link in span.links:
                    changed += _attrs(link.attributes, found)
    return changed


def _value(v: AnyValue, rules: tuple[Rule, ...]) -> int:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        new = apply_rules(v.string_value, rules)
        if new != v.string_value:
            v.string_value = new
            return 1
    elif kind == "int_value" and abs(v.int_value) >= CARD_MIN_INT:  # a card number sent as an integer
        text = str(v.int_value)
        new = apply_rules(text, tuple(r for r in rules if r.builtin and r.name == "card_number"))
        if new != text:
            v.string_value = new
            return 1
    elif kind == "array_value":
        return sum(_value(x, rules) for x in v.array_value.values)
    elif kind == "kvlist_value":
        return _attrs(v.kvlist_value.values, rules)
    return 0


def _attrs(kvs: Iterable[KeyValue], rules: tuple[Rule, ...], keep: frozenset[str] = frozenset()) -> int:
    return sum(_value(kv.value, rules) for kv in kvs if kv.key not in keep)
