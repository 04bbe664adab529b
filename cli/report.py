"""`spanlake report NAME`: the analytics reports from the command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from spanlake.analytics.pricing import PriceBook
from spanlake.analytics.reports.registry import REPORTS, public_params, run_report
from spanlake.analytics.rollups.materialize import run
from spanlake.analytics.runner import Analytics, default_prices_path
from spanlake.analytics.spans import Filters, parse_attr_filter
from spanlake.analytics.task_outcomes import TaskOptions
from spanlake.cli.options import LAKE_HELP, data_dir_option, task_option
from spanlake.cli.output import print_table
from spanlake.cli.times import parse_time
from spanlake.storage.layout import DataDir, valid_project


def _taken_by(name: str, text: str) -> str:
    """An option's help: the reports that take parameter `name`, then what it does."""
    return f"{', '.join(public_params()[name][1])}: {text}"


def _either(values: tuple[str, ...]) -> str:
    return f"{', '.join(values[:-1])} or {values[-1]}"


# Parameters with an option of their own above; a report declaring another gets one from `_new_params`.
OPTIONS = ("slow_ms", "sort", "limit", "by", "k", "a", "b")


def _new_params(f: Callable[..., Any]) -> Callable[..., Any]:
    """An option for each report parameter that has none above (`--name`, typed, with its default)."""
    for name, (p, _) in reversed(public_params().items()):
        if name in OPTIONS:
            continue
        kind: Any = click.Choice(list(p.choices)) if p.choices else p.type
        f = click.option(
            f"--{name.replace('_', '-')}", name, type=kind, default=p.default, help=_taken_by(name, p.help or "")
        )(f)
    return f


HELP = (
    "Run an analytics report over the lake and print it as a table, JSON or CSV.\n\n"
    "\b\nNAME is one of:\n"
    + "\n".join(f"  {k:<20} {r.summary_for('cli')}" for k, r in REPORTS.items())
    + "\n\n\b\nExamples:\n"
    "  spanlake report cost --since 7d -g model,day\n"
    "  spanlake report latency -g model --slow-ms 2000\n"
    "  spanlake report tasks -g outcome_source\n"
    "  spanlake report validation -g validator,prompt_version\n"
    "  spanlake report compare --by model --a gpt-4o --b gpt-4o-mini --format json\n\n"
    "A task is a span the app marked as a task, else a trace's root span. Its outcome is decided by, in "
    "order: a human label, a judge label of an evaluator that decides outcomes, the app's recorded outcome, "
    "a failed validation inside it, an error status, "
    "else --default-outcome. Cost is computed at query time from the genai-prices database and your "
    "overrides (--prices), so a corrected price fixes history; models without a price are listed by "
    "`spanlake report unpriced` and never counted as zero. See docs/analytics.md."
)


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@click.command("report", help=HELP, context_settings={"max_content_width": 110})
@click.argument("name", type=click.Choice(list(REPORTS)), metavar="NAME")
@data_dir_option(LAKE_HELP)
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Start of the window: a duration ago (30m, 24h, 7d) or an ISO time.",
)
@click.option("--until", default=None, help="End of the window (exclusive); default now.")
@click.option("--project", default=None, help="Only this project.")
@click.option("--service", default=None, help="Only this service (`service.name`).")
@click.option("--model", default=None, help="Only this model (requested or answering model name).")
@click.option("--provider", default=None, help="Only this provider (e.g. openai, anthropic, aws.bedrock).")
@click.option("--prompt-name", default=None, help="Only this prompt.")
@click.option("--prompt-version", default=None, help="Only this prompt version.")
@task_option
@click.option(
    "--attr",
    "attrs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only spans whose attribute KEY equals VALUE (repeatable; in KEY write \\= for '=' and \\\\ for '\\').",
)
@click.option(
    "--group-by",
    "-g",
    multiple=True,
    metavar="KEYS",
    help="Comma-separated: project, service, model, provider, prompt_name, prompt_version, task_name, outcome, "
    "outcome_source, validator, data_source, attr:KEY, or a time bucket (hour, day, week, month). "
    "Which keys apply depends on the report.",
)
@click.option(
    "--group-by-attr",
    "group_by_attrs",
    multiple=True,
    metavar="KEY",
    help="Group by this attribute key, exactly as spans carry it (repeatable; never split at commas or trimmed).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--max-rows", type=int, default=100, show_default=True, help="Rows shown by --format table.")
@click.option(
    "--prices",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Price overrides (TOML or JSON); default <data-dir>/prices.toml.",
)
@click.option(
    "--slow-ms", type=float, default=5000.0, show_default=True, help=_taken_by("slow_ms", "slow-path threshold.")
)
@click.option(
    "--default-outcome",
    type=click.Choice(["unknown", "success", "failure"]),
    default="unknown",
    show_default=True,
    help="Outcome of a task no label, app outcome, validation or error decides.",
)
@click.option(
    "--sort",
    type=click.Choice(["duration", "cost", "start"]),
    default="duration",
    show_default=True,
    help=_taken_by("sort", "order."),
)
@click.option("--limit", type=int, default=20, show_default=True, help=_taken_by("limit", "rows."))
@click.option(
    "--by",
    default="prompt_version",
    show_default=True,
    help=_taken_by("by", f"{_either(public_params()['by'][0].choices)}."),
)
@click.option(
    "--source",
    type=click.Choice(["auto", "raw", "rollups"]),
    default="auto",
    show_default=True,
    help="auto reads the hours whose rollups are up to date (`spanlake analytics run`) from them and the rest "
    "(ragged edges, stale hours) from raw spans, or everything raw when rollups cannot answer (attribute filters "
    "or groupings, minute buckets, another --slow-ms; for task-list also model/service/provider/prompt filters "
    "and --limit over 100); percentiles from rollups are within 1 %. The source used is printed on stderr.",
)
@click.option(
    "--update-rollups",
    is_flag=True,
    help="First bring the hourly rollups up to date with the lake (the `analytics run` job), with progress.",
)
@click.option(
    "--k",
    "k",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help=_taken_by("k", "hit rate and precision at k over queries with a relevance judgment."),
)
@click.option("--a", "a", default=None, help=_taken_by("a", "the first value (e.g. v1)."))
@click.option("--b", "b", default=None, help=_taken_by("b", "the second value (e.g. v2)."))
@_new_params
def report(
    name: str,
    data_dir: Path,
    since: str,
    until: str | None,
    project: str | None,
    service: str | None,
    model: str | None,
    provider: str | None,
    prompt_name: str | None,
    prompt_version: str | None,
    task: str | None,
    attrs: tuple[str, ...],
    group_by: tuple[str, ...],
    group_by_attrs: tuple[str, ...],
    fmt: str,
    max_rows: int,
    prices: Path | None,
    slow_ms: float,
    default_outcome: str,
    sort: str,
    limit: int,
    by: str,
    source: str,
    update_rollups: bool,
    k: int,
    a: str | None,
    b: str | None,
    **more: Any,
) -> None:
    """Run an analytics report over the lake (see HELP)."""
    dd = DataDir(data_dir)
    if not dd.lake.is_dir():
        raise click.ClickException(f"no lake at {dd.root}: start `spanlake up` or pass --data-dir")
    if project is not None and not valid_project(project):  # it names a folder of the lake
        raise click.BadParameter("letters, digits, '_', '.', '-'; at most 64", param_hint="--project")
    attributes: dict[str, str] = {}
    for item in attrs:
        try:
            key, value = parse_attr_filter(item)
        except ValueError:
            key, value = "", ""
        if not key:
            raise click.BadParameter(f"{item!r}: use KEY=VALUE (write \\= for an '=' in KEY)", param_hint="--attr")
        attributes[key] = value
    now = datetime.now(UTC)
    filters = Filters(
        since=parse_time(since, now),
        until=parse_time(until, now) or now,
        project=project,
        service=service,
        model=model,
        provider=provider,
        prompt_name=prompt_name,
        prompt_version=prompt_version,
        attributes=attributes,
        task_name=task,
    )
    try:
        book = PriceBook.from_file(prices or default_prices_path(dd))
    except (ValueError, TypeError, OSError) as e:
        raise click.ClickException(f"cannot read prices: {e}") from None
    an = Analytics(dd, prices=book)
    if update_rollups:
        _update_rollups(an, full=False)
    opts = TaskOptions(default_outcome=default_outcome)
    keys = _split(group_by) + [f"attr:{k}" for k in group_by_attrs]
    given = {"slow_ms": slow_ms, "sort": sort, "limit": limit, "by": by, "k": k, "a": a, "b": b, **more}
    chosen = REPORTS[name]
    params = {p.name: given[p.name] for p in chosen.params if p.public}
    missing = [f"--{p.name.replace('_', '-')}" for p in chosen.params if p.required and params[p.name] is None]
    if missing:
        example = chosen.example("cli")
        raise click.UsageError(f"{name} needs {' and '.join(missing)}" + (f" (e.g. {example})" if example else ""))
    try:
        df, used = run_report(an, name, filters, keys, source, options=opts, **params)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"source: {used}", err=True)
    if fmt == "table" and df.width > WIDE:
        _print_vertical(df, max_rows)
    else:
        print_table(df.to_arrow(), fmt, max_rows)


WIDE = 7  # tables with more columns print one block per row


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _print_vertical(df: Any, max_rows: int) -> None:
    """One block per row (column: value), readable in any terminal width."""
    console = Console()
    for i, row in enumerate(df.head(max_rows).iter_rows(named=True)):
        table = Table(title=f"row {i + 1}", title_justify="left", show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for k, v in row.items():
            table.add_row(k, _fmt(v))
        console.print(table)
        console.print()
    shown = min(df.height, max_rows)
    console.print(
        f"({df.height} rows" + (f", {shown} shown; use --max-rows or --format csv)" if shown < df.height else ")")
    )


@click.group("analytics")
def analytics() -> None:
    """Analytics jobs (see also `spanlake report`)."""


@analytics.command("run")
@data_dir_option(LAKE_HELP)
@click.option("--prices", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Price overrides file.")
@click.option("--full", is_flag=True, help="Rebuild every hour, not only the changed ones.")
def analytics_run(data_dir: Path, prices: Path | None, full: bool) -> None:
    """Bring the hourly rollups up to date with the lake (with progress).

    Rebuilds, per rollup table (calls, tasks, steps, checks, retrieval, overview, traces), the
    hours a changed span file can affect (a late span changes the tasks that started up to 6 h
    before it), the hours of traces that got new human labels, or everything when prices
    changed. `spanlake report` and the dashboard overview read the rollups where they are up
    to date. `spanlake up` runs this every --rollup-interval seconds.
    """

    dd = DataDir(data_dir)
    if not dd.lake.is_dir():
        raise click.ClickException(f"no lake at {dd.root}: start `spanlake up` or pass --data-dir")
    _update_rollups(Analytics(dd, prices=PriceBook.from_file(prices or default_prices_path(dd))), full=full)


def _update_rollups(an: Any, full: bool) -> None:
    with Progress(transient=True) as bar:
        task = bar.add_task("rolling up hours", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = run(an, progress=progress, full=full)
    rebuilt = ", ".join(f"{k} {n}" for k, n in result.rebuilt.items())
    click.echo(
        f"rollups up to date: {result.hours_seen} lake hour(s); hours rebuilt: {rebuilt}"
        + (f"; {result.labelled_hours} hour(s) for new labels" if result.labelled_hours else "")
        + (" (full rebuild)" if result.full_rebuild else ""),
        err=True,
    )
