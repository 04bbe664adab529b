"""`spanlake experiment`: run an app over a frozen dataset, list, show, compare (`spanlake gate`: cli/gate.py).

Experiments live under `<data-dir>/experiments/` (experiments.store); their traces go to the
running spanlake (`--endpoint`), whose lake must be the one under `--data-dir`/`--lake` for the
cost and latency figures. Bad input (a dataset version that does not exist, an app that cannot
be imported, an unknown gate rule) exits with code 2; see docs/experiments.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import orjson
import pyarrow as pa
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spanlake.cli.lake import lake_option
from spanlake.cli.options import Refused, format_option
from spanlake.cli.options import data_dir_option as shared_data_dir_option
from spanlake.cli.output import print_table
from spanlake.experiments import markdown, offline
from spanlake.experiments.apps import AppLoadError, load_app
from spanlake.experiments.compare import comparison_dict, side_figures
from spanlake.experiments.items import DatasetRef, resolve
from spanlake.experiments.run import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENDPOINT,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WAIT_S,
    Settings,
    probe,
    saved_settings,
    start,
)
from spanlake.experiments.run import run as run_experiment
from spanlake.experiments.scoring import CHECKS, check_schema, make_scorers
from spanlake.experiments.sides import Side
from spanlake.experiments.store import Experiment, ExperimentError, Store
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
data_dir_option = shared_data_dir_option()


def _meta(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{v!r}: use KEY=VALUE (e.g. prompt_version=v2)", param_hint="--meta")
        out[key.strip()] = value
    return out


def _schema(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        schema = orjson.loads(path.read_bytes())
        check_schema(schema)
    except (OSError, orjson.JSONDecodeError, ValueError) as e:
        raise Refused(f"--schema {path}: {e}") from None
    return schema  # type: ignore[no-any-return]


@click.group("experiment", context_settings={"max_content_width": 110})
def experiment() -> None:
    """Run an app over a frozen eval dataset, and compare runs item by item.

    \b
    An experiment runs your app on every item of one dataset version, traced into the lake
    (project <dataset project>-experiments), scores each output against the expected one, and
    keeps per-item results with cost and latency from the same analytics as production.
    `spanlake gate` turns two runs into a release verdict for CI. See docs/experiments.md.

    \b
    Examples:
      spanlake dataset export refunds --project shop --format jsonl       # freezes refunds@1
      spanlake experiment run --dataset refunds@1 --dataset-project shop --app myapp.bot:answer \\
          --check contains --meta prompt_version=v1
      spanlake experiment run --dataset refunds@1 --dataset-project shop --app myapp.bot:answer_v2 \\
          --check contains --meta prompt_version=v2 --concurrency 8 --timeout 30
      spanlake experiment list
      spanlake experiment compare exp-20261205-153012-ab12 exp-20261205-154501-9f3c
      spanlake gate --baseline exp-20261205-153012-ab12 --candidate exp-20261205-154501-9f3c --rules gate.toml
    """


@experiment.command("run")
@click.option("--dataset", "dataset_ref", default=None, metavar="NAME@VERSION", help="The frozen dataset version.")
@click.option(
    "--dataset-project",
    default=DEFAULT_PROJECT,
    show_default=True,
    envvar="SPANLAKE_PROJECT",
    show_envvar=True,
    help="The dataset's project (the experiment belongs to it).",
)
@click.option("--app", "app_ref", default=None, help="module:function, or http(s)://... receiving each item as JSON.")
@click.option(
    "--check",
    "checks",
    multiple=True,
    type=click.Choice(CHECKS),
    help="Check the output against the item's expected output (repeatable; all must pass).",
)
@click.option(
    "--schema",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="json-schema check: validate every output against this JSON Schema file (default: an item's "
    "expected output when it is a schema).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=None,
    help=f"Items at once [default: {DEFAULT_CONCURRENCY}].",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(0.001, 86_400),
    default=None,
    help=f"Seconds an item may take; then it is recorded as a timeout [default: {DEFAULT_TIMEOUT_S:g}].",
)
@click.option(
    "--meta",
    multiple=True,
    metavar="KEY=VALUE",
    help="Run metadata, on every span (spanlake.experiment.meta.KEY; prompt_version and prompt_name also "
    "as gen_ai.prompt.*). Repeatable.",
)
@click.option("--resume", "resume_id", default=None, metavar="ID", help="Finish an interrupted experiment.")
@click.option(
    "--endpoint",
    default=None,
    help=f"The running spanlake's OTLP/HTTP address [default: {DEFAULT_ENDPOINT}].",
)
@click.option(
    "--project",
    "trace_project",
    default=None,
    help="Project the traces go to [default: <dataset project>-experiments, apart from production].",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(0, 3600),
    default=DEFAULT_WAIT_S,
    show_default=True,
    help="Seconds to wait for the traces to reach the lake before reading cost and latency.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@data_dir_option
@lake_option
def run_cmd(
    dataset_ref: str | None,
    dataset_project: str,
    app_ref: str | None,
    checks: tuple[str, ...],
    schema: Path | None,
    concurrency: int | None,
    timeout_s: float | None,
    meta: tuple[str, ...],
    resume_id: str | None,
    endpoint: str | None,
    trace_project: str | None,
    wait_s: float,
    quiet: bool,
    data_dir: Path,
    lake: str | None,
) -> None:
    """Run an app over every item of a dataset version (or resume an interrupted run).

    \b
    The app: `module:function` is called with the item's input text, and with the item
    (spanlake.experiments.items.DatasetItem) when it takes a second argument; sync or async;
    it returns the output and may mark the outcome with spanlake.sdk.current_task().fail(...).
    `http://...` receives each item as a JSON POST; the response body is the output.

    \b
    Examples:
      spanlake experiment run --dataset refunds@2 --app myapp.bot:answer --check exact
      spanlake experiment run --dataset refunds@2 --app http://127.0.0.1:9000/answer --check contains
      spanlake experiment run --resume exp-20261205-153012-ab12
    """
    store = Store(data_dir)
    dd = DataDir(data_dir, lake)
    exp: Experiment | None = None
    try:
        if resume_id is not None:
            given = [n for n, v in (("--dataset", dataset_ref), ("--app", app_ref), ("--meta", meta)) if v]
            given += [n for n, v in (("--check", checks), ("--schema", schema), ("--project", trace_project)) if v]
            if given:
                raise click.UsageError(
                    f"--resume runs the experiment as it was started: drop {', '.join(given)} "
                    "(only --concurrency, --timeout, --endpoint and --wait may change)"
                )
            exp = store.get(resume_id)
            settings = saved_settings(
                exp, concurrency=concurrency, timeout_s=timeout_s, endpoint=endpoint, wait_s=wait_s
            )
        else:
            if not dataset_ref or not app_ref:
                raise click.UsageError("give --dataset NAME@VERSION and --app (or --resume ID)")
            ref = DatasetRef.parse(dataset_ref)
            settings = Settings(
                app=app_ref,
                checks=checks,
                schema=_schema(schema),
                meta=_meta(meta),
                concurrency=concurrency or DEFAULT_CONCURRENCY,
                timeout_s=timeout_s or DEFAULT_TIMEOUT_S,
                endpoint=(endpoint or DEFAULT_ENDPOINT).rstrip("/"),
                trace_project=trace_project,
                wait_s=wait_s,
            )
        scorers = make_scorers(settings.checks, settings.schema)
        if resume_id is None:
            if not dd.has_lake():
                raise Refused(f"no lake at {dd.lake_location}: pass the --data-dir (or --lake) spanlake up uses")
            resolve(dd, dataset_project, ref)  # a version that does not exist: before anything else
        app = load_app(settings.app)
        if (why := probe(settings.endpoint)) is not None:
            raise Refused(f"no spanlake at {settings.endpoint} ({why}): start it with `spanlake up` or pass --endpoint")
        if resume_id is None:
            exp = start(store, dd, dataset_project, ref, settings)
            click.echo(f"experiment {exp.id} ({ref.name}@{exp.record['dataset']['version']}, {settings.app})", err=True)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, transient=True, disable=quiet) as progress:
            bar = progress.add_task(f"running {exp.id}", total=None)
            report = run_experiment(
                store,
                dd,
                exp,
                app,
                scorers,
                settings,
                on_start=lambda total, done: progress.update(bar, total=total, completed=done),
                on_result=lambda row: progress.advance(bar),
                on_figures=lambda found, expected: progress.update(
                    bar, description="waiting for the lake", total=expected, completed=found
                ),
            )
    except (ValueError, LookupError, AppLoadError, ExperimentError) as e:
        raise Refused(str(e)) from None
    except KeyboardInterrupt:
        if exp is not None:
            click.echo(f"\ninterrupted: `spanlake experiment run --resume {exp.id}` finishes it", err=True)
        sys.exit(130)
    figures = side_figures(offline.experiment_side(exp))
    rate = f"{figures.success_rate:.1%}" if figures.success_rate is not None else "n/a"
    click.echo(
        f"{exp.id}: {report.ran} item(s) run, {report.skipped} done before, {report.errors} error(s), "
        f"{report.timeouts} timeout(s); success {rate} ({figures.successes}/{figures.items}); "
        f"lake figures for {report.figures}/{report.figures_expected} item(s) in {report.seconds:.1f} s"
    )
    if report.figures_error:
        click.echo(f"  could not read cost and latency from the lake: {report.figures_error}", err=True)
    elif report.figures < report.figures_expected:
        click.echo(
            f"  some traces had not reached the lake at {dd.lake_location} after {settings.wait_s:g} s: "
            f"`spanlake experiment run --resume {exp.id}` reads them again",
            err=True,
        )
    if not report.flushed:
        click.echo("  warning: not every span was delivered to spanlake in time", err=True)


@experiment.command("list")
@click.option("--project", default=None, help="Only experiments on this project's datasets.")
@format_option
@data_dir_option
def list_cmd(project: str | None, fmt: str, data_dir: Path) -> None:
    """List experiments, newest first: dataset, app, metadata, status, success rate, cost, p95."""
    try:
        rows = offline.summary_rows(Store(data_dir).list(project))
    except ExperimentError as e:
        raise Refused(str(e)) from None
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no experiments yet: `spanlake experiment run --help`")
        return
    print_table(pa.Table.from_pylist([_list_cells(r, rows) for r in rows]), fmt)


def _list_cells(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A row of the list as a person reads it (`--format json` keeps the numbers)."""
    rate = row["success_rate"]
    cells = {
        "id": row["id"],
        "dataset": row["dataset"],
        "meta": row["meta"],
        "status": row["status"],
        "items": row["items"],
        "success": None if rate is None else f"{rate:.1%}",
        "$ / success": markdown.usd_text(row["cost_per_successful_task"]),
        "p95": markdown.ms_text(row["p95_ms"]),
        "created (UTC)": str(row["created_at"] or "")[:16].replace("T", " "),
        "app": row["app"],
    }
    if len({r["project"] for r in rows}) > 1:
        cells["project"] = row["project"]
    if any(r["error"] is not None for r in rows):
        cells["error"] = row["error"]
    return cells


def _get(store: Store, experiment_id: str) -> Experiment:
    try:
        return store.get(experiment_id)
    except ExperimentError as e:
        raise Refused(str(e)) from None


@experiment.command("show")
@click.argument("experiment_id", metavar="ID")
@format_option
@data_dir_option
def show_cmd(experiment_id: str, fmt: str, data_dir: Path) -> None:
    """Show an experiment: its settings, aggregates and every item's result."""
    exp = _get(Store(data_dir), experiment_id)
    try:
        shown = offline.detail(exp)
        row = offline.summary_row(exp)
    except ExperimentError as e:
        raise Refused(str(e)) from None
    if fmt == "json":
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    figures = shown["figures"]
    click.echo(f"{exp.id}  {row['dataset']} ({exp.project})  app {row['app']}  {row['status']}")
    click.echo(f"  traces in project {exp.record.get('trace_project')}; metadata: {row['meta'] or 'none'}")
    rate = "n/a" if figures["success_rate"] is None else f"{figures['success_rate']:.1%}"
    cps = figures["cost_per_successful_task"]
    click.echo(
        f"  success {rate} ({figures['successes']}/{figures['items']}, {figures['undecided']} undecided), "
        f"errors {figures['errors']}, cost per successful task {'n/a' if cps is None else f'${cps:.6f}'}, "
        f"p50 {figures['p50_ms'] or 0:.0f} ms, p95 {figures['p95_ms'] or 0:.0f} ms"
    )
    if figures["failure_modes"]:
        click.echo("  failure modes: " + ", ".join(f"{k} {v}" for k, v in figures["failure_modes"].items()))
    columns = ("item_id", "success", "failure_mode", "cost_usd", "duration_ms", "output", "trace_url")
    shown_rows = [
        {k: r[k] for k in columns} | {"output": ((r["output"] if r["error"] is None else r["error"]) or "")[:120]}
        for r in shown["items"]
    ]
    table = pa.Table.from_pylist(shown_rows) if shown_rows else pa.table({"item_id": pa.array([], pa.string())})
    print_table(table, "table")


def experiment_sides(store: Store, a_id: str, b_id: str) -> tuple[Side, Side, bool, list[Experiment]]:
    a, b = _get(store, a_id), _get(store, b_id)
    try:
        sa, sb = offline.experiment_side(a), offline.experiment_side(b)
    except ExperimentError as e:
        raise Refused(str(e)) from None
    return sa, sb, offline.paired(a, b), [a, b]


@experiment.command("compare")
@click.argument("baseline", metavar="A")
@click.argument("candidate", metavar="B")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True)
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@data_dir_option
def compare_cmd(baseline: str, candidate: str, fmt: str, confidence: float, data_dir: Path) -> None:
    """Compare experiment B (candidate) with A (baseline): aggregates with intervals, and the
    items that regressed, improved or changed output.

    \b
    Runs over the same dataset are compared item by item (paired: Newcombe for the success
    rate difference, paired bootstrap for cost and latency ratios); otherwise as two samples.

    \b
    Example:
      spanlake experiment compare exp-20261205-153012-ab12 exp-20261205-154501-9f3c --format markdown
    """
    store = Store(data_dir)
    exps = [_get(store, baseline), _get(store, candidate)]
    try:
        c = offline.compare_experiments(*exps, confidence=confidence)
    except ExperimentError as e:
        raise Refused(str(e)) from None
    paired = c.paired
    link = offline.trace_links(exps)
    if fmt == "json":
        click.echo(json.dumps(comparison_dict(c, link), indent=2, default=str))
    elif fmt == "markdown":
        click.echo(markdown.comparison_markdown(c, link))
    else:
        Console().print(Markdown(markdown.comparison_markdown(c, link)))
        if not paired:
            click.echo("(different datasets: compared as two samples, not item by item)")
