"""`spanlake eval run`: an evaluator offline, over a frozen dataset version or past traces.

It reads the lake directly and posts its results as labels to the running server (`--url`; a
key in $SPANLAKE_API_KEY when it requires one). Bad input exits with code 2; a run where some
targets could not be evaluated exits 1.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spanlake.analytics.runner import Analytics
from spanlake.cli.evaluators import evaluator_project, evaluators_data_dir, find_evaluator, open_store
from spanlake.cli.lake import lake_option
from spanlake.cli.options import API_KEY_ENV, Refused, format_option, url_option
from spanlake.cli.output import dump_json
from spanlake.cli.times import parse_time
from spanlake.evaluators.offline import LabelPoster, OfflineError, OfflineRun, Summary, run_dataset, run_traces
from spanlake.evaluators.offline import trace_filters as parse_trace_filters
from spanlake.evaluators.result import author
from spanlake.evaluators.run import Judges
from spanlake.experiments.items import DatasetRef, resolve
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake

EXIT_OK, EXIT_ERRORS = 0, 1


@click.group("eval", context_settings={"max_content_width": 110})
def eval_group() -> None:
    """Run an evaluator offline: over a frozen dataset version, or a backfill over past traces.

    \b
    Examples:
      spanlake eval run reply_json --dataset refunds@3 --project shop
      spanlake eval run groundedness --since 7d --filter task=answer_ticket --filter prompt_version=v2
      spanlake eval run tool_args --since 24h --target tool --limit 500
    """


@eval_group.command("run")
@click.argument("evaluator_name", metavar="EVALUATOR")
@click.option("--dataset", "dataset_ref", default=None, metavar="NAME@VERSION", help="A frozen dataset version.")
@click.option("--since", default=None, metavar="WHEN", help="Past traces started since: 7d, 24h, or an ISO time.")
@click.option("--until", default=None, metavar="WHEN", help="... and before this (default: now).")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --since: the trace list's filters (repeatable): task, service, model, provider, prompt_name, "
    "prompt_version, outcome, session, text, has_error, min_ms, max_ms, min_cost, max_cost, attr.NAME.",
)
@click.option(
    "--target",
    default="trace",
    show_default=True,
    help="With --since: evaluate each trace, or each span of a category (llm, retrieval, tool, ...).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many traces or items.")
@evaluator_project
@url_option()
@evaluators_data_dir
@lake_option
@format_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_cmd(
    evaluator_name: str,
    dataset_ref: str | None,
    since: str | None,
    until: str | None,
    filters: tuple[str, ...],
    target: str,
    limit: int | None,
    project: str | None,
    url: str,
    data_dir: Path,
    lake: str | None,
    fmt: str,
    quiet: bool,
) -> None:
    """Run EVALUATOR (its current version) over a dataset version or past traces, and write its
    results as labels (source judge, author EVALUATOR@vN) through the running server.

    \b
    The same labels as the online rules: a target judged online by this version, or by an
    earlier run, is skipped; an interrupted run (Ctrl-C) continues where it stopped when you
    run the same command again. Dataset items label their trace (and span), with the item's
    expected output given to the evaluator.

    \b
    Exit status:
      0  every target evaluated (pass, fail or not applicable) or done before
      1  some targets could not be evaluated (errors listed; a rerun tries them again)
      2  bad input or the run could not go on: unknown evaluator, no such dataset version,
         spanlake not running at --url

    \b
    Examples:
      spanlake eval run reply_json --dataset refunds@3 --project shop
      spanlake eval run groundedness --since 7d --filter task=answer_ticket --limit 1000
      spanlake eval run slow_answer --since 2025-06-01 --until 2025-06-08 --filter model=gpt-4o-mini
    """
    if (dataset_ref is None) == (since is None):
        raise click.UsageError("give --dataset NAME@VERSION or --since WHEN (e.g. --since 7d), not both")
    if dataset_ref is not None and (until or filters or target != "trace"):
        raise click.UsageError("--until, --filter and --target go with --since (a dataset is evaluated whole)")
    store = open_store(data_dir)
    ev = find_evaluator(store, project, evaluator_name)
    dd = DataDir(data_dir, lake)
    if not dd.has_lake():
        raise Refused(f"no lake at {dd.lake_location}: pass the --data-dir (or --lake) spanlake up uses")
    try:
        if dataset_ref is not None:
            version = resolve(dd, ev.project, DatasetRef.parse(dataset_ref))
            what = f"{version.dataset}@{version.version}"
        else:
            now = datetime.now(UTC)
            tf = parse_trace_filters(ev.project, parse_time(since, now), parse_time(until, now) or now, filters)
            what = f"traces since {since}" + (f" ({', '.join(filters)})" if filters else "")
    except click.BadParameter as e:
        raise Refused(f"--since/--until: {e.message}") from None
    except (ValueError, LookupError) as e:
        raise Refused(str(e)) from None
    poster = LabelPoster(url, os.environ.get(API_KEY_ENV))
    if (why := poster.probe()) is not None:
        poster.close()
        raise Refused(f"no spanlake at {url} ({why}): start it with `spanlake up` or pass --url")
    judges = Judges(data_dir=data_dir, traces_endpoint=f"{url.rstrip('/')}/v1/traces") if ev.is_judge else None
    an = Analytics(Lake(dd))
    label = f"{author(ev.name, ev.version)} over {what}"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, transient=True, disable=quiet, console=Console(stderr=True)) as progress:
            bar = progress.add_task(label, total=None)
            run = OfflineRun(
                ev,
                poster,
                judges=judges,
                on_start=lambda total, done: progress.update(bar, total=total, completed=done),
                on_progress=lambda n: progress.advance(bar, n),
            )
            if dataset_ref is not None:
                summary = run_dataset(an, dd, version, run, limit)
            else:
                summary = run_traces(an, tf, run, target, limit)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: run the same command again to continue where it stopped", err=True)
        sys.exit(130)
    except OfflineError as e:
        raise Refused(str(e)) from None
    except (ValueError, LookupError) as e:  # e.g. an unknown --target category
        raise Refused(str(e)) from None
    finally:
        poster.close()
        if judges is not None:
            judges.close()
    _print_summary(label, summary, fmt)
    sys.exit(EXIT_ERRORS if summary.errors else EXIT_OK)


def _print_summary(label: str, s: Summary, fmt: str) -> None:
    if fmt == "json":
        dump_json(s.as_dict())
        return
    parts = [f"{s.passed} pass", f"{s.failed} fail"]
    if s.scored:
        parts.append(f"{s.scored} scored")
    parts += [f"{s.not_applicable} n/a", f"{s.errors} error(s)"]
    click.echo(
        f"{label}: {s.evaluated} evaluated ({', '.join(parts)}), {s.done_before} done before"
        + (f", {s.unlinked} item(s) without a trace" if s.unlinked else "")
        + f"; {s.labels_written} label(s) written, cost ${s.cost_usd:.4f}, {s.seconds:.1f} s"
    )
    for message in s.error_messages:
        click.echo(f"  error: {message}", err=True)
    if s.errors > len(s.error_messages):
        click.echo(f"  ... and {s.errors - len(s.error_messages)} more", err=True)
