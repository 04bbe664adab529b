"""Redaction in the collector: rules from a file, applied to each request before the WAL.

Rules live in a TOML file (`<data_dir>/redaction.toml`, or $SPANLAKE_REDACTION_FILE), one
section per project; a project without its own section uses the `"*"` section:

    [projects."*"]
    builtin = ["email", "api_key", "card_number"]

    [projects.support]
    builtin = ["email", "card_number"]
    patterns = [{ name = "order", regex = "ORD-[0-9]{6}", replacement = "[ORDER]" }]

What is rewritten: every string and bytes field of every message of the request, found
through the protobuf descriptors (attribute keys and values at any depth, names, messages,
trace state, scope names, severity text, event names, log bodies, schema URLs, ...), and
integers and doubles of 13 digits or more (card rule). What is not: trace, span and parent
ids, other numbers, and the one resource attribute that decides the project (a resource whose
project name the rules would rewrite is refused). Unknown fields are dropped. docs/security.md
has the full list.

The Ingestor asks `Redactor.current()` for each request. With no rules it gets None and the
request takes the usual path, untouched: the original bytes go to the WAL. With rules, the
parsed request is rewritten before validation and the rewritten request is what is stored.
The file is checked for changes at most once every RELOAD_INTERVAL_S; a file that breaks
while running keeps the previous rules (and logs why); a broken file at start is an error.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanlake.collector.redact_rules import EMPTY, RuleSet, compile_rules, parse_rules
from spanlake.collector.values import to_json
from spanlake.sdk import attributes as A

log = logging.getLogger(__name__)

REDACTION_FILE = "redaction.toml"
REDACTION_ENV = "SPANLAKE_REDACTION_FILE"
RELOAD_INTERVAL_S = 1.0
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
# Generic: every string and bytes field of every message is visited through the protobuf
# descriptors, so a field OTLP adds later is redacted without a change here. KeyValue and
# AnyValue, by far the most common messages, take a fast path whose fields are checked below.

ID_FIELDS = frozenset({"trace_id", "span_id", "parent_span_id"})  # opaque binary ids, stored as hex
PROJECT_REJECTED = "with a project name that a redaction rule matches"
_RESOURCES = {"traces": "resource_spans", "logs": "resource_logs", "metrics": "resource_metrics"}
_PROJECT_KEYS = (A.RESOURCE_PROJECT, A.OI_PROJECT_NAME)  # in resource_project's order
_STRING, _BYTES, _MESSAGE = FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_MESSAGE
_KEY_VALUE, _ANY_VALUE = KeyValue.DESCRIPTOR, AnyValue.DESCRIPTOR


def _text_fields(desc: Any) -> set[str]:
    return {f.name for f in desc.fields if f.type in (_STRING, _BYTES, _MESSAGE)}


if _text_fields(_KEY_VALUE) != {"key", "value"} or _text_fields(_ANY_VALUE) != {
    "string_value", "array_value", "kvlist_value", "bytes_value"
}:  # fmt: skip
    raise RuntimeError("KeyValue or AnyValue gained a field that can hold text: extend _Walk.key_value, any_value")


@dataclass
class Redaction:
    """What `redact_request` did: values rewritten, and items dropped (PROJECT_REJECTED)."""

    changed: int = 0
    rejected: int = 0


def redact_request(
    request: Message, signal: str, rules: RuleSet, project: str | None, default_project: str
) -> Redaction:
    """Rewrite an ExportTraceServiceRequest, ExportLogsServiceRequest or ExportMetricsServiceRequest in place.

    `project` is the project an API key pins the request to; without one each resource's
    own project attribute decides (as in the lake). Every string and bytes field is
    redacted (ids excepted), unknown fields are dropped, and so is every resource whose
    deciding project attribute is itself something its rules would rewrite (its items are
    counted in `rejected`): nothing the rules match is left to be stored.
    """
    request.DiscardUnknownFields()
    result = Redaction()
    entries = getattr(request, _RESOURCES[signal])
    refused = []
    for i, entry in enumerate(entries):
        deciding = None if project else deciding_project(entry.resource.attributes)
        proj = project or (deciding.value.string_value if deciding is not None else default_project)
        redact = rules.text_redactor(proj)
        if redact is None:
            continue
        cards = tuple(r for r in rules.for_project(proj) if r.builtin and r.name == "card_number")
        if deciding is not None and (redact(proj) != proj or redact(deciding.key) != deciding.key):
            refused.append(i)  # storing its project name anywhere would keep what the rules match
            continue
        result.changed += _Walk(redact, compile_rules(cards)).message(entry)
        if not project and _project_of(entry) != (proj if deciding is not None else ""):
            refused.append(i)  # a rewritten key now names a project: store nothing rather than guess
    for i in reversed(refused):
        result.rejected += _items(entries[i], signal)
        del entries[i]
    return result


def deciding_project(attrs: Iterable[KeyValue]) -> KeyValue | None:
    """The attribute `decode.resource_project` takes the project from (the last of a repeated
    key counts), or None when the default project applies."""
    last: dict[str, KeyValue] = {}
    for kv in attrs:
        if kv.key in _PROJECT_KEYS:
            last[kv.key] = kv
    for key in _PROJECT_KEYS:
        kv = last.get(key)
        if kv is not None and kv.value.WhichOneof("value") == "string_value" and kv.value.string_value:
            return kv
    return None


def _project_of(entry: Message) -> str:
    deciding = deciding_project(entry.resource.attributes)  # type: ignore[attr-defined]
    return "" if deciding is None else deciding.value.string_value


def _items(entry: Message, signal: str) -> int:
    """Items of one resource entry, as partial_success counts them (spans, log records, data points)."""
    if signal == "logs":
        return sum(len(s.log_records) for s in entry.scope_logs)  # type: ignore[attr-defined]
    if signal == "metrics":
        return sum(
            len(getattr(m, kind).data_points)
            for s in entry.scope_metrics  # type: ignore[attr-defined]
            for m in s.metrics
            if (kind := m.WhichOneof("data"))
        )
    return sum(len(s.spans) for s in entry.scope_spans)  # type: ignore[attr-defined]


_MEMO_MAX = 128  # texts up to this long are redacted once per request


class _Walk:
    """Applies one project's rules to every string and bytes field of a message tree."""

    def __init__(self, rules: Callable[[str], str], cards: Callable[[str], str] | None) -> None:
        self.rules = rules
        self.cards = cards  # for numbers: only the card rule can match digits alone
        self.seen: dict[str, str] = {}  # short texts (keys, names, models) repeat across spans

    def redact(self, text: str) -> str:
        if len(text) > _MEMO_MAX:
            return self.rules(text)
        new = self.seen.get(text)
        if new is None:
            new = self.seen[text] = self.rules(text)
        return new

    def message(self, msg: Message) -> int:
        desc = msg.DESCRIPTOR
        if desc is _KEY_VALUE:
            return self.key_value(msg)  # type: ignore[arg-type]
        if desc is _ANY_VALUE:
            return self.any_value(msg)  # type: ignore[arg-type]
        changed = 0
        redact = self.redact
        for fd, value in msg.ListFields():
            kind = fd.type
            if kind == _MESSAGE:
                if fd.is_repeated:
                    for child in value:
                        changed += self.message(child)
                else:
                    changed += self.message(value)
            elif kind == _STRING:
                if fd.is_repeated:
                    for j, s in enumerate(value):
                        new = redact(s)
                        if new != s:
                            value[j] = new
                            changed += 1
                else:
                    new = redact(value)
                    if new != value:
                        setattr(msg, fd.name, new)
                        changed += 1
            elif kind == _BYTES and fd.name not in ID_FIELDS:
                if fd.is_repeated:
                    for j, b in enumerate(value):
                        new_b = self.bytes(b)
                        if new_b is not None:
                            value[j] = new_b
                            changed += 1
                else:
                    new_b = self.bytes(value)
                    if new_b is not None:
                        setattr(msg, fd.name, new_b)
                        changed += 1
        return changed

    def key_value(self, kv: KeyValue) -> int:
        changed = 0
        key = kv.key
        new = self.redact(key)
        if new != key:
            kv.key = new
            changed = 1
        return changed + self.any_value(kv.value)

    def any_value(self, v: AnyValue) -> int:
        kind = v.WhichOneof("value")
        if kind == "string_value":
            new = self.redact(v.string_value)
            if new != v.string_value:
                v.string_value = new
                return 1
        elif kind == "array_value":
            return sum(self.any_value(x) for x in v.array_value.values)
        elif kind == "kvlist_value":
            return sum(self.key_value(x) for x in v.kvlist_value.values)
        elif kind == "bytes_value":
            new_b = self.bytes(v.bytes_value)
            if new_b is not None:
                v.bytes_value = new_b
                return 1
        elif kind in ("int_value", "double_value") and self.cards is not None:
            number = getattr(v, kind)
            if abs(number) >= CARD_MIN_INT and math.isfinite(number):
                text = to_json(number)  # exactly as the lake would write it
                new = self.cards(text)
                if new != text:
                    v.string_value = new
                    return 1
        return 0

    def bytes(self, data: bytes) -> bytes | None:
        """`data` redacted as text (bytes that are not UTF-8 kept as they are), or None if unchanged."""
        text = data.decode("utf-8", "surrogateescape")
        new = self.redact(text)
        if new == text:
            return None
        try:
            return new.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a replacement holding a lone surrogate
            return new.encode("utf-8", "replace")


def scrub_message(rules: RuleSet, text: str, project: str | None) -> str:
    """An error message that may quote the request, redacted with the rules of `project`, or,
    when the project is not known yet, with the rules of every project in turn."""
    if project:
        return rules.redact(text, project)
    for fn in {id(f): f for p in rules.projects if (f := rules.text_redactor(p)) is not None}.values():
        text = fn(text)
    return text
