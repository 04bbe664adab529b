"""`spanlake report NAME`: the analytics reports from the command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from spanlake.cli.options import LAKE_HELP, data_dir_option

REPORT_HELP = {
    "latency": "p50/p90/p95/p99/max of tasks end to end and of each step category; errors, timeouts, retries, TTFT",
    "cost": "calls, tokens and cost; tasks, success rate, cost per task and per successful task",
    "unpriced": "models called that have no price (their cost is unknown, never counted as zero)",
    "tasks": "tasks by outcome and by how the outcome was decided; success rate, duration, cost",
    "task-list": "single tasks, slowest first (--sort cost: most expensive first)",
    "validation": "validation checks and failure rate per validator (group by model, prompt_version, day, ...)",
    "validation-errors": "the most frequent validation failure messages, grouped by pattern",
    "retrieval": "per data source: queries, documents per query, empty-result rate, scores, latency",
    "retrieved-documents": "the documents retrieved most often",
    "compare": "two prompt versions or models side by side (--by prompt_version --a v1 --b v2)",
}


HELP = (
    "Run an analytics report over the lake and print it as a table, JSON or CSV.\n\n"
    "\b\nNAME is one of:\n" + "\n".join(f"  {k:<20} {v}" for k, v in REPORT_HELP.items()) + "\n\n\b\nExamples:\n"
    "  spanlake report cost --since 7d -g model,day\n"
    "  spanlake report latency -g model --slow-ms 2000\n"
    "  spanlake report tasks -g outcome_source\n"
    "  spanlake report validation -g validator,prompt_version\n"
    "  spanlake report compare --by model --a gpt-4o --b gpt-4o-mini --format json\n\n"
    "A task is a span the app marked as a task, else a trace's root span. Its outcome is decided by, in "
    "order: a human label, the app's recorded outcome, a failed validation inside it, an error status, "
    "else --default-outcome. Cost is computed at query time from the genai-prices database and your "
    "overrides (--prices), so a corrected price fixes history; models without a price are listed by "
    "`spanlake report unpriced` and never counted as zero. See docs/analytics.md."
)


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # the window the API accepts too (server.api.common)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _parse_time(text: str | None, now: datetime) -> datetime | None:
    """'24h' (that long ago), an ISO date/time (UTC unless it says otherwise), or None."""
    from spanlake.analytics.spans import parse_duration

    if text is None:
        return None
    try:
        return now - parse_duration(text)
    except (ValueError, OverflowError):
        pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use a duration such as 24h or 7d, or an ISO time") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    try:
        ok = EARLIEST <= t <= LATEST
    except OverflowError:  # an offset that takes the time off the calendar
        ok = False
    if not ok:
        raise click.BadParameter(f"{text!r}: a time between 1970 and 2200")
    return t


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


@click.command("report", help=HELP, context_settings={"max_content_width": 110})
@click.argument("name", type=click.Choice(list(REPORT_HELP)), metavar="NAME")
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
@click.option("--slow-ms", type=float, default=5000.0, show_default=True, help="latency: slow-path threshold.")
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
    help="task-list: order.",
)
@click.option(
    "--limit", type=int, default=20, show_default=True, help="task-list, validation-errors, retrieved-documents: rows."
)
@click.option(
    "--by",
    default="prompt_version",
    show_default=True,
    help="compare: prompt_version, model, prompt_name, provider, service or task_name.",
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
    help="retrieval: hit rate and precision at k over queries with a relevance judgment.",
)
@click.option("--a", "a", default=None, help="compare: the first value (e.g. v1).")
@click.option("--b", "b", default=None, help="compare: the second value (e.g. v2).")
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
) -> None:
    """Run an analytics report over the lake (see HELP)."""
    from spanlake.analytics.pricing import PriceBook
    from spanlake.analytics.runner import Analytics, default_prices_path
    from spanlake.analytics.spans import Filters, parse_attr_filter
    from spanlake.analytics.task_outcomes import TaskOptions
    from spanlake.cli.output import print_table
    from spanlake.storage.layout import DataDir, valid_project

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
        since=_parse_time(since, now),
        until=_parse_time(until, now) or now,
        project=project,
        service=service,
        model=model,
        provider=provider,
        prompt_name=prompt_name,
        prompt_version=prompt_version,
        attributes=attributes,
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
    from spanlake.analytics import rollup_reports as RR

    def rolled(report_name: str) -> Callable[[], Any]:
        return lambda: RR.report(an, report_name, filters, keys, source=source, options=opts, slow_ms=slow_ms, k=k)

    def listed(report_name: str, **kw: Any) -> Callable[[], Any]:
        return lambda: RR.list_report(an, report_name, filters, source=source, limit=limit, options=opts, **kw)

    grouped: dict[str, Callable[[], Any]] = {
        "latency": rolled("latency"),
        "cost": lambda: _cost(an, filters, keys, opts, source),
        "unpriced": listed("unpriced"),
        "tasks": rolled("tasks"),
        "task-list": listed("task-list", sort=sort),
        "validation": rolled("validation"),
        "validation-errors": listed("validation-errors"),
        "retrieval": rolled("retrieval"),
        "retrieved-documents": listed("retrieved-documents"),
        "compare": lambda: _compare(RR, an, filters, by, a, b, opts, source),
    }
    try:
        df = grouped[name]()
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if isinstance(df, tuple):
        df, used = df
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
    from rich.console import Console
    from rich.table import Table

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


def _cost(an: Any, filters: Any, keys: list[str], opts: Any, source: str) -> Any:
    from spanlake.analytics import rollup_reports as RR

    return RR.report(an, "cost", filters, keys, source=source, options=opts)


def _compare(RR: Any, an: Any, filters: Any, by: str, a: str | None, b: str | None, opts: Any, source: str) -> Any:
    if a is None or b is None:
        raise click.UsageError("compare needs --a and --b (e.g. --by prompt_version --a v1 --b v2)")
    return RR.compare(an, filters, by, a, b, options=opts, source=source)


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
    from spanlake.analytics.pricing import PriceBook
    from spanlake.analytics.runner import Analytics, default_prices_path
    from spanlake.storage.layout import DataDir

    dd = DataDir(data_dir)
    if not dd.lake.is_dir():
        raise click.ClickException(f"no lake at {dd.root}: start `spanlake up` or pass --data-dir")
    _update_rollups(Analytics(dd, prices=PriceBook.from_file(prices or default_prices_path(dd))), full=full)


def _update_rollups(an: Any, full: bool) -> None:
    from rich.progress import Progress

    from spanlake.analytics import rollups

    with Progress(transient=True) as bar:
        task = bar.add_task("rolling up hours", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = rollups.run(an, progress=progress, full=full)
    rebuilt = ", ".join(f"{k} {n}" for k, n in result.rebuilt.items())
    click.echo(
        f"rollups up to date: {result.hours_seen} lake hour(s); hours rebuilt: {rebuilt}"
        + (f"; {result.labelled_hours} hour(s) for new labels" if result.labelled_hours else "")
        + (" (full rebuild)" if result.full_rebuild else ""),
        err=True,
    )
