"""`<data-dir>/evaluators.toml`: evaluators, the rules that run them online, and settings.

SKELETON — the types below are the contract the other modules code against; the parser
(`parse`, `read`) and the file editing (`EvaluatorsFile`) fill in the rest.

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
from typing import Any

import orjson

FILE_NAME = "evaluators.toml"
KINDS = (
    "json_valid",
    "json_schema",
    "regex",
    "contains",
    "equals",
    "fuzzy",
    "pii",
    "threshold",
    "retrieval_empty",
    "tool_call",
    "python",
    "llm_judge",
)
CODE_KINDS = KINDS[:-1]
WHEN = ("fail", "disagree", "always")
DEFAULT_QUIET = timedelta(minutes=1)
DEFAULT_MAX_BACKLOG = 10_000


class EvaluatorError(ValueError):
    """The evaluators file (or an API body) is invalid; the message names the line when known."""


@dataclass(frozen=True)
class Evaluator:
    """One evaluator as declared. `params`: the kind's own keys (validated by the parser);
    `version`: assigned by the version registry (evaluators.versions) from `fingerprint`."""

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
        """What makes a version: kind, params and decides_outcome (not the description)."""
        doc = {"kind": self.kind, "params": self.params, "decides_outcome": self.decides_outcome}
        return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    @property
    def is_judge(self) -> bool:
        return self.kind == "llm_judge"


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


@dataclass(frozen=True)
class Settings:
    quiet_period: timedelta = DEFAULT_QUIET
    max_backlog: int = DEFAULT_MAX_BACKLOG


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
