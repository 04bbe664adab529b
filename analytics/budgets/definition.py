"""Budgets and alert destinations as declared in `<data-dir>/budgets.toml`, checked once here.

    [[budget]]
    name = "answer-ticket-p95"        # unique within its project
    project = "demo"                  # default: the data directory's default project
    metric = "p95_latency"            # analytics.budgets.metrics.METRICS
    task = "answer_ticket"            # scope: task, service, model, provider, prompt_name,
    prompt_version = "v3"             #   prompt_version, attributes = { "k" = "v" }
    window = "15m"
    warning = 2500                    # at least one of warning / critical
    critical = 3000
    min_samples = 20                  # fewer: no-data (default: the metric's)
    for = "5m"                        # a breach must last this long before it fires
    baseline = "7d ago"               # relative thresholds: "7d ago" (same window, shifted) or
                                      #   "previous 7d" (the 7 days before the window); then
                                      #   warning/critical are % worse than the baseline
    destinations = ["team-hook"]
    renotify = "1h"                   # re-send while still firing (0: never)

    [[destination]]
    name = "team-hook"
    type = "webhook"                  # webhook | slack | teams | pagerduty | email
    url = "https://example.com/hook"
    secret_env = "SPANLAKE_HOOK_SECRET"   # webhook: the Standard Webhooks secret (whsec_...)

Errors name the line of the `[[budget]]` or `[[destination]]` table they are in. The file is
parsed with tomlkit so that `spanlake budgets add/remove` and the API keep a user's comments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from spanlake.analytics.budgets.metrics import METRICS, STEPS, Metric
from spanlake.analytics.spans import Filters
from spanlake.storage.toml_file import (
    ENV_NAME,
    NAME,
    NAME_HELP,
    array_of_tables,
    duration,
    format_duration,
    load,
    nth_line,
    number,
    parse_duration,
    plain,
    table_lines,
)

FILE_NAME = "budgets.toml"
DESTINATION_TYPES = ("webhook", "slack", "teams", "pagerduty", "email")
SCOPE_KEYS = ("task", "service", "model", "provider", "prompt_name", "prompt_version")
MAX_WINDOW = timedelta(days=31)
RESERVED_NAMES = ("check", "status")  # /api/v1/budgets/check and /status
_BASELINE = re.compile(r"^\s*(?:(?P<ago>\S+)\s+ago|previous\s+(?P<prev>\S+))\s*$", re.IGNORECASE)
_BUDGET_KEYS = {
    "name", "project", "metric", "step", *SCOPE_KEYS, "attributes", "window", "warning", "critical",
    "min_samples", "for", "baseline", "destinations", "renotify", "slow_ms", "description",
}  # fmt: skip
_DESTINATION_KEYS = {"name", "type", "url", "secret_env", "routing_key_env", "to", "from", "smtp"}


class BudgetError(ValueError):
    """A budget file or definition that is not valid; the message names the line when known."""


@dataclass(frozen=True)
class Baseline:
    """What a relative threshold compares with: the same window `shift` earlier ("7d ago"), or
    the `span` before the window ("previous 7d")."""

    kind: Literal["ago", "previous"]
    length: timedelta
    text: str

    @classmethod
    def parse(cls, text: str) -> Baseline:
        m = _BASELINE.match(text)
        if not m:
            raise ValueError(f"baseline must be like '7d ago' or 'previous 7d', got {text!r}")
        kind: Literal["ago", "previous"] = "ago" if m.group("ago") else "previous"
        length = parse_duration(m.group("ago") or m.group("prev"))
        if length <= timedelta(0) or length > timedelta(days=366):
            raise ValueError(f"baseline length must be between 1s and 366d, got {text!r}")
        return cls(kind, length, text.strip())


@dataclass(frozen=True)
class Budget:
    """One budget. `warning`/`critical` are absolute (in the metric's unit) or, with a
    `baseline`, percent worse than the baseline's figure."""

    name: str
    project: str
    metric: str
    window: timedelta
    warning: float | None = None
    critical: float | None = None
    step: str = "task"
    task: str | None = None
    service: str | None = None
    model: str | None = None
    provider: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    min_samples: int = 1
    for_: timedelta = timedelta(0)
    baseline: Baseline | None = None
    destinations: tuple[str, ...] = ()
    renotify: timedelta = timedelta(hours=1)
    slow_ms: float | None = None
    description: str | None = None
    line: int | None = None  # where it is declared in the file (None: not from a file)

    @property
    def key(self) -> str:
        """Unique over all projects: `project/name`."""
        return f"{self.project}/{self.name}"

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]

    def filters(self, since: Any = None, until: Any = None) -> Filters:
        """The report filters of this budget's scope over [since, until)."""
        return Filters(
            since=since, until=until, project=self.project, service=self.service, model=self.model,
            provider=self.provider, prompt_name=self.prompt_name, prompt_version=self.prompt_version,
            attributes=dict(self.attributes), task_name=self.task,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The budget as the file and the API write it (durations as text, defaults left out)."""
        out: dict[str, Any] = {"name": self.name, "project": self.project, "metric": self.metric}
        if self.step != "task":
            out["step"] = self.step
        for k in SCOPE_KEYS:
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        out["window"] = format_duration(self.window)
        for k in ("warning", "critical"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        out["min_samples"] = self.min_samples
        if self.for_:
            out["for"] = format_duration(self.for_)
        if self.baseline is not None:
            out["baseline"] = self.baseline.text
        if self.destinations:
            out["destinations"] = list(self.destinations)
        out["renotify"] = format_duration(self.renotify)
        if self.slow_ms is not None:
            out["slow_ms"] = self.slow_ms
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Destination:
    """Where alerts go. Secrets are never in the file: `secret_env` / `routing_key_env` name
    environment variables. `smtp` is `host:port` for email (default localhost:25)."""

    name: str
    type: str
    url: str | None = None
    secret_env: str | None = None
    routing_key_env: str | None = None
    to: tuple[str, ...] = ()
    sender: str | None = None
    smtp: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        for k in ("url", "secret_env", "routing_key_env", "smtp"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.to:
            out["to"] = list(self.to)
        if self.sender:
            out["from"] = self.sender
        return out


@dataclass(frozen=True)
class BudgetSet:
    """Everything a budgets file declares."""

    budgets: tuple[Budget, ...] = ()
    destinations: tuple[Destination, ...] = ()

    def for_project(self, project: str) -> list[Budget]:
        return [b for b in self.budgets if b.project == project]

    def destination(self, name: str) -> Destination:
        for d in self.destinations:
            if d.name == name:
                return d
        raise KeyError(name)


def budget_from_dict(raw: Mapping[str, Any], default_project: str, line: int | None = None) -> Budget:
    """One budget from its table (file or API body); BudgetError saying what is wrong and where."""
    where = f"line {line}: " if line else ""
    if not isinstance(raw, Mapping):
        raise BudgetError(f"{where}a budget must be a table")
    name = raw.get("name")

    def fail(msg: str) -> BudgetError:
        who = f"budget {name!r}" if isinstance(name, str) else "budget"
        return BudgetError(f"{where}{who}: {msg}")

    unknown = sorted(set(raw) - _BUDGET_KEYS)
    if unknown:
        raise fail(f"unknown key {', '.join(map(repr, unknown))}; keys: {', '.join(sorted(_BUDGET_KEYS))}")
    if not isinstance(name, str) or not NAME.match(name):
        raise fail(f"needs a name: {NAME_HELP}")
    if name in RESERVED_NAMES:
        raise fail(f"{', '.join(RESERVED_NAMES)} are reserved (API paths); choose another name")
    project = raw.get("project", default_project)
    if not isinstance(project, str) or not project:
        raise fail("project must be a non-empty string")
    metric = raw.get("metric")
    if not isinstance(metric, str) or metric not in METRICS:
        raise fail(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
    spec = METRICS[metric]
    step = raw.get("step", "task")
    if step not in STEPS:
        raise fail(f"step must be one of {', '.join(STEPS)}, got {step!r}")
    if step != "task" and not spec.stepped:
        raise fail(f"{metric} takes no step (only {', '.join(m for m, s in METRICS.items() if s.stepped)} do)")
    scope: dict[str, str | None] = {}
    for k in SCOPE_KEYS:
        v = raw.get(k)
        if v is not None and (not isinstance(v, str) or not v):
            raise fail(f"{k} must be a non-empty string")
        scope[k] = v
    if scope["task"] is not None and not spec.task_scope:
        raise fail(f"{metric} cannot be scoped to a task")
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise fail('attributes must be a table of strings, e.g. attributes = { "tenant" = "acme" }')
    window = duration(raw.get("window"), "window", fail, required=True)
    assert window is not None
    if window > MAX_WINDOW:
        raise fail(f"window must be at most {format_duration(MAX_WINDOW)}")
    thresholds = {k: number(raw.get(k), k, fail) for k in ("warning", "critical")}
    if thresholds["warning"] is None and thresholds["critical"] is None:
        raise fail("needs a warning or a critical threshold (or both)")
    baseline = None
    if raw.get("baseline") is not None:
        if not isinstance(raw["baseline"], str):
            raise fail("baseline must be text like '7d ago' or 'previous 7d'")
        try:
            baseline = Baseline.parse(raw["baseline"])
        except ValueError as e:
            raise fail(str(e)) from None
    _check_thresholds(spec, thresholds["warning"], thresholds["critical"], baseline is not None, fail)
    min_samples = raw.get("min_samples", spec.default_min_samples)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or not 0 <= min_samples <= 10**9:
        raise fail("min_samples must be a whole number from 0")
    destinations = raw.get("destinations", [])
    if (
        not isinstance(destinations, Sequence)
        or isinstance(destinations, str)
        or not all(isinstance(d, str) for d in destinations)
    ):
        raise fail('destinations must be a list of destination names, e.g. ["team-hook"]')
    slow_ms = number(raw.get("slow_ms"), "slow_ms", fail)
    if slow_ms is not None and (metric != "slow_share" or slow_ms < 0):
        raise fail("slow_ms applies to slow_share only, and is at least 0")
    renotify = timedelta(hours=1)
    if "renotify" in raw:
        renotify = duration(raw["renotify"], "renotify", fail, zero=True) or timedelta(0)
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise fail("description must be text")
    return Budget(
        name=name, project=project, metric=metric, window=window, warning=thresholds["warning"],
        critical=thresholds["critical"], step=step, task=scope["task"], service=scope["service"],
        model=scope["model"], provider=scope["provider"], prompt_name=scope["prompt_name"],
        prompt_version=scope["prompt_version"], attributes=dict(attributes), min_samples=min_samples,
        for_=duration(raw.get("for"), "for", fail, zero=True) or timedelta(0), baseline=baseline,
        destinations=tuple(destinations),
        renotify=renotify,
        slow_ms=slow_ms, description=description, line=line,
    )  # fmt: skip


def destination_from_dict(raw: Mapping[str, Any], line: int | None = None) -> Destination:
    """One destination from its table; BudgetError saying what is wrong and where."""
    where = f"line {line}: " if line else ""
    name = raw.get("name") if isinstance(raw, Mapping) else None

    def fail(msg: str) -> BudgetError:
        who = f"destination {name!r}" if isinstance(name, str) else "destination"
        return BudgetError(f"{where}{who}: {msg}")

    if not isinstance(raw, Mapping):
        raise BudgetError(f"{where}a destination must be a table")
    unknown = sorted(set(raw) - _DESTINATION_KEYS)
    if unknown:
        raise fail(f"unknown key {', '.join(map(repr, unknown))}; keys: {', '.join(sorted(_DESTINATION_KEYS))}")
    if not isinstance(name, str) or not NAME.match(name):
        raise fail(f"needs a name: {NAME_HELP}")
    kind = raw.get("type")
    if kind not in DESTINATION_TYPES:
        raise fail(f"type must be one of {', '.join(DESTINATION_TYPES)}, got {kind!r}")
    url = raw.get("url")
    if (kind in ("webhook", "slack", "teams") or url is not None) and not _http_url(url):
        raise fail(f"url must be an http:// or https:// URL, got {url!r}")
    for k in ("secret_env", "routing_key_env"):
        v = raw.get(k)
        if v is not None and (not isinstance(v, str) or not ENV_NAME.match(v)):
            raise fail(f"{k} must name an environment variable, got {v!r}")
    if kind == "pagerduty" and not raw.get("routing_key_env"):
        raise fail("pagerduty needs routing_key_env (the environment variable holding the routing key)")
    to = raw.get("to", [])
    if isinstance(to, str):
        to = [to]
    email = re.compile(r"[^@\s]+@[^@\s]+")
    addresses_ok = isinstance(to, list) and bool(to) and all(isinstance(a, str) and email.fullmatch(a) for a in to)
    if (kind == "email" or "to" in raw) and not addresses_ok:
        raise fail('email needs to = ["someone@example.com", ...]')
    smtp = raw.get("smtp")
    if smtp is not None and (not isinstance(smtp, str) or not re.fullmatch(r"[^:\s]+:\d{1,5}", smtp)):
        raise fail(f"smtp must be host:port, got {smtp!r}")
    sender = raw.get("from")
    if sender is not None and not isinstance(sender, str):
        raise fail("from must be an e-mail address")
    return Destination(
        name, kind, url, raw.get("secret_env"), raw.get("routing_key_env"), tuple(to), sender, smtp, line
    )


def parse(text: str, default_project: str = "default", source: str = FILE_NAME) -> BudgetSet:
    """Every budget and destination of a budgets file; BudgetError naming the line of the first problem."""
    doc = load(text, source, BudgetError)
    unknown = sorted(set(doc) - {"budget", "destination"})
    if unknown:
        raise BudgetError(f"{source}: unknown table {', '.join(unknown)}; write [[budget]] and [[destination]]")
    lines = table_lines(text, ("budget", "destination"))
    try:
        budgets = [
            budget_from_dict(plain(b), default_project, nth_line(lines, "budget", i))
            for i, b in enumerate(array_of_tables(doc, "budget", BudgetError))
        ]
        destinations = [
            destination_from_dict(plain(d), nth_line(lines, "destination", i))
            for i, d in enumerate(array_of_tables(doc, "destination", BudgetError))
        ]
    except BudgetError as e:
        raise BudgetError(f"{source}: {e}") from None
    return check_set(BudgetSet(tuple(budgets), tuple(destinations)), source)


def check_set(found: BudgetSet, source: str = FILE_NAME) -> BudgetSet:
    """Names unique, every destination a budget names declared."""
    seen: dict[str, Budget] = {}
    for b in found.budgets:
        if b.key in seen:
            raise BudgetError(f"{source}: line {b.line}: budget {b.name!r} of project {b.project!r} is declared twice")
        seen[b.key] = b
    names = [d.name for d in found.destinations]
    for i, d in enumerate(found.destinations):
        if d.name in names[:i]:
            raise BudgetError(f"{source}: line {d.line}: destination {d.name!r} is declared twice")
    for b in found.budgets:
        missing = [n for n in b.destinations if n not in names]
        if missing:
            raise BudgetError(
                f"{source}: line {b.line}: budget {b.name!r} names destination {missing[0]!r}, which is not declared"
            )
    return found


def read(path: Path, default_project: str = "default") -> BudgetSet:
    """The budgets file at `path` (empty when missing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return BudgetSet()
    except UnicodeDecodeError:
        raise BudgetError(f"{path}: not UTF-8 text") from None
    return parse(text, default_project, str(path))


def _http_url(url: Any) -> bool:
    """An http(s) URL with a host."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlparse(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _check_thresholds(spec: Metric, warning: float | None, critical: float | None, relative: bool, fail: Any) -> None:
    for k, v in (("warning", warning), ("critical", critical)):
        if v is None:
            continue
        if relative:
            if v <= 0:
                raise fail(f"{k} is a percentage worse than the baseline: more than 0, got {v:g}")
        elif v < 0:
            raise fail(f"{k} must be at least 0, got {v:g}")
        elif spec.unit == "fraction" and v > 1:
            raise fail(f"{k}: {spec.name} is a fraction from 0 to 1 (write 0.85 for 85 %), got {v:g}")
    if warning is not None and critical is not None:
        worse_first = critical >= warning if (relative or spec.worse == "higher") else critical <= warning
        if not worse_first:
            order = "above" if (relative or spec.worse == "higher") else "below"
            raise fail(f"critical ({critical:g}) must be at or {order} warning ({warning:g}) for {spec.name}")
