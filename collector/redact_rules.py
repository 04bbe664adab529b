"""Redaction rules: the builtin detectors and the TOML rule-file parser (pure, no I/O).

A rule turns text into text. Builtins (`email`, `api_key`, `card_number`) replace what they
find with `[REDACTED:<name>]`; a custom pattern replaces each match of its regex with its
`replacement` (taken literally) or `[REDACTED:<name>]`. docs/security.md lists exactly what
each builtin matches. Every builtin runs in time linear in the text (no nested unbounded
repetition, a cheap pre-check before the regex), so a megabyte prompt cannot stall ingest.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spanlake.storage.layout import valid_project

ALL = "*"  # the section used by projects without their own

# --- email --------------------------------------------------------------------------------
# RFC 5322 dot-atom local part, then a dotted host name whose last label is letters (or an
# IDN `xn--` label). Found from each `@` (str.find, C speed): the host name is matched
# forwards, the local part is the run of local-part characters just before the `@`. Each
# character is looked at a bounded number of times, so the cost is linear in the text.
LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.!#$%&'*+/=?^_`{|}~-")
_HOST = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:xn--[A-Za-z0-9-]+|[A-Za-z]{2,})", re.ASCII)


def redact_emails(text: str, tag: str) -> str:
    """Replace every email address in `text` with `tag`."""
    at = text.find("@")
    if at < 0:
        return text
    out, pos = [], 0
    while at >= 0:
        host = _HOST.match(text, at + 1)
        start = at
        if host is not None:
            while start > pos and text[start - 1] in LOCAL_CHARS:
                start -= 1
        if host is None or start == at:
            at = text.find("@", at + 1)
            continue
        out += (text[pos:start], tag)
        pos = host.end()
        at = text.find("@", pos)
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


# --- API keys -----------------------------------------------------------------------------
# Well-known token formats (each starts at a word boundary), and any `Bearer <token>`. The
# full pattern only runs on text containing one of the literal prefixes (_API_KEY_HINT, a
# fast scan), since a pattern starting with \b cannot use the regex engine's prefix search.
API_KEY_RE = re.compile(
    r"\b(?:"
    r"sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe secret and restricted keys
    r"|A[KS]IA[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|slk_[A-Za-z0-9_-]{20,}"  # spanlake's own keys
    r")"
    r"|\b(?P<scheme>(?:[Bb]earer|BEARER)\s+)[A-Za-z0-9._~+/-]{16,}=*",
    re.ASCII,
)
_API_KEY_HINT = re.compile(r"sk-|k_live_|k_test_|A[KS]IA|gh[pousr]_|github_pat_|glpat-|xox|AIza|hf_|slk_|earer|EARER")


# --- card numbers -------------------------------------------------------------------------
# A run of ASCII digits in groups joined by single spaces or hyphens. Candidates are one
# group of 13-19 digits, or consecutive groups laid out like a card (first group 4 digits,
# middle groups 4-6, last 1-6, 13-19 digits in all); a candidate passing the Luhn check is
# replaced. Checking every candidate (not only the longest run) means neighbouring numbers,
# such as "call 555 1234 4111 1111 1111 1111", cannot hide a card.
_CARD_HINT = re.compile(r"[0-9](?:[0-9]{3}[ -][0-9]{4}|[0-9]{12})")  # no card without one (fast scan)
_DIGIT_RUN = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
CARD_MIN, CARD_MAX = 13, 19


_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # digit d doubled, digits summed


@functools.lru_cache(maxsize=4096)
def _luhn_parts(group: str) -> tuple[int, int]:
    """Luhn sums of a digit group when its last digit is not doubled (0) or doubled (1)."""
    s0 = s1 = 0
    for r, ch in enumerate(reversed(group)):
        d = ord(ch) - 48
        if r & 1:
            s0, s1 = s0 + _DOUBLED[d], s1 + d
        else:
            s0, s1 = s0 + d, s1 + _DOUBLED[d]
    return s0, s1


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits."""
    return _luhn_parts(digits)[0] % 10 == 0


def _window_ok(groups: list[str], i: int, j: int) -> bool:
    """Luhn over groups[i..j] joined, from per-group sums (no string building)."""
    total, parity = 0, 0
    for k in range(j, i - 1, -1):
        total += _luhn_parts(groups[k])[parity]
        parity ^= len(groups[k]) & 1
    return total % 10 == 0


def _card_spans(run: str) -> list[tuple[int, int]]:
    """(start, end) within `run` (digit groups joined by single separators) of every card
    candidate that passes the Luhn check."""
    groups = re.split(r"[ -]", run)
    lens = [len(g) for g in groups]
    starts = [0] * len(groups)
    for k in range(1, len(groups)):
        starts[k] = starts[k - 1] + lens[k - 1] + 1
    found = []
    for i, n in enumerate(lens):
        if CARD_MIN <= n <= CARD_MAX and luhn_ok(groups[i]):
            found.append((starts[i], starts[i] + n))  # one unbroken number
        if n != 4:
            continue  # a grouped layout starts with 4 digits
        total = n
        for j in range(i + 1, len(groups)):
            total += lens[j]
            if lens[j] > 6 or total > CARD_MAX:
                break
            if total >= CARD_MIN and _window_ok(groups, i, j):
                found.append((starts[i], starts[j] + lens[j]))
            if lens[j] < 4:
                break  # only the last group may be shorter than 4 digits
    return found


def redact_cards(text: str, tag: str) -> str:
    """Replace every Luhn-valid card number in `text` with `tag`."""
    if not _CARD_HINT.search(text):
        return text
    out, pos = [], 0
    for run in _DIGIT_RUN.finditer(text):
        if not _CARD_HINT.search(run.group(0)):
            continue
        spans = _card_spans(run.group(0))
        if not spans:
            continue
        spans.sort()
        merged = [list(spans[0])]
        for s, e in spans[1:]:
            if s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        base = run.start()
        for s, e in merged:
            out.append(text[pos : base + s])
            out.append(tag)
            pos = base + e
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True)
class Rule:
    """One substitution: `apply(text)` returns the text with this rule's matches replaced."""

    name: str
    apply: Callable[[str], str]
    builtin: bool = False


def _email(tag: str) -> Callable[[str], str]:
    return lambda s: redact_emails(s, tag)


def _api_key(tag: str) -> Callable[[str], str]:
    def sub(m: re.Match[str]) -> str:
        return (m.group("scheme") or "") + tag

    return lambda s: API_KEY_RE.sub(sub, s) if _API_KEY_HINT.search(s) else s


def _card(tag: str) -> Callable[[str], str]:
    return lambda s: redact_cards(s, tag)


BUILTINS: dict[str, Callable[[str], Callable[[str], str]]] = {
    "email": _email,
    "api_key": _api_key,
    "card_number": _card,
}


def builtin_rule(name: str) -> Rule:
    """A builtin rule by name; ValueError when there is none."""
    if name not in BUILTINS:
        raise ValueError(f"unknown builtin rule {name!r} (known: {', '.join(sorted(BUILTINS))})")
    return Rule(name, BUILTINS[name](f"[REDACTED:{name}]"), builtin=True)


def pattern_rule(name: str, regex: str, replacement: str | None = None) -> Rule:
    """A custom pattern; ValueError when the regex does not compile or matches empty text."""
    try:
        compiled = re.compile(regex)
    except re.error as e:
        raise ValueError(f"invalid regex: {e}") from None
    if compiled.fullmatch(""):
        raise ValueError(f"regex {regex!r} matches the empty string")
    repl = f"[REDACTED:{name}]" if replacement is None else replacement

    def sub(m: re.Match[str]) -> str:
        return repl if m.end() > m.start() else ""  # an empty match (lookarounds) inserts nothing

    return Rule(name, lambda s: compiled.sub(sub, s))


@dataclass(frozen=True)
class RuleSet:
    """Rules per project; a project without its own section uses the `"*"` section."""

    projects: dict[str, tuple[Rule, ...]]
    _compiled: dict[str, Callable[[str], str] | None] = field(default_factory=dict, compare=False, repr=False)

    def for_project(self, project: str) -> tuple[Rule, ...]:
        rules = self.projects.get(project)
        return self.projects.get(ALL, ()) if rules is None else rules

    def text_redactor(self, project: str) -> Callable[[str], str] | None:
        """One function applying the project's rules to a string; None when it has none."""
        try:
            return self._compiled[project]
        except KeyError:
            fn = self._compiled[project] = compile_rules(self.for_project(project))
            return fn

    def redact(self, text: str, project: str) -> str:
        fn = self.text_redactor(project)
        return text if fn is None else fn(text)

    def __bool__(self) -> bool:
        return any(self.projects.values())


EMPTY = RuleSet({})


def compile_rules(rules: tuple[Rule, ...]) -> Callable[[str], str] | None:
    """The rules as one function (fewer Python calls per string than a loop over rules)."""
    if not rules:
        return None
    if len(rules) == 1:
        return rules[0].apply
    fns = tuple(r.apply for r in rules)

    def run(text: str) -> str:
        for fn in fns:
            text = fn(text)
        return text

    return run


def apply_rules(text: str, rules: tuple[Rule, ...]) -> str:
    fn = compile_rules(rules)
    return text if fn is None else fn(text)


def _key(project: str) -> str:
    """How a project section is written in TOML, for messages: projects.alpha, projects."*"."""
    return f"projects.{project}" if re.fullmatch(r"[A-Za-z0-9_-]+", project) else f'projects."{project}"'


def _pattern(spec: Any, where: str) -> Rule:
    if not isinstance(spec, dict):
        raise ValueError(f'{where} must be a table like {{ name = "order", regex = "ORD-[0-9]+" }}')
    unknown = sorted(set(spec) - {"name", "regex", "replacement"})
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: `name` must be a non-empty string")
    where = f"{where} ({name!r})"
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected name, regex, replacement)")
    regex, replacement = spec.get("regex"), spec.get("replacement")
    if not isinstance(regex, str):
        raise ValueError(f"{where}: `regex` must be a string")
    if replacement is not None and not isinstance(replacement, str):
        raise ValueError(f"{where}: `replacement` must be a string")
    try:
        return pattern_rule(name, regex, replacement)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _section(project: str, section: Any) -> tuple[Rule, ...]:
    where = _key(project)
    if project != ALL and not valid_project(project):
        raise ValueError(f"{where}: not a project name (letters, digits, '_', '.', '-'; at most 64) nor \"*\"")
    if not isinstance(section, dict):
        raise ValueError(f"{where} must be a table ([{where}])")
    unknown = sorted(set(section) - {"builtin", "patterns"})
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (expected builtin, patterns)")
    names = section.get("builtin", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f'{where}.builtin must be a list of rule names, e.g. ["email", "card_number"]')
    for n in names:
        if n not in BUILTINS:
            raise ValueError(f"{where}.builtin: unknown rule {n!r} (known: {', '.join(sorted(BUILTINS))})")
        if names.count(n) > 1:
            raise ValueError(f"{where}.builtin: {n!r} is listed twice")
    patterns = section.get("patterns", [])
    if not isinstance(patterns, list):
        raise ValueError(f"{where}.patterns must be a list of tables ([[{where}.patterns]])")
    # Builtins in a fixed order (a card inside an email address is then one email), then patterns.
    rules = [builtin_rule(n) for n in BUILTINS if n in names]
    rules += [_pattern(p, f"{where}.patterns[{i}]") for i, p in enumerate(patterns)]
    return tuple(rules)


def parse_rules(text: str) -> RuleSet:
    """The rules of one rule file; ValueError naming the exact problem and where it is."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"not valid TOML: {e}") from None
    unknown = sorted(set(doc) - {"projects"})
    if unknown:
        raise ValueError(f"unknown top-level key {unknown[0]!r}: rules go in [projects.<name>] sections")
    projects = doc.get("projects", {})
    if not isinstance(projects, dict):
        raise ValueError('`projects` must be a table of sections: [projects."*"], [projects.<name>]')
    return RuleSet({project: _section(project, section) for project, section in projects.items()})
