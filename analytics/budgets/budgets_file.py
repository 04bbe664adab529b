"""`<data-dir>/budgets.toml` as the CLI, the API and the server share it: read, watched for
changes, and changed one writer at a time.

- `current()` re-reads the file when it changed (storage.watched); a file that stops parsing
  (a hand edit) keeps the last good set, and `error` says what is wrong until it is fixed.
- `put_budget`, `remove_budget`, `put_destination`, `remove_destination` hold the writer lock
  (`budgets.toml.lock`), re-read the file, edit its TOML document with tomlkit (so the user's
  comments, layout and other entries stay), check the whole new file with the same parser the
  server uses, and only then replace it atomically. A change that would leave the file invalid
  is refused with a BudgetError saying why, and the file is left as it was.

Budgets are keyed by (project, name); destinations by name (shared by every project).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from spanlake.analytics.budgets.definition import (
    FILE_NAME,
    Budget,
    BudgetError,
    BudgetSet,
    Destination,
    budget_from_dict,
    destination_from_dict,
    parse,
)
from spanlake.storage.layout import DEFAULT_PROJECT
from spanlake.storage.toml_file import TomlFile, append_table, as_written, fill, remove_table, tables

T = TypeVar("T")
# The order keys are written in (a replaced table keeps its own order for the keys it had).
BUDGET_ORDER = ("name", "project", "description", "metric", "step", "task", "service", "model", "provider",
                "prompt_name", "prompt_version", "attributes", "window", "warning", "critical", "min_samples", "for",
                "baseline", "destinations", "renotify", "slow_ms")  # fmt: skip
DESTINATION_ORDER = ("name", "type", "url", "secret_env", "routing_key_env", "to", "from", "smtp")
HEADER = (
    "# Budgets and alert destinations (docs/budgets.md, docs/alerts.md, `spanlake budgets --help`).\n"
    "# Edit by hand or with `spanlake budgets add/remove`; the server reloads this file when it changes.\n\n"
)


class BudgetExists(BudgetError):
    """A create that names a budget or destination already declared (HTTP 409)."""


class NoSuchEntry(LookupError):
    """No budget (of that project) or destination of that name (HTTP 404)."""


class BudgetsFile:
    """The budgets file of one data directory; tables without `project` belong to `default_project`."""

    def __init__(self, root: str | Path, default_project: str = DEFAULT_PROJECT) -> None:
        self.default_project = default_project
        self._file = TomlFile(
            Path(root) / FILE_NAME,
            lambda text, source: parse(text, default_project, source),
            BudgetSet(),
            BudgetError,
            HEADER,
            FILE_NAME,
        )
        self.path = self._file.path

    @property
    def lock_path(self) -> Path:
        return self._file.lock_path

    def read(self) -> BudgetSet:
        """The file as it is now (empty when missing); BudgetError naming the line of a problem."""
        return self._file.read()

    def current(self) -> BudgetSet:
        """The last good set, re-read when the file changed (shared: do not modify)."""
        return self._file.current()

    @property
    def error(self) -> str | None:
        """Why the file on disk does not parse (None when it does), as of the last `current()`."""
        return self._file.error

    def status(self) -> tuple[BudgetSet, str | None]:
        """(the last good set, the file's problem or None), re-read when the file changed."""
        found = self.current()
        return found, self.error

    # --- changes -------------------------------------------------------------------------------

    def put_budget(self, raw: Mapping[str, Any], *, create: bool = False) -> tuple[Budget, bool]:
        """Add the budget `raw` describes, or replace the one of the same project and name
        (`create=True`: BudgetExists instead). Returns (the budget as written, whether it is new)."""
        budget = budget_from_dict(raw, self.default_project)

        def edit(doc: TOMLDocument, old: BudgetSet) -> tuple[Budget, bool]:
            _check_destinations(budget, old)
            budgets = tables(doc, "budget")
            i = self._find_budget(budgets, budget.project, budget.name)
            if i is not None and create:
                raise BudgetExists(f"budget {budget.name!r} of project {budget.project!r} exists")
            values = as_written({**raw, "project": budget.project}, BUDGET_ORDER)
            if i is None:
                append_table(doc, "budget", values)
            else:
                fill(budgets[i], values)
            return budget, i is None

        return self._change(edit)

    def remove_budget(self, project: str, name: str) -> Budget:
        """Remove a budget; NoSuchEntry when the project has none of that name."""

        def edit(doc: TOMLDocument, old: BudgetSet) -> Budget:
            found = next((b for b in old.budgets if b.project == project and b.name == name), None)
            i = self._find_budget(tables(doc, "budget"), project, name)
            if found is None or i is None:
                raise NoSuchEntry(f"no budget {name!r} in project {project!r}")
            remove_table(doc, "budget", i)
            return found

        return self._change(edit)

    def put_destination(self, raw: Mapping[str, Any], *, create: bool = False) -> tuple[Destination, bool]:
        """Add a destination or replace the one of that name (`create=True`: BudgetExists instead)."""
        dest = destination_from_dict(raw)

        def edit(doc: TOMLDocument, old: BudgetSet) -> tuple[Destination, bool]:
            destinations = tables(doc, "destination")
            i = next((n for n, t in enumerate(destinations) if t.get("name") == dest.name), None)
            if i is not None and create:
                raise BudgetExists(f"destination {dest.name!r} exists")
            values = as_written(raw, DESTINATION_ORDER)
            if i is None:
                append_table(doc, "destination", values)
            else:
                fill(destinations[i], values)
            return dest, i is None

        return self._change(edit)

    def remove_destination(self, name: str) -> Destination:
        """Remove a destination no budget names (BudgetError naming the budgets that do)."""

        def edit(doc: TOMLDocument, old: BudgetSet) -> Destination:
            try:
                found = old.destination(name)
            except KeyError:
                raise NoSuchEntry(f"no destination {name!r}") from None
            users = [b.key for b in old.budgets if name in b.destinations]
            if users:
                raise BudgetError(
                    f"destination {name!r} is named by budget(s) {', '.join(users)}: remove it from them first"
                )
            i = next(n for n, t in enumerate(tables(doc, "destination")) if t.get("name") == name)
            remove_table(doc, "destination", i)
            return found

        return self._change(edit)

    def _find_budget(self, tables: list[Table], project: str, name: str) -> int | None:
        for i, t in enumerate(tables):
            if t.get("name") == name and t.get("project", self.default_project) == project:
                return i
        return None

    def _change(self, edit: Callable[[TOMLDocument, BudgetSet], T]) -> T:
        return self._file.change(edit)


def _check_destinations(budget: Budget, declared: BudgetSet) -> None:
    names = [d.name for d in declared.destinations]
    for n in budget.destinations:
        if n not in names:
            known = f"declared: {', '.join(names)}" if names else "none is declared yet"
            raise BudgetError(
                f"budget {budget.name!r}: unknown destination {n!r} ({known}); "
                "add it first with `spanlake budgets destination add`"
            )
