"""TOML files a user edits by hand and the API edits too (budgets.toml, evaluators.toml): one
way to read them with errors that name the line, and to change them without losing comments.

Reading: `load(text, source, error)` parses with tomlkit and turns its exceptions into `error`
naming the line; `table_lines` finds where each `[[table]]` (or `[table]`) starts and
`key_line` where a key of it is set, so that a check of a plain value (`plain`) can say
where it was written: `where(source, line)` is the `"budgets.toml: line 12: "` prefix.
`duration` and `number` check the values the files share ("15m", finite numbers).

Changing: `TomlFile.change(edit)` holds the writer lock (`<file>.lock`), re-reads the file,
lets `edit` change its tomlkit document (`fill`, `append_table`, `remove_table` keep the
user's comments, layout and other entries), checks the whole new text with the file's own
parser, and only then replaces the file atomically. A change that would leave the file
invalid is refused with the file's error saying why, and the file is left as it was.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Comment, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from spanlake.storage.json_file import file_lock, write_atomically
from spanlake.storage.watched import WatchedFile

T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E", bound=ValueError)
# The name of an entry (a budget, a destination, an evaluator, a rule): safe in URLs and paths.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
NAME_HELP = "letters, digits, and . _ : - (at most 100)"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NEW_FILE_MODE = 0o644  # these files name environment variables, never hold secrets
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_KEY = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*=""")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_-]+)\s*(\]\]?)")


# --- values --------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '24h', '7d', '2w' → timedelta."""
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].replace(".", "", 1).isdigit():
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 24h, 7d)")
    try:
        return timedelta(**{_UNITS[text[-1]]: float(text[:-1])})
    except OverflowError:
        raise ValueError(f"duration too long: {text!r}") from None


def format_duration(d: timedelta) -> str:
    """The shortest of '90s', '15m', '24h', '7d' that is exact."""
    s = int(d.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def duration(
    v: Any, key: str, fail: Callable[[str], Exception], *, required: bool = False, zero: bool = False,
    whole_seconds: bool = True,
) -> timedelta | None:  # fmt: skip
    """A duration written as text ("15m"); None when absent. `fail(message)` makes the error."""
    if v is None:
        if required:
            raise fail(f'needs a {key}, e.g. {key} = "15m"')
        return None
    if not isinstance(v, str):
        raise fail(f'{key} must be a duration such as "15m", "1h", "24h", got {v!r}')
    try:
        d = parse_duration(v)
    except ValueError as e:
        raise fail(f"{key}: {e}") from None
    if d < timedelta(0) or (d == timedelta(0) and not zero):
        raise fail(f"{key} must be longer than 0, got {v!r}")
    if whole_seconds and d % timedelta(seconds=1):
        raise fail(f"{key} must be a whole number of seconds, got {v!r}")
    return d


def number(v: Any, key: str, fail: Callable[[str], Exception]) -> float | None:
    """A finite number (not a bool); None when absent."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise fail(f"{key} must be a number, got {v!r}")
    return float(v)


def plain(item: Any) -> Any:
    """A tomlkit value as plain Python (dict, list, str, ...)."""
    return item.unwrap() if hasattr(item, "unwrap") else item


# --- reading -------------------------------------------------------------------------------


def where(source: str, line: int | None) -> str:
    """The prefix of an error: `budgets.toml: line 12: ` (`budgets.toml: ` without a line)."""
    return f"{source}: line {line}: " if line else f"{source}: "


def load(text: str, source: str, error: type[ValueError]) -> TOMLDocument:
    """The TOML document of `text`; `error` naming the line when the text is not TOML."""
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as e:
        raise error(f"{where(source, e.line)}not valid TOML: {e}") from None
    except tomlkit.exceptions.KeyAlreadyPresent as e:  # says which key, not where
        m = re.search(r'Key "(.*)" already exists', str(e))
        line = duplicate_key_line(text, m.group(1)) if m else None
        raise error(f"{where(source, line)}not valid TOML: {e}") from None
    except (tomlkit.exceptions.TOMLKitError, RecursionError) as e:
        raise error(f"{source}: not valid TOML: {e or type(e).__name__}") from None


def array_of_tables(doc: Mapping[str, Any], key: str, error: type[ValueError]) -> list[Any]:
    """The tables of `[[key]]` (empty when absent); `error` when `key` is something else."""
    got = doc.get(key, [])
    if not isinstance(got, list):
        raise error(f"{key} must be written [[{key}]] (an array of tables)")
    return got


def table_lines(text: str, keys: Iterable[str]) -> dict[str, list[int]]:
    """For each key, the lines where a `[[key]]` or `[key]` header starts, in order."""
    out: dict[str, list[int]] = {k: [] for k in keys}
    for n, line in _outside_strings(text):
        m = _HEADER.match(line)
        if m and m.group(2) in out and len(m.group(1)) == len(m.group(3)):
            out[m.group(2)].append(n)
    return out


def nth_line(lines: Mapping[str, list[int]], key: str, i: int) -> int | None:
    """The line of the `i`-th `[[key]]` (None when it was not written as a header)."""
    got = lines.get(key, [])
    return got[i] if i < len(got) else None


def key_line(text: str, table_line: int | None, key: str) -> int | None:
    """The line where `key` is set in the table whose header is on `table_line` (None when not found)."""
    if table_line is None:
        return None
    for n, line in _outside_strings(text, start=table_line + 1):
        if _HEADER.match(line):
            return None
        m = _KEY.match(line)
        if m and next(g for g in m.groups() if g is not None) == key:
            return n
    return None


def duplicate_key_line(text: str, key: str) -> int | None:
    """The line where `key` is set a second time in one table (None when not found)."""
    seen: set[str] = set()
    for n, line in _outside_strings(text):
        if line.lstrip().startswith("["):
            seen = set()
            continue
        m = _KEY.match(line)
        if m:
            k = next(g for g in m.groups() if g is not None)
            if k == key and k in seen:
                return n
            seen.add(k)
    return None


def _outside_strings(text: str, start: int = 1) -> Iterable[tuple[int, str]]:
    """(number, line) of each line from `start` that does not begin inside a multi-line string
    (a template may hold lines that look like keys or headers)."""
    quote: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        begins_inside = quote is not None
        for m in re.finditer(r'"""|\'\'\'', line):
            if quote is None:
                quote = m.group(0)
            elif m.group(0) == quote:
                quote = None
        if n >= start and not begins_inside:
            yield n, line


# --- editing -------------------------------------------------------------------------------


def tables(doc: TOMLDocument, key: str) -> list[Table]:
    """The tables of array `key` in a document (empty when there is none)."""
    got = doc.get(key)
    return list(got) if isinstance(got, AoT) else []


def as_written(raw: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """The keys given (None: left out) as plain values, those in `order` first in that order,
    then any others (a kind's own keys) as given."""
    rank = {k: i for i, k in enumerate(order)}
    keys = sorted(raw, key=lambda k: rank.get(k, len(order)))
    return {k: plain(raw[k]) for k in keys if raw[k] is not None}


def value_item(value: Any) -> Any:
    """A TOML value that stays on one line: tables inline, lists as arrays."""
    if isinstance(value, Mapping):
        table = tomlkit.inline_table()
        table.update({k: value_item(v) for k, v in value.items()})
        return table
    if isinstance(value, list | tuple):
        array = tomlkit.array()
        array.extend(value_item(v) for v in value)
        return array
    return value


def fill(table: Table, values: Mapping[str, Any]) -> None:
    """Make `table` hold `values`: unchanged keys keep their formatting and comments, new
    keys go after the last key (before the blank lines and comments that end the table)."""
    for k in [k for k in table if k not in values]:
        del table[k]
    tail = _pop_tail(table)
    for k, v in values.items():
        if k in table and plain(table[k]) == v:
            continue
        table[k] = value_item(v)
    for item in tail:
        table.add(item)


def append_table(doc: TOMLDocument, key: str, values: Mapping[str, Any]) -> None:
    """A new table at the end of array `key`, a blank line after the one before it (whose
    closing comments now close the new one: they are usually about what follows)."""
    table = tomlkit.table()
    for k, v in values.items():
        table[k] = value_item(v)
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


def remove_table(doc: TOMLDocument, key: str, i: int) -> None:
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


class TomlFile(Generic[T]):
    """One hand-edited TOML file: `parse(text, source) -> T` raises `error` (a ValueError) for an
    invalid file; `empty` is what a missing file holds; `header` starts a file the first
    change creates."""

    def __init__(
        self, path: str | Path, parse: Callable[[str, str], T], empty: T, error: type[ValueError], header: str,
        what: str, load: Callable[[T], T] | None = None,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self._parse, self._error, self._header = parse, error, header
        finish = load or (lambda found: found)
        self._watched = WatchedFile(self.path, lambda p: finish(parse(self._text(p), str(p))), empty, what)

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def read_text(self) -> str:
        """The file's text ("" when missing); the file's error when it is not UTF-8."""
        try:
            return self._text(self.path)
        except FileNotFoundError:
            return ""

    def read(self) -> T:
        """The file as it is now (empty when missing); the file's error naming the line of a problem."""
        return self._parse(self.read_text(), str(self.path))

    def current(self) -> T:
        """The last good content, re-read when the file changed (passed through `load` when
        given); shared between callers: do not modify."""
        return self._watched.current()

    @property
    def error(self) -> str | None:
        """Why the file on disk does not parse (None when it does), as of the last `current()`."""
        return self._watched.error

    def change(self, edit: Callable[[TOMLDocument, T], R]) -> R:
        """Run `edit(document, parsed file)` under the writer lock; write the document back if
        the whole new file is valid (the file's error otherwise, the file untouched)."""
        with file_lock(self.lock_path):
            text = self.read_text()
            try:
                old = self._parse(text, str(self.path))
            except self._error as e:
                raise self._error(f"{e} (fix the file by hand first; nothing was changed)") from None
            doc = tomlkit.parse(text) if text.strip() else tomlkit.parse(self._header)
            try:
                result = edit(doc, old)
            except tomlkit.exceptions.ConvertError as e:  # e.g. a null inside a list
                raise self._error(f"refused, TOML cannot hold a value given: {e}") from None
            new_text = tomlkit.dumps(doc)
            try:
                self._parse(new_text, str(self.path))
            except (self._error, tomlkit.exceptions.TOMLKitError) as e:
                raise self._error(f"refused, the file would not be valid: {e}") from None
            mode = self.path.stat().st_mode & 0o777 if text else NEW_FILE_MODE
            write_atomically(self.path, new_text.encode("utf-8"), mode)
            return result

    def _text(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise self._error(f"{path}: not UTF-8 text") from None
