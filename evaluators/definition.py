"""`<data-dir>/evaluators.toml`: evaluators, the rules that run them online, and settings.

`parse` checks everything (each kind's own keys: KIND_KEYS; an LLM judge's template may name
only target.TEMPLATE_VARIABLES) and names the line of the first problem; the versions come
from evaluators.versions, and evaluators.evaluators_file edits the file keeping its comments.

    [settings]
    quiet_period = "1m"      # a trace is complete when no span arrived for this long
    max_backlog = 10000      # complete traces waiting beyond this are skipped (counted)

    [[evaluator]]
    name = "reply_json"      # unique per project
    kind = "json_schema"     # one of KINDS
    schema = { type = "object", required = ["answer"] }
    decides_outcome = false  # true: its verdict decides the task's outcome after human labels

    [[evaluator]]
    name = "groundedness"
    kind = "llm_judge"
    base_url = "http://127.0.0.1:8000/v1"
    model = "gpt-4o-mini"
    api_key_env = "JUDGE_API_KEY"
    template = "Question: {input}\nDocuments:\n{documents}\nAnswer: {output}"

    [[rule]]
    name = "sample-answers"
    evaluators = ["groundedness", "reply_json"]
    sample = 0.1             # share of matching traces (by a hash of the trace id)
    target = "trace"         # or a span category: llm, retrieval, tool, ...
    task = "answer_ticket"   # filters: task, service, model, provider, prompt_name, prompt_version, attributes
    queue_when = "fail"      # add to the labelling queue: fail | disagree | always
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from spanlake.evaluators.kinds import COMMON_KEYS, KIND_KEYS, KINDS, EvaluatorError, Fields, kind_params
from spanlake.storage.datasets import valid_dataset_name
from spanlake.storage.layout import valid_project
from spanlake.storage.schema import CATEGORIES
from spanlake.storage.toml_file import (
    NAME,
    NAME_HELP,
    array_of_tables,
    duration,
    format_duration,
    key_line,
    load,
    nth_line,
    plain,
    table_lines,
)

FILE_NAME = "evaluators.toml"
# Params that change how an evaluator is run, not what it judges: no new version when they change.
OPERATIONAL_PARAMS = frozenset(
    ("base_url", "api_key_env", "timeout_s", "retries", "concurrency", "daily_spend_usd",
     "input_usd_per_mtok", "output_usd_per_mtok")
)  # fmt: skip
CODE_KINDS = KINDS[:-1]
WHEN = ("fail", "disagree", "always")
DEFAULT_QUIET = timedelta(minutes=1)
DEFAULT_MAX_BACKLOG = 10_000
TARGETS = ("trace", *CATEGORIES)  # what a rule evaluates: the whole trace, or each span of a category
SCOPE_KEYS = ("task", "service", "model", "provider", "prompt_name", "prompt_version")
RULE_KEYS = (
    "name", "project", "description", "evaluators", "sample", "target", *SCOPE_KEYS, "attributes",
    "queue_when", "dataset", "dataset_when", "webhook", "webhook_when", "enabled",
)  # fmt: skip
SETTINGS_KEYS = ("quiet_period", "max_backlog")
TABLES = ("settings", "evaluator", "rule")


@dataclass(frozen=True)
class Evaluator:
    """One evaluator as declared. `params`: the kind's own keys, checked and with their defaults
    filled in (and `failure_mode` when the evaluator or its kind has one); `version`: assigned
    by the version registry (evaluators.versions) from `fingerprint`."""

    name: str
    kind: str
    project: str = "default"
    params: Mapping[str, Any] = field(default_factory=dict)
    decides_outcome: bool = False
    description: str = ""
    version: int = 0
    line: int | None = None

    @property
    def fingerprint(self) -> str:
        """What makes a version: kind, params and decides_outcome — what the evaluator judges
        and how. Not the description, nor how a judge is reached and paced (OPERATIONAL_PARAMS:
        moving the endpoint, raising a timeout or the spend cap judges the same way)."""
        params = {k: v for k, v in self.params.items() if k not in OPERATIONAL_PARAMS}
        doc = {"kind": self.kind, "params": params, "decides_outcome": self.decides_outcome}
        return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    @property
    def is_judge(self) -> bool:
        return self.kind == "llm_judge"

    @property
    def failure_mode(self) -> str | None:
        """The failure mode a fail gets when the check itself does not say one."""
        return self.params.get("failure_mode")

    def to_dict(self) -> dict[str, Any]:
        """The evaluator as the API shows it (params with their defaults, version when assigned)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "project": self.project}
        if self.description:
            out["description"] = self.description
        out["decides_outcome"] = self.decides_outcome
        out.update(self.params)
        if self.version:
            out["version"] = self.version
        return out


@dataclass(frozen=True)
class Rule:
    """Which complete traces (or spans) get which evaluators online, and what happens next."""

    name: str
    evaluators: tuple[str, ...]
    project: str = "default"
    sample: float = 1.0
    target: str = "trace"
    scope: Mapping[str, Any] = field(default_factory=dict)  # task, service, model, ..., attributes
    queue_when: str | None = None
    dataset: str | None = None
    dataset_when: str = "fail"
    webhook: str | None = None  # a destination's name (budgets.toml [[destination]])
    webhook_when: str = "fail"
    enabled: bool = True
    line: int | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The rule as the file and the API write it (defaults left out)."""
        out: dict[str, Any] = {"name": self.name, "project": self.project}
        if self.description:
            out["description"] = self.description
        out |= {"evaluators": list(self.evaluators), "sample": self.sample, "target": self.target}
        out.update({k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.scope.items()})
        for k in ("queue_when", "dataset", "webhook"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.dataset is not None and self.dataset_when != "fail":
            out["dataset_when"] = self.dataset_when
        if self.webhook is not None and self.webhook_when != "fail":
            out["webhook_when"] = self.webhook_when
        if not self.enabled:
            out["enabled"] = False
        return out


@dataclass(frozen=True)
class Settings:
    quiet_period: timedelta = DEFAULT_QUIET
    max_backlog: int = DEFAULT_MAX_BACKLOG

    def to_dict(self) -> dict[str, Any]:
        return {"quiet_period": format_duration(self.quiet_period), "max_backlog": self.max_backlog}


@dataclass(frozen=True)
class EvaluatorSet:
    evaluators: tuple[Evaluator, ...] = ()
    rules: tuple[Rule, ...] = ()
    settings: Settings = Settings()

    def for_project(self, project: str) -> list[Evaluator]:
        return [e for e in self.evaluators if e.project == project]

    def get(self, project: str, name: str) -> Evaluator:
        for e in self.evaluators:
            if e.project == project and e.name == name:
                return e
        raise KeyError(f"no evaluator {name!r} in project {project!r}")

    def rules_for(self, project: str) -> list[Rule]:
        return [r for r in self.rules if r.project == project]

    def rule(self, project: str, name: str) -> Rule:
        for r in self.rules:
            if r.project == project and r.name == name:
                return r
        raise KeyError(f"no rule {name!r} in project {project!r}")


# --- the file ------------------------------------------------------------------------------


def evaluator_from_dict(
    raw: Mapping[str, Any], default_project: str = "default", line: int | None = None, *,
    key_lines: Mapping[str, int] | None = None, root: Path | None = None,
) -> Evaluator:  # fmt: skip
    """One evaluator from its table (file or API body); EvaluatorError saying what is wrong and
    where (`key_lines`: the line of each key, when read from a file; `root`: the data directory,
    where a `schema_file` is read)."""
    if not isinstance(raw, Mapping):
        raise EvaluatorError(f"{f'line {line}: ' if line else ''}an evaluator must be a table")
    f = Fields(raw, "evaluator", line, key_lines or {})
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise f.fail(f"needs a name: {NAME_HELP}", "name")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise f.fail(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}", "kind")
    f.allowed((*COMMON_KEYS, *KIND_KEYS[kind]), f"keys of {kind}")
    project = _project(f, raw.get("project", default_project))
    description = f.text("description") or ""
    return Evaluator(
        name=name, kind=kind, project=project, params=kind_params(f, kind, root),
        decides_outcome=f.flag("decides_outcome", False), description=description, line=line,
    )  # fmt: skip


def rule_from_dict(
    raw: Mapping[str, Any], default_project: str = "default", line: int | None = None, *,
    key_lines: Mapping[str, int] | None = None,
) -> Rule:  # fmt: skip
    """One rule from its table (file or API body); EvaluatorError saying what is wrong and where.
    The evaluators it names are checked against the file by `check_set`."""
    if not isinstance(raw, Mapping):
        raise EvaluatorError(f"{f'line {line}: ' if line else ''}a rule must be a table")
    f = Fields(raw, "rule", line, key_lines or {})
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise f.fail(f"needs a name: {NAME_HELP}", "name")
    f.allowed(RULE_KEYS)
    project = _project(f, raw.get("project", default_project))
    evaluators = f.names("evaluators", required=True)
    if len(set(evaluators)) != len(evaluators):
        raise f.fail("evaluators names one evaluator twice", "evaluators")
    sample = f.num("sample", 0, 1)
    target = f.choice("target", TARGETS, "trace")
    if target not in TARGETS:  # (None: written as something falsy)
        raise f.fail(f"target must be one of {', '.join(TARGETS)}", "target")
    scope: dict[str, Any] = {k: f.text(k) for k in SCOPE_KEYS if raw.get(k) is not None}
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, Mapping) or not all(isinstance(v, str) for v in attributes.values()):
        raise f.fail('attributes must be a table of strings, e.g. attributes = { "tenant" = "acme" }', "attributes")
    if attributes:
        scope["attributes"] = dict(attributes)
    queue_when = f.choice("queue_when", WHEN, None)
    if queue_when == "disagree" and len(evaluators) < 2:
        raise f.fail('queue_when = "disagree" needs two evaluators or more', "queue_when")
    dataset = f.text("dataset")
    if dataset is not None and not valid_dataset_name(dataset):
        raise f.fail(f"dataset must be a dataset name (letters, digits, _ . -), got {dataset!r}", "dataset")
    webhook = f.text("webhook")
    if webhook is not None and not NAME.match(webhook):
        raise f.fail(f"webhook must name a destination of budgets.toml, got {webhook!r}", "webhook")
    when = {k: f.choice(k, WHEN, "fail") or "fail" for k in ("dataset_when", "webhook_when")}
    for k, target_key in (("dataset_when", "dataset"), ("webhook_when", "webhook")):
        if k in raw and raw.get(target_key) is None:
            raise f.fail(f"{k} needs {target_key}", k)
    return Rule(
        name=name, evaluators=tuple(evaluators), project=project, sample=1.0 if sample is None else sample,
        target=target, scope=scope, queue_when=queue_when, dataset=dataset, dataset_when=when["dataset_when"],
        webhook=webhook, webhook_when=when["webhook_when"], enabled=f.flag("enabled", True), line=line,
        description=f.text("description") or "",
    )  # fmt: skip


def settings_from_dict(
    raw: Mapping[str, Any], line: int | None = None, *, key_lines: Mapping[str, int] | None = None
) -> Settings:
    """The [settings] table; EvaluatorError saying what is wrong and where."""
    if not isinstance(raw, Mapping):
        raise EvaluatorError("settings must be written [settings] (one table)")
    f = Fields(raw, "settings", line, key_lines or {})
    f.allowed(SETTINGS_KEYS)
    quiet = duration(raw.get("quiet_period"), "quiet_period", f.failing("quiet_period"), zero=True, whole_seconds=False)
    return Settings(
        quiet_period=DEFAULT_QUIET if quiet is None else quiet,
        max_backlog=f.whole("max_backlog", DEFAULT_MAX_BACKLOG, 1, 10_000_000),
    )


def parse(
    text: str, default_project: str = "default", source: str = FILE_NAME, *, root: Path | None = None
) -> EvaluatorSet:
    """Everything an evaluators file declares (versions 0: the registry assigns them);
    EvaluatorError naming the line of the first problem. `root`: the data directory, where
    `schema_file`s are read (without it they are only checked to be relative paths)."""
    doc = load(text, source, EvaluatorError)
    unknown = sorted(set(doc) - set(TABLES))
    if unknown:
        raise EvaluatorError(
            f"{source}: unknown table {', '.join(unknown)}; write [settings], [[evaluator]] and [[rule]]"
        )
    lines = table_lines(text, TABLES)

    def keys(raw: Any, line: int | None) -> dict[str, int]:
        if not isinstance(raw, Mapping):
            return {}
        return {k: n for k in raw if (n := key_line(text, line, k)) is not None}

    try:
        settings = Settings()
        if "settings" in doc:
            raw, line = plain(doc["settings"]), nth_line(lines, "settings", 0)
            settings = settings_from_dict(raw, line, key_lines=keys(raw, line))
        evaluators = []
        for i, item in enumerate(array_of_tables(doc, "evaluator", EvaluatorError)):
            raw, line = plain(item), nth_line(lines, "evaluator", i)
            evaluators.append(evaluator_from_dict(raw, default_project, line, key_lines=keys(raw, line), root=root))
        rules = []
        for i, item in enumerate(array_of_tables(doc, "rule", EvaluatorError)):
            raw, line = plain(item), nth_line(lines, "rule", i)
            rules.append(rule_from_dict(raw, default_project, line, key_lines=keys(raw, line)))
    except EvaluatorError as e:
        raise EvaluatorError(f"{source}: {e}") from None
    return check_set(EvaluatorSet(tuple(evaluators), tuple(rules), settings), source, text)


def check_set(found: EvaluatorSet, source: str = FILE_NAME, text: str = "") -> EvaluatorSet:
    """Names unique per project; every evaluator a rule names declared in the rule's project.
    `text`: the file, to name the line of the key at fault."""

    def at(line: int | None, key: str) -> str:
        n = key_line(text, line, key) or line
        return f"{source}: line {n}: " if n else f"{source}: "

    for kind, entries in (("evaluator", found.evaluators), ("rule", found.rules)):
        seen: set[tuple[str, str]] = set()
        for e in entries:
            if (e.project, e.name) in seen:
                raise EvaluatorError(
                    f"{at(e.line, 'name')}{kind} {e.name!r} of project {e.project!r} is declared twice"
                )
            seen.add((e.project, e.name))
    for r in found.rules:
        declared = [e.name for e in found.for_project(r.project)]
        missing = [n for n in r.evaluators if n not in declared]
        if missing:
            known = f"declared: {', '.join(declared)}" if declared else "it declares none"
            raise EvaluatorError(
                f"{at(r.line, 'evaluators')}rule {r.name!r} names evaluator {missing[0]!r}, which project "
                f"{r.project!r} does not declare ({known})"
            )
    return found


def read(path: Path, default_project: str = "default") -> EvaluatorSet:
    """The evaluators file at `path` (empty when missing); `schema_file`s are read beside it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return EvaluatorSet()
    except UnicodeDecodeError:
        raise EvaluatorError(f"{path}: not UTF-8 text") from None
    return parse(text, default_project, str(path), root=path.parent)


def _project(f: Fields, project: Any) -> str:
    if not isinstance(project, str) or not valid_project(project):
        raise f.fail(f"project must be a project name (letters, digits, _ . -), got {project!r}", "project")
    return project
