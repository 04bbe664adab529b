"""Gate rules on designed sides: the file's checks, each rule's three-way decision, the verdict
and its exit code, budgets as latency limits, the Markdown summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanlake.analytics.budgets.definition import parse as parse_budgets
from spanlake.experiments.gate import GateError, evaluate, load_rules, parse_rules
from spanlake.experiments.markdown import gate_markdown
from spanlake.experiments.sides import Item, Side


def side(name: str, successes: int, n: int, cost: float | list[float] = 1.0, ms: list[float] | None = None) -> Side:
    costs = cost if isinstance(cost, list) else [cost] * n
    durations = ms or [100.0] * n
    items = [
        Item(f"k{i}", i < successes, costs[i], durations[i], None if i < successes else "exact", output=f"o{i}")
        for i in range(n)
    ]
    return Side(name, items)


def verdict_of(rules: str, a: Side, b: Side, paired: bool = True, **kw: object) -> tuple[str, dict[str, str]]:
    result = evaluate(parse_rules(rules), a, b, paired=paired, **kw)  # type: ignore[arg-type]
    return result.verdict, {r.rule: r.verdict for r in result.rules}


def test_success_rate_three_ways() -> None:
    rule = "[success_rate]\nmax_drop_points = 2\n"
    # 90 % → 60 %: the whole interval is far below -2 points
    assert verdict_of(rule, side("a", 180, 200), side("b", 120, 200)) == (
        "fail",
        {"min_items": "pass", "success_rate": "fail"},
    )
    # 90 % → 89 %: the estimate (-1 point) is within 2 points
    assert verdict_of(rule, side("a", 180, 200), side("b", 178, 200))[0] == "pass"
    # ... but the interval reaches below -2 points, so strict cannot pass it
    strict = "[success_rate]\nmax_drop_points = 2\nstrict = true\n"
    assert verdict_of(strict, side("a", 180, 200), side("b", 178, 200))[0] == "not-enough-data"
    # 90 % → 80 % on 20 items: looks worse, 20 items cannot tell
    assert verdict_of(rule, side("a", 18, 20), side("b", 16, 20))[0] == "not-enough-data"


def test_cost_ratio_three_ways() -> None:
    rule = "[cost_per_task]\nmax_increase_pct = 10\n"
    assert verdict_of(rule, side("a", 100, 100, 1.0), side("b", 100, 100, 1.05))[0] == "pass"
    assert verdict_of(rule, side("a", 100, 100, 1.0), side("b", 100, 100, 1.2))[0] == "fail"
    spread = [0.3, 2.0] * 10  # mean 1.15: 15 % more, but 20 items vary too much to tell
    assert verdict_of(rule, side("a", 20, 20, 1.0), side("b", 20, 20, spread))[0] == "not-enough-data"
    per_success = "[cost_per_successful_task]\nmax_increase_pct = 10\n"
    # same cost per task, 100 → 50 successes: cost per successful task doubles
    assert verdict_of(per_success, side("a", 100, 100), side("b", 50, 100))[0] == "fail"


def test_latency_limits_absolute_relative_and_from_a_budget() -> None:
    a = side("a", 100, 100, ms=[float(i) for i in range(1, 101)])
    b = side("b", 100, 100, ms=[float(i) for i in range(1, 101)])
    # p95 of 1..100 ms, interpolated: position 99 x 0.95 = 94.05 → 95 + 0.05 x 1 = 95.05 ms
    result = evaluate(parse_rules("[p95_latency]\nmax_ms = 95\n"), a, b, paired=True)
    assert result.verdict == "fail" and result.rules[1].detail == "candidate 95 ms, max_ms 95 ms"
    assert result.comparison.b.p95_ms == pytest.approx(95.05)
    assert verdict_of("[p95_latency]\nmax_ms = 96\n", a, b)[0] == "pass"
    assert verdict_of("[p95_latency]\nmax_increase_pct = 0\n", a, b)[0] == "pass"  # ratio exactly 1
    budgets = parse_budgets(
        '[[budget]]\nname = "answer-p95"\nproject = "demo"\nmetric = "p95_latency"\nwindow = "15m"\n'
        "warning = 90\ncritical = 96\n"
        '[[budget]]\nname = "rel"\nproject = "demo"\nmetric = "p95_latency"\nwindow = "15m"\ncritical = 20\n'
        'baseline = "7d ago"\n'
    )
    assert verdict_of('[p95_latency]\nbudget = "demo/answer-p95"\n', a, b, budgets=budgets)[0] == "pass"
    with pytest.raises(GateError, match="relative to a baseline"):
        evaluate(parse_rules('[p95_latency]\nbudget = "rel"\n'), a, b, paired=True, budgets=budgets)
    with pytest.raises(GateError, match=r"'nosuch' is not in budgets\.toml"):
        evaluate(parse_rules('[p95_latency]\nbudget = "nosuch"\n'), a, b, paired=True, budgets=budgets)


def test_critical_regressions_only_when_paired() -> None:
    a = side("a", 10, 10)
    items = list(side("b", 10, 10).items)
    items[3] = Item("k3", False, 1.0, 100.0, "hallucination", output="made up")
    items[4] = Item("k4", False, 1.0, 100.0, "exact", output="wrong")
    b = Side("b", items)
    rule = '[no_critical_regressions]\nmodes = ["hallucination"]\n'
    result = evaluate(parse_rules(rule), a, b, paired=True)
    assert result.verdict == "fail" and result.exit_code == 1
    assert [d.key for d in result.rules[1].items] == ["k3"]
    assert verdict_of('[no_critical_regressions]\nmodes = ["timeout"]\n', a, b)[0] == "pass"
    assert verdict_of('[no_critical_regressions]\nmodes = ["*"]\n', a, b)[0] == "fail"
    # production sides are not paired: the rule does not apply
    prod_a = Side("v1", [Item(None, i.success, i.cost_usd, i.duration_ms) for i in a.items])
    prod_b = Side("v2", [Item(None, i.success, i.cost_usd, i.duration_ms, i.failure_mode) for i in b.items])
    assert verdict_of(rule, prod_a, prod_b, paired=False) == (
        "pass",
        {"min_items": "pass", "no_critical_regressions": "n/a"},
    )


def test_min_items_and_exit_codes() -> None:
    result = evaluate(
        parse_rules("min_items = 30\n[success_rate]\nmax_drop_points = 50\n"),
        side("a", 9, 10),
        side("b", 9, 10),
        paired=True,
    )
    assert (result.verdict, result.exit_code) == ("not-enough-data", 2)
    assert result.rules[0].detail == "10 / 10 items in common (at least 30 needed)"
    ok = evaluate(
        parse_rules("min_items = 10\n[success_rate]\nmax_drop_points = 50\n"),
        side("a", 9, 10),
        side("b", 9, 10),
        paired=True,
    )
    assert (ok.verdict, ok.exit_code) == ("pass", 0)
    empty = evaluate(parse_rules("[success_rate]\n"), side("a", 0, 0), side("b", 0, 0), paired=True)
    assert empty.verdict == "not-enough-data"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[latency]\nmax_ms = 1\n", "unknown rule 'latency'"),
        ("[success_rate]\nmax_drop = 2\n", "[success_rate] has no setting 'max_drop'"),
        ("[success_rate]\nmax_drop_points = -1\n", "max_drop_points must be between 0 and 100"),
        ("[cost_per_task]\n", "[cost_per_task] needs max_increase_pct"),
        ("[p95_latency]\nstrict = true\n", "needs max_increase_pct, max_ms or budget"),
        ("[p95_latency]\nmax_ms = \"fast\"\n", "max_ms must be a number"),
        ("[no_critical_regressions]\nmodes = []\n", "modes must be a list of failure modes"),
        ("confidence = 2\n[success_rate]\n", "confidence must be between 0.5 and 0.999"),
        ("min_items = 0\n[success_rate]\n", "min_items must be a whole number of at least 1"),
        ("success_rate = 2\n", "[success_rate] must be a table of settings"),
        ("min_items = 3\n", "no rules"),
        ("[success_rate\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_rules_files(text: str, message: str) -> None:
    with pytest.raises(GateError) as e:
        parse_rules(text, "gate.toml")
    assert message in str(e.value) and str(e.value).startswith("gate.toml: ")


def test_load_rules_reads_the_file(tmp_path: Path) -> None:
    p = tmp_path / "gate.toml"
    p.write_text("confidence = 0.9\nmin_items = 5\n[success_rate]\nmax_drop_points = 2\n")
    rules = load_rules(p)
    assert (rules.confidence, rules.min_items, [r.name for r in rules.rules]) == (0.9, 5, ["success_rate"])
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(GateError, match="not UTF-8"):
        load_rules(p)


def test_markdown_summary() -> None:
    a = side("base", 10, 10, 0.2)
    items = list(side("cand", 10, 10, 0.1).items)
    items[2] = Item("k2", False, 0.1, 100.0, "hallucination", output="It | is\n60 days")
    rules = '[success_rate]\nmax_drop_points = 20\n[no_critical_regressions]\nmodes = ["hallucination"]\n'
    result = evaluate(parse_rules(rules), a, Side("cand", items), paired=True)
    md = gate_markdown(result, lambda side, item: f"http://dash/trace?trace={side}-{item.key}")
    assert md.startswith("# ❌ Release gate: fail\n")
    assert "| `success_rate` | ✅ pass | b - a = -10.0 pts [" in md
    assert (
        "| `no_critical_regressions` | ❌ fail | 1 item(s) passed in the baseline and fail with a critical mode "
        "(hallucination): k2 |" in md
    )
    assert (
        "| `k2` | o2 | It \\| is<br>60 days | hallucination "
        "| [A](http://dash/trace?trace=base-k2) [B](http://dash/trace?trace=cand-k2) |" in md
    )
    assert "| cost per task | $0.2 | $0.1 | -50.0 % [-50.0 %, -50.0 %] |" in md
