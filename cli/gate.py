"""`spanlake gate`: the release gate over two experiments, or over live traffic split in two.

Exit 0 pass, 1 fail, 2 not enough data or bad input (an unknown rule, a missing experiment);
see docs/experiments.md.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from spanlake.analytics.reports.compare import BY
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.cli.experiment import SUMMARY_ENV, data_dir_option, experiment_sides
from spanlake.cli.lake import lake_dir, lake_option
from spanlake.cli.options import Refused
from spanlake.cli.times import parse_time
from spanlake.experiments import markdown, offline
from spanlake.experiments.compare import comparison_dict
from spanlake.experiments.gate import GateError, GateResult, evaluate, load_budgets, load_rules
from spanlake.experiments.production import production_sides
from spanlake.experiments.sides import Side
from spanlake.experiments.store import Store
from spanlake.storage.layout import DEFAULT_PROJECT
from spanlake.storage.reader import Lake


def _production_sides(
    data_dir: Path, lake: str | None, project: str, by: str, a: str, b: str, since: str, until: str | None
) -> tuple[Side, Side]:
    now = datetime.now(UTC)
    filters = Filters(since=parse_time(since, now), until=parse_time(until, now) or now, project=project)
    an = Analytics(Lake(lake_dir(data_dir, lake)))
    try:
        return production_sides(an, filters, by, a, b)
    except ValueError as e:
        raise Refused(str(e)) from None


@click.command("gate", context_settings={"max_content_width": 110})
@click.option("--baseline", default=None, metavar="ID", help="The baseline experiment (what ships now).")
@click.option("--candidate", default=None, metavar="ID", help="The candidate experiment.")
@click.option(
    "--rules",
    "rules_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The gate's rules (TOML; docs/experiments.md).",
)
@click.option("--production", is_flag=True, help="Compare live traffic from the lake instead of experiments.")
@click.option(
    "--by", type=click.Choice(BY), default="prompt_version", show_default=True, help="--production: split by."
)
@click.option("--a", "a_value", default=None, help="--production: the baseline's value (e.g. v1).")
@click.option("--b", "b_value", default=None, help="--production: the candidate's value (e.g. v2).")
@click.option("--since", default="24h", show_default=True, help="--production: tasks since (24h, 7d, ISO time).")
@click.option("--until", default=None, help="--production: ... and before (default now).")
@click.option(
    "--project", default=DEFAULT_PROJECT, show_default=True, envvar="SPANLAKE_PROJECT", help="--production: project."
)
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True)
@click.option(
    "--summary-file",
    default=None,
    envvar=SUMMARY_ENV,
    show_envvar=True,
    help="Also append the Markdown summary here (GitHub Actions sets $GITHUB_STEP_SUMMARY).",
)
@data_dir_option
@lake_option
@click.pass_context
def gate(
    ctx: click.Context,
    baseline: str | None,
    candidate: str | None,
    rules_path: Path,
    production: bool,
    by: str,
    a_value: str | None,
    b_value: str | None,
    since: str,
    until: str | None,
    project: str,
    fmt: str,
    summary_file: str | None,
    data_dir: Path,
    lake: str | None,
) -> None:
    """Release gate: does the candidate hold up against the baseline? Exit 0 pass, 1 fail,
    2 not enough data (or an error).

    \b
    Rules (gate.toml), e.g.:
      min_items = 30
      [success_rate]
      max_drop_points = 2            # at 95 % confidence (confidence = 0.95 at the top to change)
      [cost_per_successful_task]
      max_increase_pct = 10
      [p95_latency]
      max_ms = 3000                  # or max_increase_pct = 20, or budget = "demo/answer-p95"
      [no_critical_regressions]
      modes = ["timeout", "error", "hallucination"]

    \b
    Examples:
      spanlake gate --baseline exp-20261205-153012-ab12 --candidate exp-20261205-154501-9f3c --rules gate.toml
      spanlake gate --production --by prompt_version --a v1 --b v2 --since 24h --project demo --rules gate.toml
    """
    try:
        rules = load_rules(rules_path)
    except GateError as e:
        raise Refused(str(e)) from None
    link = None
    if production:
        if baseline or candidate:
            raise click.UsageError("--production compares live traffic: drop --baseline/--candidate")
        if not a_value or not b_value:
            raise click.UsageError("--production needs --a and --b (e.g. --by prompt_version --a v1 --b v2)")
        sa, sb = _production_sides(data_dir, lake, project, by, a_value, b_value, since, until)
        paired = False
    else:
        if not baseline or not candidate:
            raise click.UsageError("give --baseline and --candidate experiment ids (or --production)")
        sa, sb, paired, exps = experiment_sides(Store(data_dir), baseline, candidate)
        link = offline.trace_links(exps)
    try:
        result = evaluate(rules, sa, sb, paired=paired, budgets=load_budgets(data_dir))
    except GateError as e:
        raise Refused(str(e)) from None
    text = markdown.gate_markdown(result, link)
    if (why := markdown.append_summary(text, summary_file)) is not None:
        click.echo(f"warning: {why}", err=True)
    if fmt == "json":
        click.echo(json.dumps(_gate_dict(result, link), indent=2, default=str))
    else:
        click.echo(text)
    ctx.exit(result.exit_code)


def _gate_dict(result: GateResult, link: Any) -> dict[str, Any]:
    return {
        "verdict": result.verdict,
        "exit_code": result.exit_code,
        "rules": [{"rule": r.rule, "verdict": r.verdict, "detail": r.detail} for r in result.rules],
        "comparison": comparison_dict(result.comparison, link),
    }
