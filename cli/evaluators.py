"""`spanlake evaluators` (declare, inspect, measure evaluators) and `spanlake eval run` (offline
and backfill runs).

Evaluators live in `<data-dir>/evaluators.toml` (evaluators.evaluators_file); the commands edit
it under a lock and keep its comments, and a running server reloads it. `eval run` reads the
lake directly and posts its results as labels to the running server (`--url`; a key in
$SPANLAKE_API_KEY when it requires one). Bad input exits with code 2; `eval run` exits 1 when
some targets could not be evaluated.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from spanlake.analytics.runner import Analytics
from spanlake.cli.dataset import API_KEY_ENV, DEFAULT_URL
from spanlake.cli.lake import lake_option
from spanlake.cli.options import data_dir_option
from spanlake.cli.report import _parse_time
from spanlake.evaluators import alignment as alignment_mod
from spanlake.evaluators.definition import KINDS, Evaluator, EvaluatorError, EvaluatorSet
from spanlake.evaluators.evaluators_file import EvaluatorsFile
from spanlake.evaluators.offline import LabelPoster, OfflineError, OfflineRun, Summary, run_dataset, run_traces
from spanlake.evaluators.offline import trace_filters as parse_trace_filters
from spanlake.evaluators.result import author
from spanlake.evaluators.run import Judges
from spanlake.evaluators.versions import VersionRegistry
from spanlake.experiments.items import DatasetRef, resolve
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir
from spanlake.storage.reader import Lake

DEFAULT_PROJECT_ENV = "SPANLAKE_DEFAULT_PROJECT"  # as `spanlake up --default-project`
EXIT_OK, EXIT_ERRORS, EXIT_REFUSED = 0, 1, 2
BASE_KEYS = ("name", "kind", "project", "description", "decides_outcome")

_data_dir = data_dir_option("Data directory whose evaluators.toml holds the evaluators (and whose lake is read).")
_format = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
_project = click.option(
    "--project", default=None, help=f"The evaluator's project (default: ${DEFAULT_PROJECT_ENV} or 'default')."
)
_url = click.option(
    "--url",
    default=DEFAULT_URL,
    show_default=True,
    envvar="SPANLAKE_URL",
    show_envvar=True,
    help="The running spanlake's HTTP address.",
)


class Refused(click.ClickException):
    """Bad input, or the command could not run: exit code 2."""

    exit_code = EXIT_REFUSED


def _store(data_dir: Path) -> EvaluatorsFile:
    return EvaluatorsFile(data_dir, os.environ.get(DEFAULT_PROJECT_ENV) or DEFAULT_PROJECT)


def _current(store: EvaluatorsFile) -> EvaluatorSet:
    """The file's evaluators (versions assigned); a broken file is refused, naming the line."""
    try:
        found = store.current()
    except EvaluatorError as e:
        raise Refused(f"{e}\nFix {store.path} by hand.") from None
    if getattr(store, "error", None):
        raise Refused(f"{store.error}\nFix {store.path} by hand (a running server keeps its last good evaluators).")
    return found


def _project_of(store: EvaluatorsFile, project: str | None) -> str:
    return project or store.default_project


def _evaluator(store: EvaluatorsFile, project: str | None, name: str) -> Evaluator:
    found = _current(store)
    p = _project_of(store, project)
    try:
        return found.get(p, name)
    except KeyError:
        have = ", ".join(e.name for e in found.for_project(p)) or "none"
        raise Refused(
            f"no evaluator {name!r} in project {p!r} (it has: {have}); see `spanlake evaluators list`"
        ) from None


def _jsonable(v: Any) -> Any:
    """Plain JSON values from dataclasses, data frames, mappings and times."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if hasattr(v, "to_dicts"):  # a polars DataFrame
        return [_jsonable(r) for r in v.to_dicts()]
    if hasattr(v, "as_dict"):
        return _jsonable(v.as_dict())
    if isinstance(v, dict) or hasattr(v, "items"):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_jsonable(x) for x in v]
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


def _dump(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(_jsonable(doc), option=orjson.OPT_INDENT_2).decode() + "\n")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return orjson.dumps(_jsonable(v)).decode()
    return str(v)


def _print_rows(rows: list[dict[str, Any]], title: str | None = None) -> None:
    table = Table(title=title)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    for col in columns:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in columns))
    Console().print(table)


def _print_doc(doc: Any, title: str, name: str = "figure") -> None:
    """A document as tables: its plain figures as name/value rows, each list of rows as a table."""
    doc = _jsonable(doc)
    if isinstance(doc, list):
        if doc:
            _print_rows(doc, title)
        else:
            click.echo(f"{title}: none")
        return
    plain = [{name: k, "value": v} for k, v in doc.items() if not isinstance(v, list)]
    if plain:
        _print_rows(plain, title)
    for k, v in doc.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            _print_rows(v, k)


def _definition(e: Evaluator) -> dict[str, Any]:
    return {"name": e.name, "project": e.project, "kind": e.kind, "version": e.version,
            "author": author(e.name, e.version), "decides_outcome": e.decides_outcome,
            "description": e.description, "params": dict(e.params)}  # fmt: skip


# --- spanlake evaluators --------------------------------------------------------------------


@click.group("evaluators", context_settings={"max_content_width": 110})
def evaluators() -> None:
    """Evaluators: code checks and LLM judges that label traces, spans and dataset items.

    \b
    Each evaluator has a name and a version (a changed definition is a new version); its results
    are labels with source `judge` and author NAME@vN. Rules in the same file run them on
    complete production traces in the server; `spanlake eval run` runs one over a dataset
    version or past traces. Everything is kept in <data-dir>/evaluators.toml, which you may
    also edit by hand (the commands keep your comments). See docs/evaluators.md.

    \b
    Examples:
      spanlake evaluators add reply_json --project shop --kind json_schema \\
          --param 'schema={type="object", required=["answer"]}'
      spanlake evaluators add short --kind threshold --param metric=latency_ms --param max=3000
      spanlake evaluators add groundedness --file groundedness.toml     # an [[evaluator]] table
      spanlake evaluators list
      spanlake evaluators versions groundedness
      spanlake evaluators alignment groundedness --by week        # against your reviewers' labels
      spanlake evaluators disagreements groundedness              # where a rubric gets fixed
      spanlake evaluators status                                  # the server's online evaluation
      spanlake eval run groundedness --dataset refunds@3
    """


@evaluators.command("list")
@_data_dir
@click.option("--project", default=None, help="Only this project's evaluators.")
@_format
def list_cmd(data_dir: Path, project: str | None, fmt: str) -> None:
    """List the evaluators (from evaluators.toml) with their current version."""
    store = _store(data_dir)
    found = [e for e in _current(store).evaluators if project is None or e.project == project]
    if fmt == "json":
        _dump([_definition(e) for e in found])
        return
    if not found:
        click.echo(f"no evaluators in {store.path}; add one with `spanlake evaluators add`")
        return
    rows = [{"project": e.project, "name": e.name, "kind": e.kind, "version": f"v{e.version}",
             "decides outcome": "yes" if e.decides_outcome else "", "description": e.description}
            for e in found]  # fmt: skip
    _print_rows(rows)


@evaluators.command("show")
@_data_dir
@click.argument("name")
@_project
@_format
def show_cmd(data_dir: Path, name: str, project: str | None, fmt: str) -> None:
    """Show an evaluator's definition and its versions."""
    store = _store(data_dir)
    e = _evaluator(store, project, name)
    doc = _definition(e) | {"versions": VersionRegistry(data_dir).history(e.project, e.name)}
    if fmt == "json":
        _dump(doc)
        return
    _print_doc(
        {k: v for k, v in doc.items() if k != "params"} | {"params": [dict(e.params)]}, f"{e.project}/{e.name}", "field"
    )


def _value(text: str) -> Any:
    """A --param value: a TOML value when it parses as one (0.8, true, [..], {..}, "..."), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _snippet(path: Path) -> dict[str, Any]:
    """One evaluator from a TOML file: an [[evaluator]] table, or its keys at the top level."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise Refused(f"--file {path}: {e}") from None
    tables = doc.get("evaluator", doc)
    if isinstance(tables, list):
        if len(tables) != 1:
            raise Refused(f"--file {path}: holds {len(tables)} [[evaluator]] tables; give one")
        tables = tables[0]
    if not isinstance(tables, dict):
        raise Refused(f"--file {path}: expected an [[evaluator]] table")
    return dict(tables)


@evaluators.command("add")
@_data_dir
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), default=None, help="What it checks (required unless in --file).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter of the kind (repeatable); VALUE is read as TOML when it is one: 0.8, true, "
    "'[\"a\"]', '{type=\"object\"}', else as text. See docs/evaluators.md for each kind's parameters.",
)
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A TOML snippet holding the evaluator (an [[evaluator]] table); the flags override its keys.",
)
@_project
@click.option("--description", default=None, help="A note shown with the evaluator (not part of its version).")
@click.option(
    "--decides-outcome/--no-decides-outcome",
    default=None,
    help="Its verdict decides the task's outcome when no person labelled it.",
)
@click.option("--replace", is_flag=True, help="Replace an evaluator of the same name (else that is an error).")
def add_cmd(
    data_dir: Path,
    name: str,
    kind: str | None,
    params: tuple[str, ...],
    file: Path | None,
    project: str | None,
    description: str | None,
    decides_outcome: bool | None,
    replace: bool,
) -> None:
    """Add an evaluator (or replace one with --replace); a changed definition gets a new version.

    \b
    Examples:
      spanlake evaluators add has_order_id --kind regex --param 'pattern=ORD-\\d+'
      spanlake evaluators add matches --kind fuzzy --param threshold=0.85
      spanlake evaluators add tone --file tone.toml --replace
    """
    raw: dict[str, Any] = _snippet(file) if file is not None else {}
    raw["name"] = name
    for key, value in (("kind", kind), ("project", project), ("description", description)):
        if value is not None:
            raw[key] = value
    if decides_outcome is not None:
        raw["decides_outcome"] = decides_outcome
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r}: use KEY=VALUE", param_hint="--param")
        if key.strip() in BASE_KEYS:
            raise click.BadParameter(f"{key.strip()!r} has its own option", param_hint="--param")
        raw[key.strip()] = _value(value)
    if "kind" not in raw:
        raise click.UsageError("give --kind (or a --file whose evaluator has a kind)")
    store = _store(data_dir)
    try:
        put = store.put_evaluator(raw, create=not replace)
    except (EvaluatorError, LookupError) as e:
        hint = "; use --replace to replace it" if not replace and "exist" in str(e) else ""
        raise Refused(f"{e}{hint}") from None
    e, created = put if isinstance(put, tuple) else (put, True)
    click.echo(
        f"{'added' if created else 'replaced'} evaluator {e.name!r} ({e.kind}) of project {e.project!r} "
        f"in {store.path}" + (f", version {e.version}" if e.version else "")
    )


@evaluators.command("remove")
@_data_dir
@click.argument("name")
@_project
def remove_cmd(data_dir: Path, name: str, project: str | None) -> None:
    """Remove an evaluator (its labels stay in the lake)."""
    store = _store(data_dir)
    try:
        gone = store.remove_evaluator(_project_of(store, project), name)
    except (EvaluatorError, LookupError) as e:
        message = e.args[0] if e.args else str(e)
        raise Refused(f"{message}; see `spanlake evaluators list`") from None
    click.echo(f"removed evaluator {gone.name!r} of project {gone.project!r}")


@evaluators.command("versions")
@_data_dir
@click.argument("name")
@_project
@_format
def versions_cmd(data_dir: Path, name: str, project: str | None, fmt: str) -> None:
    """List an evaluator's versions: each definition it had, and when it was first seen."""
    store = _store(data_dir)
    e = _evaluator(store, project, name)
    rows = [dict(h) | {"current": h.get("version") == e.version}
            for h in VersionRegistry(data_dir).history(e.project, e.name)]  # fmt: skip
    if fmt == "json":
        _dump(rows)
        return
    _print_rows(rows, f"{e.project}/{e.name}")


@evaluators.command("status")
@_url
@_format
def status_cmd(url: str, fmt: str) -> None:
    """The server's online evaluation: backlog, cursor, last cycle, retries, per-evaluator counts
    and errors, and whether evaluators.toml parses."""
    doc = _get(url, "/evaluators/status")
    if fmt == "json":
        _dump(doc)
        return
    _print_doc(doc, "online evaluation")


def _get(url: str, path: str) -> Any:
    headers = {"Authorization": f"Bearer {os.environ[API_KEY_ENV]}"} if os.environ.get(API_KEY_ENV) else {}
    try:
        r = httpx.get(f"{url.rstrip('/')}/api/v1{path}", headers=headers, timeout=60)
    except httpx.HTTPError as e:
        raise Refused(f"cannot reach spanlake at {url} ({e}); start it with `spanlake up` or pass --url") from None
    if r.status_code != 200:
        try:
            message = r.json().get("message")
        except ValueError:
            message = None
        raise Refused(f"spanlake refused ({r.status_code}): {message or r.text[:200]}")
    return r.json()


def _lake(data_dir: Path, lake: str | None) -> Lake:
    dd = DataDir(data_dir, lake)
    if not dd.has_lake():
        raise Refused(f"no lake at {dd.lake_location}: start `spanlake up` or pass --data-dir/--lake")
    return Lake(dd)


@evaluators.command("alignment")
@_data_dir
@lake_option
@click.argument("name")
@_project
@click.option("--version", "version", type=click.IntRange(1), default=None, help="This version (default: current).")
@click.option("--by", type=click.Choice(["week"]), default=None, help="Also per ISO week of the label time.")
@_format
def alignment_cmd(
    data_dir: Path, lake: str | None, name: str, project: str | None, version: int | None, by: str | None, fmt: str
) -> None:
    """How often the evaluator agrees with your reviewers, on the items both labelled.

    Against the current human label of each item: the confusion matrix of verdicts, Cohen's
    kappa, the judge's precision and recall on "fail" (a person's fail is the positive), the
    Spearman correlation of scores, and the number of items. A figure that is undefined (too
    few items, one class only) is empty.
    """
    store = _store(data_dir)
    e = _evaluator(store, project, name)
    v = version or e.version
    every = alignment_mod.project_alignment(_lake(data_dir, lake), e.project)
    found = next((a.as_dict() for a in every if a.evaluator == e.name and a.version == v), None)
    if found is not None and by is None:
        found.pop("weeks")
    doc = {"project": e.project, "evaluator": e.name, "version": v, "alignment": found}
    if fmt == "json":
        _dump(doc)
        return
    if found is None:
        click.echo(f"{author(e.name, v)} has no results in {e.project} yet")
        return
    _print_doc(found, f"{author(e.name, v)} against people ({e.project})")


@evaluators.command("disagreements")
@_data_dir
@lake_option
@click.argument("name")
@_project
@click.option("--version", "version", type=click.IntRange(1), default=None, help="This version (default: current).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@_format
def disagreements_cmd(
    data_dir: Path, lake: str | None, name: str, project: str | None, version: int | None, limit: int, fmt: str
) -> None:
    """The items where the evaluator's verdict and a person's differ: trace (and span), both
    verdicts, the judge's score and reason, the person's comment."""
    store = _store(data_dir)
    e = _evaluator(store, project, name)
    v = version or e.version
    found = alignment_mod.project_disagreements(_lake(data_dir, lake), e.project, e.name, v, limit=limit)
    if fmt == "json":
        _dump({"project": e.project, "evaluator": e.name, "version": v, "disagreements": found})
        return
    _print_doc(found, f"{author(e.name, v)}: disagreements with people ({e.project})")


# --- spanlake eval run ----------------------------------------------------------------------


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
@_project
@_url
@_data_dir
@lake_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
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
    store = _store(data_dir)
    ev = _evaluator(store, project, evaluator_name)
    dd = DataDir(data_dir, lake)
    if not dd.has_lake():
        raise Refused(f"no lake at {dd.lake_location}: pass the --data-dir (or --lake) spanlake up uses")
    try:
        if dataset_ref is not None:
            version = resolve(dd, ev.project, DatasetRef.parse(dataset_ref))
            what = f"{version.dataset}@{version.version}"
        else:
            now = datetime.now(UTC)
            tf = parse_trace_filters(ev.project, _parse_time(since, now), _parse_time(until, now) or now, filters)
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
        _dump(s.as_dict())
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
