"""`<data-dir>/evaluators.toml` as the server, the API and the CLI share it: read, watched for
changes, versioned, and changed one writer at a time (storage.toml_file, like budgets.toml).

- `current()` re-reads the file when it changed; a file that stops parsing (a hand edit)
  keeps the last good set, and `error` says what is wrong until it is fixed. Every set it
  returns has its versions assigned (evaluators.versions).
- `put_evaluator`, `remove_evaluator`, `put_rule`, `remove_rule` hold the writer lock, edit
  the TOML document with tomlkit (the user's comments, layout and other entries stay), check
  the whole new file with `definition.parse`, and only then replace it atomically; a change
  that would leave the file invalid is refused with an EvaluatorError, the file untouched.

Evaluators and rules are keyed by (project, name); a table without `project` belongs to
`default_project`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from spanlake.evaluators.definition import (
    FILE_NAME,
    RULE_KEYS,
    Evaluator,
    EvaluatorError,
    EvaluatorSet,
    Rule,
    evaluator_from_dict,
    parse,
    rule_from_dict,
)
from spanlake.evaluators.kinds import KIND_KEYS
from spanlake.evaluators.versions import VersionRegistry
from spanlake.storage.layout import DEFAULT_PROJECT
from spanlake.storage.toml_file import TomlFile, append_table, as_written, fill, remove_table, tables

# The order keys are written in (a replaced table keeps its own order for the keys it had).
EVALUATOR_ORDER = ("name", "project", "description", "kind", "decides_outcome", "failure_mode",
                   *dict.fromkeys(k for keys in KIND_KEYS.values() for k in keys))  # fmt: skip
RULE_ORDER = RULE_KEYS
HEADER = (
    "# Evaluators, the rules that run them on incoming traces, and settings (docs/evaluators.md,\n"
    "# `spanlake evaluators --help`). Edit by hand or through the API/CLI; the server reloads this file.\n\n"
)


class EvaluatorExists(EvaluatorError):
    """A create that names an evaluator or rule already declared (HTTP 409)."""


class NoSuchEntry(LookupError):
    """No evaluator or rule of that name in that project (HTTP 404)."""


class EvaluatorsFile:
    """The evaluators file of one data directory (`root`), with its version registry."""

    def __init__(self, root: str | Path, default_project: str = DEFAULT_PROJECT) -> None:
        self.root = Path(root)
        self.default_project = default_project
        self.registry = VersionRegistry(self.root)
        self._file = TomlFile(
            self.root / FILE_NAME,
            lambda text, source: parse(text, default_project, source, root=self.root),
            EvaluatorSet(),
            EvaluatorError,
            HEADER,
            FILE_NAME,
            load=self._versioned,
        )
        self.path = self._file.path

    @property
    def lock_path(self) -> Path:
        return self._file.lock_path

    def read(self) -> EvaluatorSet:
        """The file as it is now, versioned (empty when missing); EvaluatorError naming the line."""
        return self._versioned(self._file.read())

    def current(self) -> EvaluatorSet:
        """The last good set, versioned, re-read when the file changed (shared: do not modify)."""
        return self._file.current()

    @property
    def error(self) -> str | None:
        """Why the file on disk does not parse (None when it does), as of the last `current()`."""
        return self._file.error

    def status(self) -> tuple[EvaluatorSet, str | None]:
        """(the last good set, the file's problem or None), re-read when the file changed."""
        found = self.current()
        return found, self.error

    # --- changes -------------------------------------------------------------------------------

    def put_evaluator(self, raw: Mapping[str, Any], *, create: bool = False) -> tuple[Evaluator, bool]:
        """Add the evaluator `raw` describes, or replace the one of the same project and name
        (`create=True`: EvaluatorExists instead). Returns (the evaluator, versioned, whether it is new)."""
        evaluator = evaluator_from_dict(raw, self.default_project, root=self.root)

        def edit(doc: TOMLDocument, old: EvaluatorSet) -> bool:
            found = tables(doc, "evaluator")
            i = self._find(found, evaluator.project, evaluator.name)
            if i is not None and create:
                raise EvaluatorExists(f"evaluator {evaluator.name!r} of project {evaluator.project!r} exists")
            values = as_written({**raw, "project": evaluator.project}, EVALUATOR_ORDER)
            if i is None:
                append_table(doc, "evaluator", values)
            else:
                fill(found[i], values)
            return i is None

        created = self._file.change(edit)
        return self.registry.assign((evaluator,))[0], created

    def remove_evaluator(self, project: str, name: str) -> Evaluator:
        """Remove an evaluator no rule names (EvaluatorError naming the rules that do)."""

        def edit(doc: TOMLDocument, old: EvaluatorSet) -> Evaluator:
            i = self._find(tables(doc, "evaluator"), project, name)
            try:
                found = old.get(project, name)
            except KeyError:
                found = None
            if found is None or i is None:
                raise NoSuchEntry(f"no evaluator {name!r} in project {project!r}")
            users = [r.name for r in old.rules_for(project) if name in r.evaluators]
            if users:
                raise EvaluatorError(
                    f"evaluator {name!r} is run by rule(s) {', '.join(users)} of project {project!r}: "
                    "remove it from them first"
                )
            remove_table(doc, "evaluator", i)
            return found

        return self._file.change(edit)

    def put_rule(self, raw: Mapping[str, Any], *, create: bool = False) -> tuple[Rule, bool]:
        """Add the rule `raw` describes or replace the one of that project and name (`create=True`:
        EvaluatorExists instead); every evaluator it names must be declared in its project."""
        rule = rule_from_dict(raw, self.default_project)

        def edit(doc: TOMLDocument, old: EvaluatorSet) -> bool:
            declared = [e.name for e in old.for_project(rule.project)]
            missing = [n for n in rule.evaluators if n not in declared]
            if missing:
                known = f"declared: {', '.join(declared)}" if declared else "it declares none yet"
                raise EvaluatorError(
                    f"rule {rule.name!r}: unknown evaluator {missing[0]!r} in project {rule.project!r} ({known})"
                )
            found = tables(doc, "rule")
            i = self._find(found, rule.project, rule.name)
            if i is not None and create:
                raise EvaluatorExists(f"rule {rule.name!r} of project {rule.project!r} exists")
            values = as_written({**raw, "project": rule.project}, RULE_ORDER)
            if i is None:
                append_table(doc, "rule", values)
            else:
                fill(found[i], values)
            return i is None

        return rule, self._file.change(edit)

    def remove_rule(self, project: str, name: str) -> Rule:
        """Remove a rule; NoSuchEntry when the project has none of that name."""

        def edit(doc: TOMLDocument, old: EvaluatorSet) -> Rule:
            i = self._find(tables(doc, "rule"), project, name)
            try:
                found = old.rule(project, name)
            except KeyError:
                raise NoSuchEntry(f"no rule {name!r} in project {project!r}") from None
            if i is None:
                raise NoSuchEntry(f"no rule {name!r} in project {project!r}")
            remove_table(doc, "rule", i)
            return found

        return self._file.change(edit)

    def _versioned(self, found: EvaluatorSet) -> EvaluatorSet:
        return dataclasses.replace(found, evaluators=self.registry.assign(found.evaluators))

    def _find(self, found: list[Table], project: str, name: str) -> int | None:
        for i, t in enumerate(found):
            if t.get("name") == name and t.get("project", self.default_project) == project:
                return i
        return None
