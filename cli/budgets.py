"""`spanlake budgets`: budgets (limits on a project's latency, cost, success and traffic) and
where their alerts go, kept in `<data-dir>/budgets.toml` (analytics.budgets). Changes are
written to the file under a lock, keeping its comments; a running server reloads it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from spanlake.analytics.budgets.budgets_file import BudgetExists, BudgetsFile, NoSuchEntry
from spanlake.analytics.budgets.definition import DESTINATION_TYPES, Budget, BudgetError, BudgetSet, format_duration
from spanlake.analytics.budgets.evaluate import Evaluation, measure_all, reading_dict
from spanlake.analytics.budgets.metrics import METRICS, STEPS
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import parse_attr_filter
from spanlake.cli.lake import lake_option
from spanlake.cli.options import data_dir_option, format_option
from spanlake.cli.output import dump_json
from spanlake.cli.times import parse_time
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir
from spanlake.storage.reader import Lake

DEFAULT_PROJECT_ENV = "SPANLAKE_DEFAULT_PROJECT"  # as `spanlake up --default-project`
EXIT_OK, EXIT_BREACHED, EXIT_ERROR = 0, 1, 2
LEVEL_STYLE = {"ok": "green", "warning": "yellow", "critical": "bold red", "no_data": "dim"}

_data_dir = data_dir_option("Data directory whose budgets.toml holds the budgets and destinations.")


class CheckFailed(click.ClickException):
    """The check could not run (a broken budgets file, no lake, a budget that failed): exit 2."""

    exit_code = EXIT_ERROR


def _default_project() -> str:
    return os.environ.get(DEFAULT_PROJECT_ENV) or DEFAULT_PROJECT


def _store(data_dir: Path) -> BudgetsFile:
    return BudgetsFile(data_dir, _default_project())


def _read(store: BudgetsFile, error: type[click.ClickException] = click.ClickException) -> BudgetSet:
    try:
        return store.read()
    except BudgetError as e:
        raise error(
            f"{e}\nFix {store.path} by hand (a running server keeps its last good budgets meanwhile)."
        ) from None


def _scope(b: Budget) -> str:
    parts = [f"{k}={getattr(b, k)}" for k in ("task", "service", "model", "provider", "prompt_name", "prompt_version")]
    parts = [p for p in parts if not p.endswith("=None")]
    parts += [f"attr {k}={v}" for k, v in b.attributes.items()]
    if b.step != "task":
        parts.insert(0, f"step={b.step}")
    return ", ".join(parts) or "whole project"


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


@click.group("budgets", context_settings={"max_content_width": 110})
def budgets() -> None:
    """Budgets: limits on a project's latency, cost, success rate and traffic, checked every minute
    by the server (SPANLAKE_BUDGET_INTERVAL) and once by `spanlake budgets check`.

    \b
    Examples:
      spanlake budgets add answer-p95 --project shop --metric p95_latency --task answer_ticket \\
          --window 15m --warning 2500 --critical 3000 --for 5m
      spanlake budgets add daily-spend --project shop --metric spend --window 24h --critical 40
      spanlake budgets add cost-regression --project shop --metric cost_per_successful_task \\
          --window 1h --baseline "7d ago" --warning 20 --critical 50     # % worse than a week ago
      spanlake budgets destination add team-hook --type slack --url https://hooks.slack.com/services/...
      spanlake budgets add no-traffic --project shop --metric traffic --window 20m --critical 1 \\
          --destination team-hook
      spanlake budgets check --format json     # exit 0: all ok or no data, 1: a budget breached, 2: error

    Everything is kept in <data-dir>/budgets.toml, which you may also edit by hand (the commands
    keep your comments). Metrics: see `spanlake budgets add --help`.
    """


@budgets.command("add")
@_data_dir
@click.argument("name")
@click.option(
    "--metric",
    type=click.Choice(list(METRICS)),
    required=True,
    help="What to watch: " + "; ".join(f"{m.name}: {m.summary}" for m in METRICS.values()) + ".",
)
@click.option("--window", required=True, metavar="DURATION", help="The window it is computed over: 15m, 1h, 24h, 7d.")
@click.option("--warning", type=float, help="Warning threshold, in the metric's unit (or % with --baseline).")
@click.option("--critical", type=float, help="Critical threshold, in the metric's unit (or % with --baseline).")
@click.option("--project", default=None, help=f"The budget's project (default: ${DEFAULT_PROJECT_ENV} or 'default').")
@click.option("--task", default=None, help="Only tasks of this name (and the steps inside them).")
@click.option("--service", default=None, help="Only this service (`service.name`).")
@click.option("--model", default=None, help="Only this model (requested or answering).")
@click.option("--provider", default=None, help="Only this provider (openai, anthropic, ...).")
@click.option("--prompt-name", default=None, help="Only this prompt.")
@click.option("--prompt-version", default=None, help="Only this prompt version.")
@click.option(
    "--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="Only spans with this attribute (repeatable)."
)
@click.option(
    "--step", type=click.Choice(STEPS), default=None, help="Latency and error metrics: a step category, not the task."
)
@click.option(
    "--min-samples", type=click.IntRange(0), default=None, help="Fewer samples: no data (default: per metric)."
)
@click.option("--for", "for_", default=None, metavar="DURATION", help="How long a breach must last before it fires.")
@click.option(
    "--baseline",
    default=None,
    help="Make the thresholds relative: '7d ago' (the same window a week earlier) or 'previous 7d'; "
    "--warning/--critical are then percent worse than the baseline's figure.",
)
@click.option("--destination", "destinations", multiple=True, metavar="NAME", help="Where alerts go (repeatable).")
@click.option("--renotify", default=None, metavar="DURATION", help="Re-send while still firing (default 1h; 0: never).")
@click.option("--slow-ms", type=float, default=None, help="slow_share: a task slower than this is slow.")
@click.option("--description", default=None, help="A note shown with alerts.")
@click.option("--replace", is_flag=True, help="Replace a budget of the same name (else that is an error).")
def add(data_dir: Path, name: str, replace: bool, attrs: tuple[str, ...], for_: str | None, **given: Any) -> None:
    """Add a budget (or replace one with --replace)."""
    raw: dict[str, Any] = {"name": name, **{k: v for k, v in given.items() if v not in (None, ())}}
    if for_ is not None:
        raw["for"] = for_
    if raw.get("destinations"):
        raw["destinations"] = list(raw["destinations"])
    if attrs:
        raw["attributes"] = {}
        for item in attrs:
            try:
                key, value = parse_attr_filter(item)
            except ValueError:
                key = ""
            if not key:
                raise click.BadParameter(f"{item!r}: use KEY=VALUE", param_hint="--attr")
            raw["attributes"][key] = value
    store = _store(data_dir)
    try:
        budget, created = store.put_budget(raw, create=not replace)
    except BudgetError as e:
        hint = "; use --replace to replace it" if isinstance(e, BudgetExists) else ""
        raise click.ClickException(f"{e}{hint}") from None
    click.echo(
        f"{'added' if created else 'replaced'} budget {budget.name!r} of project {budget.project!r} in {store.path}"
    )


@budgets.command("list")
@_data_dir
@click.option("--project", default=None, help="Only this project's budgets.")
@format_option
def list_budgets(data_dir: Path, project: str | None, fmt: str) -> None:
    """List the budgets (from budgets.toml)."""
    store = _store(data_dir)
    found = [b for b in _read(store).budgets if project is None or b.project == project]
    if fmt == "json":
        dump_json([b.to_dict() for b in found])
        return
    if not found:
        click.echo(f"no budgets in {store.path}; add one with `spanlake budgets add`")
        return
    table = Table()
    for col in ("project", "name", "metric", "scope", "window", "warning", "critical", "for", "baseline", "to"):
        table.add_column(col, overflow="fold")
    for b in found:
        table.add_row(b.project, b.name, b.metric, _scope(b), format_duration(b.window), _num(b.warning),
                      _num(b.critical), format_duration(b.for_) if b.for_ else "",
                      b.baseline.text if b.baseline else "", ", ".join(b.destinations))  # fmt: skip
    Console().print(table)


@budgets.command("remove")
@_data_dir
@click.argument("name")
@click.option("--project", default=None, help=f"The budget's project (default: ${DEFAULT_PROJECT_ENV} or 'default').")
def remove(data_dir: Path, name: str, project: str | None) -> None:
    """Remove a budget."""
    store = _store(data_dir)
    try:
        gone = store.remove_budget(project or store.default_project, name)
    except NoSuchEntry as e:
        raise click.ClickException(f"{e.args[0]}; see `spanlake budgets list`") from None
    except BudgetError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"removed budget {gone.name!r} of project {gone.project!r}")


@budgets.command("check")
@_data_dir
@lake_option
@click.option("--project", default=None, help="Only this project's budgets.")
@click.option("--at", default=None, help="Evaluate as of this time (ISO, or a duration ago); default now.")
@format_option
def check(data_dir: Path, lake: str | None, project: str | None, at: str | None, fmt: str) -> None:
    """Evaluate every budget once against the lake, for cron jobs and CI.

    \b
    Exit status:
      0  every budget is ok or has no data (too few samples)
      1  a budget is at its warning or critical threshold
      2  the check could not run: a broken budgets.toml, no lake, a budget that failed
    """
    store = _store(data_dir)
    chosen = [b for b in _read(store, CheckFailed).budgets if project is None or b.project == project]
    now = datetime.now(UTC)
    try:
        when = parse_time(at, now) or now
    except click.BadParameter as e:
        raise CheckFailed(f"--at: {e.message}") from None
    if not chosen:
        click.echo(f"no budgets{f' in project {project!r}' if project else ''} in {store.path}", err=True)
        return
    dd = DataDir(data_dir, lake)
    if not dd.has_lake():
        raise CheckFailed(f"no lake at {dd.lake_location}: start `spanlake up` or pass --data-dir/--lake")
    evaluation = measure_all(Analytics(Lake(dd)), chosen, when)
    _print_check(evaluation, fmt)
    if evaluation.failures:
        raise SystemExit(EXIT_ERROR)
    raise SystemExit(EXIT_BREACHED if evaluation.breached else EXIT_OK)


def _print_check(ev: Evaluation, fmt: str) -> None:
    if fmt == "json":
        failures = [{"budget": k, "error": why} for k, why in ev.failures]
        dump_json({"at": ev.at.isoformat(), "readings": [reading_dict(r) for r in ev.readings], "failures": failures})
        return
    table = Table(title=f"budgets at {ev.at:%Y-%m-%d %H:%M:%S}Z")
    for col in ("project", "name", "metric", "level", "figure", "warning", "critical", "samples", "reason"):
        table.add_column(col, overflow="fold")
    for r in ev.readings:
        b = r.budget
        level = f"[{LEVEL_STYLE[r.level]}]{r.level}[/]"
        table.add_row(b.project, b.name, b.metric, level, _num(r.figure.value), _num(r.warning_at),
                      _num(r.critical_at), str(r.figure.samples), r.reason)  # fmt: skip
    console = Console()
    console.print(table)
    for key, why in ev.failures:
        console.print(f"[bold red]could not evaluate {key}[/]: {why}")


# --- destinations ---------------------------------------------------------------------------


@budgets.group("destination")
def destination() -> None:
    """Where alerts go: webhook (JSON, signed), slack, teams, pagerduty, email. Shared by every project.

    \b
    Examples:
      spanlake budgets destination add ops --type webhook --url https://alerts.example.com/hook \\
          --secret-env SPANLAKE_OPS_SECRET
      spanlake budgets destination add pager --type pagerduty --routing-key-env PD_ROUTING_KEY
      spanlake budgets destination add team-mail --type email --to oncall@example.com --smtp mail:25

    Secrets never go in the file: --secret-env and --routing-key-env name environment variables
    of the server.
    """


@destination.command("add")
@_data_dir
@click.argument("name")
@click.option("--type", "type_", type=click.Choice(DESTINATION_TYPES), required=True, help="What kind of receiver.")
@click.option("--url", default=None, help="webhook, slack, teams: the http(s) URL to POST to.")
@click.option("--secret-env", default=None, metavar="VAR", help="webhook: the variable holding the signing secret.")
@click.option("--routing-key-env", default=None, metavar="VAR", help="pagerduty: the variable holding the routing key.")
@click.option("--to", "to", multiple=True, metavar="ADDRESS", help="email: a recipient (repeatable).")
@click.option("--from", "sender", default=None, metavar="ADDRESS", help="email: the sender.")
@click.option("--smtp", default=None, metavar="HOST:PORT", help="email: the SMTP server (default localhost:25).")
@click.option("--replace", is_flag=True, help="Replace a destination of the same name.")
def destination_add(data_dir: Path, name: str, type_: str, replace: bool, to: tuple[str, ...], **given: Any) -> None:
    """Add a destination (or replace one with --replace)."""
    raw: dict[str, Any] = {"name": name, "type": type_}
    raw |= {("from" if k == "sender" else k): v for k, v in given.items() if v is not None}
    if to:
        raw["to"] = list(to)
    store = _store(data_dir)
    try:
        dest, created = store.put_destination(raw, create=not replace)
    except BudgetError as e:
        hint = "; use --replace to replace it" if isinstance(e, BudgetExists) else ""
        raise click.ClickException(f"{e}{hint}") from None
    click.echo(f"{'added' if created else 'replaced'} destination {dest.name!r} ({dest.type}) in {store.path}")


@destination.command("list")
@_data_dir
@format_option
def destination_list(data_dir: Path, fmt: str) -> None:
    """List the destinations and the budgets that send to each."""
    found = _read(_store(data_dir))
    rows = [d.to_dict() | {"budgets": [b.key for b in found.budgets if d.name in b.destinations]}
            for d in found.destinations]  # fmt: skip
    if fmt == "json":
        dump_json(rows)
        return
    table = Table()
    for col in ("name", "type", "where", "secret from", "budgets"):
        table.add_column(col, overflow="fold")
    for row in rows:
        where = row.get("url") or ", ".join(row.get("to", [])) or ""
        secret = row.get("secret_env") or row.get("routing_key_env") or ""
        table.add_row(row["name"], row["type"], where, secret, ", ".join(row["budgets"]))
    Console().print(table)


@destination.command("remove")
@_data_dir
@click.argument("name")
def destination_remove(data_dir: Path, name: str) -> None:
    """Remove a destination no budget sends to."""
    try:
        gone = _store(data_dir).remove_destination(name)
    except NoSuchEntry as e:
        raise click.ClickException(f"{e.args[0]}; see `spanlake budgets destination list`") from None
    except BudgetError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"removed destination {gone.name!r}")
