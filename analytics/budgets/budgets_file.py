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

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Comment, Table, Whitespace
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
from spanlake.storage.json_file import file_lock, write_atomically
from spanlake.storage.layout import DEFAULT_PROJECT
from spanlake.storage.watched import WatchedFile

T = TypeVar("T")
# The order keys are written in (a replaced table keeps its own order for the keys it had).
BUDGET_ORDER = ("name", "project", "description", "metric", "step", "task", "service", "model", "provider",
                "prompt_name", "prompt_version", "attributes", "window", "warning", "critical", "min_samples", "for",
                "baseline", "destinations", "renotify", "slow_ms")  # fmt: skip
DESTINATION_ORDER = ("name", "type", "url", "secret_env", "routing_key_env", "to", "from", "smtp")
NEW_FILE_MODE = 0o644  # names of environment variables, never secrets: readable like prices.toml
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
        self.path = Path(root) / FILE_NAME
        self.default_project = default_project
        self._watched = WatchedFile(
            self.path, lambda p: parse(_text(p), default_project, str(p)), BudgetSet(), FILE_NAME
        )

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def read(self) -> BudgetSet:
        """The file as it is now (empty when missing); BudgetError naming the line of a problem."""
        return parse(self._read_text(), self.default_project, str(self.path))

    def current(self) -> BudgetSet:
        """The last good set, re-read when the file changed (shared: do not modify)."""
        return self._watched.current()

    @property
    def error(self) -> str | None:
        """Why the file on disk does not parse (None when it does), as of the last `current()`."""
        return self._watched.error

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
            tables = _tables(doc, "budget")
            i = self._find_budget(tables, budget.project, budget.name)
            if i is not None and create:
                raise BudgetExists(f"budget {budget.name!r} of project {budget.project!r} exists")
            values = _as_written({**raw, "project": budget.project}, BUDGET_ORDER)
            if i is None:
                _append(doc, "budget", values)
            else:
                _fill(tables[i], values)
            return budget, i is None

        return self._change(edit)

    def remove_budget(self, project: str, name: str) -> Budget:
        """Remove a budget; NoSuchEntry when the project has none of that name."""

        def edit(doc: TOMLDocument, old: BudgetSet) -> Budget:
            found = next((b for b in old.budgets if b.project == project and b.name == name), None)
            i = self._find_budget(_tables(doc, "budget"), project, name)
            if found is None or i is None:
                raise NoSuchEntry(f"no budget {name!r} in project {project!r}")
            _remove(doc, "budget", i)
            return found

        return self._change(edit)

    def put_destination(self, raw: Mapping[str, Any], *, create: bool = False) -> tuple[Destination, bool]:
        """Add a destination or replace the one of that name (`create=True`: BudgetExists instead)."""
        dest = destination_from_dict(raw)

        def edit(doc: TOMLDocument, old: BudgetSet) -> tuple[Destination, bool]:
            tables = _tables(doc, "destination")
            i = next((n for n, t in enumerate(tables) if t.get("name") == dest.name), None)
            if i is not None and create:
                raise BudgetExists(f"destination {dest.name!r} exists")
            values = _as_written(raw, DESTINATION_ORDER)
            if i is None:
                _append(doc, "destination", values)
            else:
                _fill(tables[i], values)
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
            i = next(n for n, t in enumerate(_tables(doc, "destination")) if t.get("name") == name)
            _remove(doc, "destination", i)
            return found

        return self._change(edit)

    def _find_budget(self, tables: list[Table], project: str, name: str) -> int | None:
        for i, t in enumerate(tables):
            if t.get("name") == name and t.get("project", self.default_project) == project:
                return i
        return None

    def _read_text(self) -> str:
        try:
            return _text(self.path)
        except FileNotFoundError:
            return ""

    def _change(self, edit: Callable[[TOMLDocument, BudgetSet], T]) -> T:
        """Run `edit` on the file's document under the writer lock; write it back if the whole
        new file is valid (BudgetError otherwise, the file untouched)."""
        with file_lock(self.lock_path):
            text = self._read_text()
            try:
                old = parse(text, self.default_project, str(self.path))
            except BudgetError as e:
                raise BudgetError(f"{e} (fix the file by hand first; nothing was changed)") from None
            doc = tomlkit.parse(text) if text.strip() else tomlkit.parse(HEADER)
            result = edit(doc, old)
            new_text = tomlkit.dumps(doc)
            try:
                parse(new_text, self.default_project, str(self.path))
            except (BudgetError, tomlkit.exceptions.TOMLKitError) as e:
                raise BudgetError(f"refused, the file would not be valid: {e}") from None
            mode = self.path.stat().st_mode & 0o777 if text else NEW_FILE_MODE
            write_atomically(self.path, new_text.encode("utf-8"), mode)
            return result


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BudgetError(f"{path}: not UTF-8 text") from None


def _check_destinations(budget: Budget, declared: BudgetSet) -> None:
    names = [d.name for d in declared.destinations]
    for n in budget.destinations:
        if n not in names:
            known = f"declared: {', '.join(names)}" if names else "none is declared yet"
            raise BudgetError(
                f"budget {budget.name!r}: unknown destination {n!r} ({known}); "
                "add it first with `spanlake budgets destination add`"
            )


def _tables(doc: TOMLDocument, key: str) -> list[Table]:
    got = doc.get(key)
    return list(got) if isinstance(got, AoT) else []


def _item(value: Any) -> Any:
    """A TOML value that stays on one line: tables inline, lists as arrays."""
    if isinstance(value, Mapping):
        table = tomlkit.inline_table()
        table.update({k: _item(v) for k, v in value.items()})
        return table
    if isinstance(value, list | tuple):
        array = tomlkit.array()
        array.extend(_item(v) for v in value)
        return array
    return value


def _as_written(raw: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """The keys given (None: left out) as plain values, in `order` (raw was validated: no other keys)."""
    return {k: _plain(raw[k]) for k in sorted(raw, key=order.index) if raw[k] is not None}


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


def _fill(table: Table, values: Mapping[str, Any]) -> None:
    """Make `table` hold `values`: unchanged keys keep their formatting and comments, new
    keys go after the last key (before the blank lines and comments that end the table)."""
    for k in [k for k in table if k not in values]:
        del table[k]
    tail = _pop_tail(table)
    for k, v in values.items():
        if k in table and _plain(table[k]) == v:
            continue
        table[k] = _item(v)
    for item in tail:
        table.add(item)


def _append(doc: TOMLDocument, key: str, values: Mapping[str, Any]) -> None:
    """A new table at the end of array `key`, a blank line after the one before it (whose
    closing comments now close the new one: they are usually about what follows)."""
    table = tomlkit.table()
    for k, v in values.items():
        table[k] = _item(v)
    existing = doc.get(key)
    if isinstance(existing, AoT) and len(existing):
        last = existing[-1]
        for item in _pop_tail(last):
            table.add(item)
        last.add(tomlkit.nl())
        existing.append(table)
    else:
        doc.append(key, tomlkit.aot())
        doc[key].append(table)


def _pop_tail(table: Table) -> list[Any]:
    """Remove and return the blank lines and comments after a table's last key."""
    body = table.value.body  # (key, item) pairs; key None for whitespace and comments
    n = 0
    while n < len(body) and body[len(body) - 1 - n][0] is None:
        n += 1
    # (a deleted key leaves a keyless Null placeholder, which renders as nothing: dropped)
    tail = [item for _, item in body[len(body) - n :] if isinstance(item, Whitespace | Comment)]
    del body[len(body) - n :]  # after every key: the container's key index is unaffected
    return tail


def _remove(doc: TOMLDocument, key: str, i: int) -> None:
    """Remove table `i` of array `key`; the comments closing it now close the table before it."""
    aot = doc[key]
    tail = _pop_tail(aot[i])
    if i > 0:
        before = aot[i - 1]
        _pop_tail(before)
        for item in tail:
            before.add(item)
    del aot[i]
    if not len(aot):
        del doc[key]
