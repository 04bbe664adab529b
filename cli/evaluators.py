"""`spanlake evaluators`: declare, inspect and measure evaluators (`spanlake eval run` runs one
offline: cli/eval_run.py).

Evaluators live in `<data-dir>/evaluators.toml` (evaluators.evaluators_file); the commands edit
it under a lock and keep its comments, and a running server reloads it. Bad input exits with
code 2.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import click
import httpx

from spanlake.cli.lake import lake_option
from spanlake.cli.options import API_KEY_ENV, Refused, data_dir_option, format_option, url_option
from spanlake.cli.output import dump_json, print_doc, print_rows
from spanlake.evaluators import alignment as alignment_mod
from spanlake.evaluators.definition import KINDS, Evaluator, EvaluatorError, EvaluatorSet
from spanlake.evaluators.evaluators_file import EvaluatorsFile
from spanlake.evaluators.external import is_external
from spanlake.evaluators.result import author
from spanlake.evaluators.versions import VersionRegistry
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir
from spanlake.storage.reader import Lake

DEFAULT_PROJECT_ENV = "SPANLAKE_DEFAULT_PROJECT"  # as `spanlake up --default-project`
BASE_KEYS = ("name", "kind", "project", "description", "decides_outcome")

evaluators_data_dir = data_dir_option(
    "Data directory whose evaluators.toml holds the evaluators (and whose lake is read)."
)
evaluator_project = click.option(
    "--project", default=None, help=f"The evaluator's project (default: ${DEFAULT_PROJECT_ENV} or 'default')."
)


def open_store(data_dir: Path) -> EvaluatorsFile:
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


def find_evaluator(store: EvaluatorsFile, project: str | None, name: str) -> Evaluator:
    found = _current(store)
    p = _project_of(store, project)
    try:
        return found.get(p, name)
    except KeyError:
        have = ", ".join(e.name for e in found.for_project(p)) or "none"
        raise Refused(
            f"no evaluator {name!r} in project {p!r} (it has: {have}); see `spanlake evaluators list`"
        ) from None


def judged_version(
    store: EvaluatorsFile, project: str | None, name: str, version: int | None
) -> tuple[str, str, int | None]:
    """(project, evaluator, version) that NAME means: a declared evaluator (its current version
    unless `version`), or the results the app sent (`NAME@otel`: one evaluator, no versions)."""
    if is_external(name):
        if version is not None:
            raise Refused(f"{name} holds results your app sent: they have no versions (drop --version)")
        return _project_of(store, project), name, None
    e = find_evaluator(store, project, name)
    return e.project, e.name, version or e.version


def _title(name: str, version: int | None) -> str:
    return name if version is None else author(name, version)


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
@evaluators_data_dir
@click.option("--project", default=None, help="Only this project's evaluators.")
@format_option
def list_cmd(data_dir: Path, project: str | None, fmt: str) -> None:
    """List the evaluators (from evaluators.toml) with their current version."""
    store = open_store(data_dir)
    found = [e for e in _current(store).evaluators if project is None or e.project == project]
    if fmt == "json":
        dump_json([_definition(e) for e in found])
        return
    if not found:
        click.echo(f"no evaluators in {store.path}; add one with `spanlake evaluators add`")
        return
    rows = [{"project": e.project, "name": e.name, "kind": e.kind, "version": f"v{e.version}",
             "decides outcome": "yes" if e.decides_outcome else "", "description": e.description}
            for e in found]  # fmt: skip
    print_rows(rows)


@evaluators.command("show")
@evaluators_data_dir
@click.argument("name")
@evaluator_project
@format_option
def show_cmd(data_dir: Path, name: str, project: str | None, fmt: str) -> None:
    """Show an evaluator's definition and its versions."""
    store = open_store(data_dir)
    e = find_evaluator(store, project, name)
    doc = _definition(e) | {"versions": VersionRegistry(data_dir).history(e.project, e.name)}
    if fmt == "json":
        dump_json(doc)
        return
    print_doc(
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
@evaluators_data_dir
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
@evaluator_project
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
    store = open_store(data_dir)
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
@evaluators_data_dir
@click.argument("name")
@evaluator_project
def remove_cmd(data_dir: Path, name: str, project: str | None) -> None:
    """Remove an evaluator (its labels stay in the lake)."""
    store = open_store(data_dir)
    try:
        gone = store.remove_evaluator(_project_of(store, project), name)
    except (EvaluatorError, LookupError) as e:
        message = e.args[0] if e.args else str(e)
        raise Refused(f"{message}; see `spanlake evaluators list`") from None
    click.echo(f"removed evaluator {gone.name!r} of project {gone.project!r}")


@evaluators.command("versions")
@evaluators_data_dir
@click.argument("name")
@evaluator_project
@format_option
def versions_cmd(data_dir: Path, name: str, project: str | None, fmt: str) -> None:
    """List an evaluator's versions: each definition it had, and when it was first seen."""
    store = open_store(data_dir)
    e = find_evaluator(store, project, name)
    rows = [dict(h) | {"current": h.get("version") == e.version}
            for h in VersionRegistry(data_dir).history(e.project, e.name)]  # fmt: skip
    if fmt == "json":
        dump_json(rows)
        return
    print_rows(rows, f"{e.project}/{e.name}")


@evaluators.command("status")
@url_option()
@format_option
def status_cmd(url: str, fmt: str) -> None:
    """The server's online evaluation: backlog, cursor, last cycle, retries, per-evaluator counts
    and errors, and whether evaluators.toml parses."""
    doc = _get(url, "/evaluators/status")
    if fmt == "json":
        dump_json(doc)
        return
    print_doc(doc, "online evaluation")


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
@evaluators_data_dir
@lake_option
@click.argument("name")
@evaluator_project
@click.option("--version", "version", type=click.IntRange(1), default=None, help="This version (default: current).")
@click.option("--by", type=click.Choice(["week"]), default=None, help="Also per ISO week of the label time.")
@format_option
def alignment_cmd(
    data_dir: Path, lake: str | None, name: str, project: str | None, version: int | None, by: str | None, fmt: str
) -> None:
    """How often the evaluator agrees with your reviewers, on the items both labelled.

    Against the current human label of each item: the confusion matrix of verdicts, Cohen's
    kappa, the judge's precision and recall on "fail" (a person's fail is the positive), the
    Spearman correlation of scores, and the number of items. A figure that is undefined (too
    few items, one class only) is empty. NAME@otel: the results your app sent under NAME
    (gen_ai.evaluation.result events).
    """
    store = open_store(data_dir)
    p, name, v = judged_version(store, project, name, version)
    every = alignment_mod.project_alignment(_lake(data_dir, lake), p)
    found = next((a.as_dict() for a in every if a.evaluator == name and a.version == v), None)
    if found is not None and by is None:
        found.pop("weeks")
    doc = {"project": p, "evaluator": name, "version": v, "alignment": found}
    if fmt == "json":
        dump_json(doc)
        return
    if found is None:
        click.echo(f"{_title(name, v)} has no results in {p} yet")
        return
    print_doc(found, f"{_title(name, v)} against people ({p})")


@evaluators.command("disagreements")
@evaluators_data_dir
@lake_option
@click.argument("name")
@evaluator_project
@click.option("--version", "version", type=click.IntRange(1), default=None, help="This version (default: current).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@format_option
def disagreements_cmd(
    data_dir: Path, lake: str | None, name: str, project: str | None, version: int | None, limit: int, fmt: str
) -> None:
    """The items where the evaluator's verdict and a person's differ: trace (and span), both
    verdicts, the judge's score and reason, the person's comment. NAME@otel: the results your
    app sent under NAME."""
    store = open_store(data_dir)
    p, name, v = judged_version(store, project, name, version)
    found = alignment_mod.project_disagreements(_lake(data_dir, lake), p, name, v, limit=limit)
    if fmt == "json":
        dump_json({"project": p, "evaluator": name, "version": v, "disagreements": found})
        return
    print_doc(found, f"{_title(name, v)}: disagreements with people ({p})")
