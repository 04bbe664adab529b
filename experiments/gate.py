"""The release gate: rules (a TOML file) evaluated on a baseline and a candidate side.

    confidence = 0.95                 # for every rule's interval (a rule may set its own)
    min_items = 30                    # fewer items on a side (paired: in common): not enough data

    [success_rate]
    max_drop_points = 2               # b - a may be down to -2 percentage points

    [cost_per_task]                   # total cost / items
    max_increase_pct = 10
    [cost_per_successful_task]        # total cost / successful items
    max_increase_pct = 10

    [p95_latency]                     # also [p50_latency]; any of:
    max_increase_pct = 20             #   b / a at most 1.2
    max_ms = 3000                     #   the candidate's p95 at most 3 s
    budget = "demo/answer-p95"        #   a p95_latency budget of <data-dir>/budgets.toml (its critical,
                                      #   else warning, threshold), as `max_ms`

    [no_critical_regressions]         # paired sides only (offline)
    modes = ["timeout", "error", "hallucination"]   # "*": any failure mode

Each relative rule reads the interval of its delta (experiments.compare) at the rule's confidence:

- fail: the whole interval lies beyond the threshold (the data show the candidate is worse);
- pass: the estimate is within the threshold (`strict = true`: the whole interval is);
- not enough data: otherwise (the estimate is beyond but the interval reaches back, or with
  `strict`, the interval reaches beyond): more items are needed to tell.

An absolute latency limit compares the candidate's estimate with the limit. The verdict:
not enough data when `min_items` is not met, else fail when any rule fails, else not enough
data when any rule cannot tell, else pass. Exit codes: 0 pass, 1 fail, 2 not enough data.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from spanlake.analytics.budgets.budgets_file import BudgetsFile
from spanlake.analytics.budgets.definition import BudgetError, BudgetSet
from spanlake.experiments.compare import Comparison, Delta, ItemDiff, compare_sides
from spanlake.experiments.sides import Side

Verdict = Literal["pass", "fail", "not-enough-data"]
RuleVerdict = Literal["pass", "fail", "not-enough-data", "n/a"]
EXIT_CODES: dict[str, int] = {"pass": 0, "fail": 1, "not-enough-data": 2}
RELATIVE = ("success_rate", "cost_per_task", "cost_per_successful_task", "p50_latency", "p95_latency")
RULES = (*RELATIVE, "no_critical_regressions")
_KEYS: dict[str, set[str]] = {
    "success_rate": {"max_drop_points", "confidence", "strict"},
    "cost_per_task": {"max_increase_pct", "confidence", "strict"},
    "cost_per_successful_task": {"max_increase_pct", "confidence", "strict"},
    "p50_latency": {"max_increase_pct", "max_ms", "budget", "confidence", "strict"},
    "p95_latency": {"max_increase_pct", "max_ms", "budget", "confidence", "strict"},
    "no_critical_regressions": {"modes"},
}
MAX_RULES_BYTES = 1_000_000


class GateError(ValueError):
    """A rules file that cannot be used (the message says where and why)."""


@dataclass(frozen=True)
class Rule:
    name: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class GateRules:
    """A parsed rules file."""

    rules: tuple[Rule, ...]
    confidence: float = 0.95
    min_items: int = 1
    source: str = "gate.toml"


def _number(source: str, where: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise GateError(f"{source}: {where} must be a number, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise GateError(f"{source}: {where} must be {bound}, not {value!r}")
    return float(value)


def _confidence(source: str, where: str, value: Any) -> float:
    c = _number(source, where, value, 0.5, 0.999)
    return c


def parse_rules(text: str, source: str = "gate.toml") -> GateRules:
    """Parse a rules file; GateError naming the first problem (unknown rule or key, bad value)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise GateError(f"{source}: not valid TOML: {e}") from None
    confidence = _confidence(source, "confidence", doc.pop("confidence", 0.95))
    min_items = doc.pop("min_items", 1)
    if isinstance(min_items, bool) or not isinstance(min_items, int) or min_items < 1:
        raise GateError(f"{source}: min_items must be a whole number of at least 1, not {min_items!r}")
    rules = []
    for name, params in doc.items():
        if name not in _KEYS:
            known = ", ".join(["confidence", "min_items", *RULES])
            raise GateError(f"{source}: unknown rule {name!r} (rules: {known})")
        if not isinstance(params, dict):
            raise GateError(f"{source}: [{name}] must be a table of settings, e.g. [{name}] followed by key = value")
        unknown = sorted(set(params) - _KEYS[name])
        if unknown:
            raise GateError(
                f"{source}: [{name}] has no setting {unknown[0]!r} (it takes {', '.join(sorted(_KEYS[name]))})"
            )
        rules.append(Rule(name, _check_params(source, name, params)))
    if not rules:
        raise GateError(f"{source}: no rules (add e.g. [success_rate] max_drop_points = 2)")
    return GateRules(tuple(rules), confidence, min_items, source)


def _check_params(source: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    if "confidence" in out:
        out["confidence"] = _confidence(source, f"[{name}] confidence", out["confidence"])
    if "strict" in out and not isinstance(out["strict"], bool):
        raise GateError(f"{source}: [{name}] strict must be true or false")
    if name == "success_rate":
        drop = out.get("max_drop_points", 0)
        out["max_drop_points"] = _number(source, "[success_rate] max_drop_points", drop, 0, 100)
    elif name in ("cost_per_task", "cost_per_successful_task"):
        if "max_increase_pct" not in out:
            raise GateError(f"{source}: [{name}] needs max_increase_pct (e.g. 10 for at most 10 % higher)")
        out["max_increase_pct"] = _number(source, f"[{name}] max_increase_pct", out["max_increase_pct"], -100)
    elif name in ("p50_latency", "p95_latency"):
        if not {"max_increase_pct", "max_ms", "budget"} & set(out):
            raise GateError(f"{source}: [{name}] needs max_increase_pct, max_ms or budget")
        if "max_increase_pct" in out:
            out["max_increase_pct"] = _number(source, f"[{name}] max_increase_pct", out["max_increase_pct"], -100)
        if "max_ms" in out:
            out["max_ms"] = _number(source, f"[{name}] max_ms", out["max_ms"], 0)
        if "budget" in out and (not isinstance(out["budget"], str) or not out["budget"]):
            raise GateError(f"{source}: [{name}] budget must be a budget's name (or project/name)")
    elif name == "no_critical_regressions":
        modes = out.get("modes")
        if not isinstance(modes, list) or not modes or not all(isinstance(m, str) and m for m in modes):
            raise GateError(f'{source}: [no_critical_regressions] modes must be a list of failure modes (or ["*"])')
    return out


def load_rules(path: str | Path) -> GateRules:
    """Read and parse a rules file; GateError when it is missing or invalid."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_RULES_BYTES:
            raise GateError(f"{p}: larger than {MAX_RULES_BYTES} bytes")
        text = p.read_text()
    except OSError as e:
        raise GateError(f"cannot read rules file {p}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise GateError(f"{p}: not UTF-8 text") from None
    return parse_rules(text, str(p))


def load_budgets(data_dir: str | Path) -> BudgetSet | None:
    """The budgets `budget = ...` rules read (`<data-dir>/budgets.toml`); None when there is no
    such file, GateError when it cannot be used."""
    try:
        return BudgetsFile(Path(data_dir)).read()
    except FileNotFoundError:
        return None
    except (BudgetError, OSError) as e:
        raise GateError(f"budgets.toml: {e}") from None


@dataclass
class RuleResult:
    """One rule's verdict and the line that explains it."""

    rule: str
    verdict: RuleVerdict
    detail: str
    items: list[ItemDiff] = field(default_factory=list)  # no_critical_regressions: the offending items


@dataclass
class GateResult:
    """The verdict, every rule's line, and the comparison (at the gate's confidence) behind them."""

    verdict: Verdict
    rules: list[RuleResult]
    comparison: Comparison
    min_items: int

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def _pct(x: float) -> str:
    return f"{x * 100:+.1f} %"


def _judge(d: Delta, worse_beyond: float, higher_is_worse: bool, strict: bool) -> tuple[RuleVerdict, str]:
    """The three-way decision of the module docstring for one delta and threshold."""
    if d.estimate is None:
        return "not-enough-data", d.note or "cannot be computed"

    def beyond(x: float) -> bool:
        return x > worse_beyond if higher_is_worse else x < worse_beyond

    low, high = d.low, d.high
    whole_beyond = low is not None and high is not None and beyond(low) and beyond(high)
    whole_within = low is not None and high is not None and not beyond(low) and not beyond(high)
    if whole_beyond:
        return "fail", "the whole interval is beyond the limit"
    if strict:
        return (
            ("pass", "the whole interval is within the limit")
            if whole_within
            else (
                "not-enough-data",
                "the interval reaches beyond the limit (strict): more items are needed",
            )
        )
    if beyond(d.estimate):
        return "not-enough-data", "the estimate is beyond the limit but the interval reaches back: more items needed"
    return "pass", "the estimate is within the limit"


def _interval(d: Delta, fmt: Any) -> str:
    if d.estimate is None:
        return "n/a"
    if d.low is None or d.high is None:
        return fmt(d.estimate)
    return f"{fmt(d.estimate)} [{fmt(d.low)}, {fmt(d.high)}]"


def _worst(verdicts: list[RuleVerdict]) -> RuleVerdict:
    for v in ("fail", "not-enough-data", "pass"):
        if v in verdicts:
            return v  # type: ignore[return-value]
    return "n/a"


def _budget_ms(budgets: BudgetSet | None, ref: str, metric: str) -> float:
    if budgets is None:
        raise GateError(f"budget {ref!r}: no budgets file was read (pass --data-dir)")
    project, _, name = ref.rpartition("/")
    found = [b for b in budgets.budgets if b.name == name and (not project or b.project == project)]
    if not found:
        raise GateError(f"budget {ref!r} is not in budgets.toml")
    if len(found) > 1:
        raise GateError(f"budget {ref!r} is in several projects: write project/name")
    b = found[0]
    if b.metric != metric:
        raise GateError(f"budget {ref!r} measures {b.metric}, not {metric}")
    if b.baseline is not None:
        raise GateError(f"budget {ref!r} is relative to a baseline; use max_increase_pct instead")
    limit = b.critical if b.critical is not None else b.warning
    if limit is None:  # pragma: no cover - a budget always has one (definition.py)
        raise GateError(f"budget {ref!r} has no threshold")
    return float(limit)


def _relative(rule: Rule, rules: GateRules, side_a: Side, side_b: Side, paired: bool, seed: int) -> Comparison:
    conf = rule.params.get("confidence", rules.confidence)
    return compare_sides(side_a, side_b, paired=paired, confidence=conf, seed=seed)


def evaluate(
    rules: GateRules,
    a: Side,
    b: Side,
    *,
    paired: bool,
    budgets: BudgetSet | None = None,
    seed: int = 0,
) -> GateResult:
    """Evaluate every rule on baseline `a` and candidate `b` (paired: the same dataset items)."""
    base = compare_sides(a, b, paired=paired, confidence=rules.confidence, seed=seed)
    results: list[RuleResult] = []
    n_a, n_b = base.a.items, base.b.items
    enough = min(n_a, n_b) >= rules.min_items
    what = "items in common" if paired else "items"
    detail = f"{n_a} / {n_b} {what} (at least {rules.min_items} needed)"
    results.append(RuleResult("min_items", "pass" if enough else "not-enough-data", detail))
    for rule in rules.rules:
        c = base if "confidence" not in rule.params else _relative(rule, rules, a, b, paired, seed)
        strict = bool(rule.params.get("strict", False))
        conf = f"{c.confidence:.0%}"
        if rule.name == "success_rate":
            margin = rule.params["max_drop_points"] / 100
            d = c.deltas["success_rate"]
            verdict, why = _judge(d, -margin, higher_is_worse=False, strict=strict)
            shown = _interval(d, lambda x: f"{x * 100:+.1f} pts")
            line = f"b - a = {shown} at {conf}; may drop {margin * 100:g} pts: {why}"
            results.append(RuleResult(rule.name, verdict, line))
        elif rule.name in ("cost_per_task", "cost_per_successful_task") or rule.name.endswith("_latency"):
            results.append(_ratio_rule(rule, c, strict, conf, budgets))
        elif rule.name == "no_critical_regressions":
            results.append(_regressions(rule, c))
    verdicts = [r.verdict for r in results if r.rule != "min_items"]
    if not enough:
        verdict: Verdict = "not-enough-data"
    elif "fail" in verdicts:
        verdict = "fail"
    elif "not-enough-data" in verdicts:
        verdict = "not-enough-data"
    else:
        verdict = "pass"
    return GateResult(verdict, results, base, rules.min_items)


def _ratio_rule(rule: Rule, c: Comparison, strict: bool, conf: str, budgets: BudgetSet | None) -> RuleResult:
    d = c.deltas[rule.name]
    parts: list[tuple[RuleVerdict, str]] = []
    if "max_increase_pct" in rule.params:
        limit = 1 + rule.params["max_increase_pct"] / 100
        verdict, why = _judge(d, limit, higher_is_worse=True, strict=strict)
        shown = _interval(d, lambda x: _pct(x - 1))
        parts.append((verdict, f"b / a = {shown} at {conf}; at most {_pct(limit - 1)}: {why}"))
    if rule.name.endswith("_latency"):
        figure = c.b.p50_ms if rule.name == "p50_latency" else c.b.p95_ms
        limits = []
        if "max_ms" in rule.params:
            limits.append((rule.params["max_ms"], "max_ms"))
        if "budget" in rule.params:
            limits.append((_budget_ms(budgets, rule.params["budget"], rule.name), f"budget {rule.params['budget']}"))
        for limit_ms, label in limits:
            if figure is None:
                parts.append(("not-enough-data", f"the candidate has no durations ({label})"))
            else:
                ok = figure <= limit_ms
                verdict_abs: RuleVerdict = "pass" if ok else "fail"
                parts.append((verdict_abs, f"candidate {figure:.0f} ms, {label} {limit_ms:g} ms"))
    return RuleResult(rule.name, _worst([v for v, _ in parts]), "; ".join(t for _, t in parts))


def _regressions(rule: Rule, c: Comparison) -> RuleResult:
    if not c.paired:
        return RuleResult(rule.name, "n/a", "production tasks are not paired item by item")
    modes = set(rule.params["modes"])
    bad = [d for d in c.regressed if "*" in modes or (d.b.failure_mode or "") in modes]
    listed = ", ".join(sorted(modes))
    if bad:
        keys = ", ".join(d.key for d in bad[:5]) + (" …" if len(bad) > 5 else "")
        detail = f"{len(bad)} item(s) passed in the baseline and fail with a critical mode ({listed}): {keys}"
        return RuleResult(rule.name, "fail", detail, bad)
    return RuleResult(rule.name, "pass", f"{len(c.regressed)} regressed item(s), none with a critical mode ({listed})")
