"""`spanlake dataset`: build eval datasets from labelled traces and export them.

Changes (create, add, remove) go through the running spanlake's API (`--url`; a key in
$SPANLAKE_API_KEY when it requires one), which makes them durable in its write-ahead log;
reads and exports read the lake directly, so they work whether spanlake runs or not.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from spanlake.analytics.dataset_export import FORMATS, ExportOptions, export_bytes, file_name
from spanlake.analytics.datasets import LabelFilter, freeze_dataset, match_items
from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.cli.lake import lake_dir, lake_option
from spanlake.cli.options import API_KEY_ENV, LAKE_HELP
from spanlake.cli.options import data_dir_option as shared_data_dir_option
from spanlake.cli.options import url_option as shared_url_option
from spanlake.cli.output import print_table
from spanlake.cli.times import parse_time
from spanlake.storage.datasets import check_names, list_datasets, members, read_examples, read_version, versions
from spanlake.storage.layout import DEFAULT_PROJECT
from spanlake.storage.reader import Lake

BATCH = 1000

data_dir_option = shared_data_dir_option(LAKE_HELP)
project_option = click.option(
    "--project", default=DEFAULT_PROJECT, show_default=True, envvar="SPANLAKE_PROJECT", help="Project."
)
url_option = shared_url_option("The running spanlake's HTTP address (changes go through its API).")
author_option = click.option("--author", default=None, envvar="USER", help="Who makes the change (default: $USER).")
fmt_option = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")


def api(url: str, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
    """Call the spanlake API; a refusal or an unreachable server is a ClickException."""
    q = urllib.parse.urlencode({k: v for k, v in (query or {}).items() if v is not None})
    full = f"{url.rstrip('/')}/api/v1{path}" + (f"?{q}" if q else "")
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get(API_KEY_ENV):  # when spanlake requires keys (`spanlake keys`)
        headers["Authorization"] = f"Bearer {os.environ[API_KEY_ENV]}"
    req = urllib.request.Request(full, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message")
        except ValueError:
            message = None
        raise click.ClickException(f"spanlake refused ({e.code}): {message or e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise click.ClickException(f"cannot reach spanlake at {url} ({e}); start it with `spanlake up`") from None


def _time(text: str | None, now: datetime) -> datetime | None:
    return parse_time(text, now)


def _item(text: str) -> tuple[str, str | None]:
    trace, _, span = text.strip().lower().partition(":")
    if len(trace) != 32 or (span and len(span) != 16) or not all(c in "0123456789abcdef" for c in trace + span):
        raise click.BadParameter(f"{text!r}: use TRACE_ID (32 hex) or TRACE_ID:SPAN_ID (16 hex)")
    return trace, span or None


def _starts(dd: Any, project: str, trace_ids: list[str]) -> dict[str, datetime]:
    sql = """SELECT trace_id, min(start_time) AS start FROM spans_raw
             WHERE project = $project AND list_contains($ids, trace_id) GROUP BY trace_id"""
    rows = Lake(dd).query(sql, {"project": project, "ids": trace_ids}).to_pylist()
    return {r["trace_id"]: r["start"] for r in rows}


@click.group("dataset", context_settings={"max_content_width": 110})
def dataset() -> None:
    """Eval datasets: named collections of examples built from labelled traces and spans.

    \b
    An example holds the input (messages, prompt variables, retrieved context), the actual
    output, the expected output (from the latest reviewer label), the labels and metadata
    (model, prompt version, link to the trace). `export` freezes a numbered version that
    never changes, then writes it as jsonl, csv, parquet, openai-evals, promptfoo, pytest,
    deepeval or ragas. See docs/datasets.md.

    \b
    Examples:
      spanlake dataset create refunds --description "refund questions that failed"
      spanlake dataset add refunds 4bf92f3577b34da6a3ce929d0e0e4736
      spanlake dataset add refunds --since 7d --verdict fail --failure-mode hallucination
      spanlake dataset export refunds --format pytest --target myapp.bot:answer -o tests/test_refunds.py
    """


@dataset.command("create")
@click.argument("name")
@click.option("--description", default=None, help="What the dataset is for.")
@project_option
@author_option
@url_option
def create_cmd(name: str, description: str | None, project: str, author: str | None, url: str) -> None:
    """Create an empty dataset."""
    api(url, "POST", "/datasets", {"name": name, "project": project, "description": description, "author": author})
    click.echo(f"created dataset {name} in project {project}")


def _filter_options(f: Any) -> Any:
    opts = [
        click.option("--since", default=None, help="Traces that started since: a duration ago (24h, 7d) or ISO time."),
        click.option("--until", default=None, help="... and before this time."),
        click.option("--service", default=None, help="Only this service."),
        click.option("--model", default=None, help="Only traces calling this model."),
        click.option("--outcome", type=click.Choice(["success", "failure", "unknown"]), default=None),
        click.option("--prompt-version", default=None, help="Only this prompt version."),
        click.option("--text", default=None, help="Traces whose content contains this text."),
        click.option("--labelled", is_flag=True, help="Only items with a current label."),
        click.option("--source", type=click.Choice(["human", "user_feedback", "judge", "api"]), default=None),
        click.option("--verdict", type=click.Choice(["pass", "fail"]), default=None),
        click.option("--failure-mode", default=None),
        click.option("--with-expected", is_flag=True, help="Only items with an expected output."),
        click.option(
            "--level",
            type=click.Choice(["trace", "span"]),
            default="trace",
            show_default=True,
            help="trace: add whole traces; span: add each labelled span that matches.",
        ),
        click.option("--limit", type=int, default=1000, show_default=True, help="Add at most this many."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@dataset.command("add")
@click.argument("name")
@click.argument("items", nargs=-1)
@_filter_options
@click.option("--allow-missing", is_flag=True, help="Add ids not (yet) in the lake.")
@click.option("--dry-run", is_flag=True, help="Show what would be added.")
@project_option
@author_option
@url_option
@data_dir_option
@lake_option
def add_cmd(
    name: str,
    items: tuple[str, ...],
    allow_missing: bool,
    dry_run: bool,
    project: str,
    author: str | None,
    url: str,
    data_dir: Path,
    lake: str | None,
    **flt: Any,
) -> None:
    """Add traces or spans: by id (TRACE_ID or TRACE_ID:SPAN_ID), or every one matching the filter options."""
    dd = lake_dir(data_dir, lake)
    filtering = any(v not in (None, False) for k, v in flt.items() if k not in ("level", "limit"))
    if items and filtering:
        raise click.UsageError("give ids or filter options, not both")
    if not items and not filtering:
        raise click.UsageError("give ids to add, or filter options (e.g. --since 7d --verdict fail)")
    if items:
        pairs = [_item(i) for i in items]
        starts = _starts(dd, project, sorted({t for t, _ in pairs}))
        unknown = sorted({t for t, _ in pairs if t not in starts})
        if unknown and not allow_missing:
            raise click.ClickException(f"not in the lake: {', '.join(unknown)} (--allow-missing adds them anyway)")
        payload = [{"trace_id": t, "span_id": s, "trace_start": _iso(starts.get(t))} for t, s in pairs]
        metadata = None
    else:
        payload, metadata = _matching(dd, project, flt)
    if dry_run:
        for p in payload:
            click.echo(p["trace_id"] + (f":{p['span_id']}" if p["span_id"] else ""))
        click.echo(f"{len(payload)} item(s) would be added to {name}")
        return
    for i in range(0, len(payload), BATCH):
        body = {"items": payload[i : i + BATCH], "project": project, "author": author, "metadata": metadata}
        api(url, "POST", f"/datasets/{urllib.parse.quote(name, safe='')}/items", body)
    click.echo(f"added {len(payload)} item(s) to {name}")  # readable once the server answered


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _matching(dd: Any, project: str, flt: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    now = datetime.now(UTC)
    tf = TraceFilters(
        since=_time(flt["since"], now),
        until=_time(flt["until"], now),
        project=project,
        service=flt["service"],
        model=flt["model"],
        outcome=flt["outcome"],
        prompt_version=flt["prompt_version"],
        text=flt["text"],
    )
    lf = LabelFilter(
        labelled=flt["labelled"],
        source=flt["source"],
        verdict=flt["verdict"],
        failure_mode=flt["failure_mode"],
        has_expected_output=flt["with_expected"],
        level=flt["level"],
    )
    rows = match_items(Analytics(Lake(dd)), tf, lf, flt["limit"]).to_dicts()
    payload = [
        {"trace_id": r["trace_id"], "span_id": r["span_id"], "trace_start": _iso(r["trace_start"])} for r in rows
    ]
    shown = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in flt.items() if v not in (None, False)}
    return payload, {"filter": shown}


@dataset.command("remove")
@click.argument("name")
@click.argument("items", nargs=-1, required=True)
@project_option
@author_option
@url_option
def remove_cmd(name: str, items: tuple[str, ...], project: str, author: str | None, url: str) -> None:
    """Remove traces or spans (TRACE_ID or TRACE_ID:SPAN_ID) from a dataset; frozen versions keep them."""
    payload = [{"trace_id": t, "span_id": s} for t, s in map(_item, items)]
    body = {"items": payload, "op": "remove", "project": project, "author": author}
    api(url, "POST", f"/datasets/{urllib.parse.quote(name, safe='')}/items", body)
    click.echo(f"removed {len(payload)} item(s) from {name}")


@dataset.command("list")
@project_option
@click.option("--all-projects", is_flag=True, help="Datasets of every project.")
@fmt_option
@data_dir_option
@lake_option
def list_cmd(project: str, all_projects: bool, fmt: str, data_dir: Path, lake: str | None) -> None:
    """List datasets: size, latest frozen version, when created and changed."""
    print_table(list_datasets(Lake(lake_dir(data_dir, lake)), None if all_projects else project).to_arrow(), fmt)


@dataset.command("show")
@click.argument("name")
@project_option
@fmt_option
@data_dir_option
@lake_option
def show_cmd(name: str, project: str, fmt: str, data_dir: Path, lake: str | None) -> None:
    """Show a dataset's items and its frozen versions."""
    try:
        check_names(project, name)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    dd = lake_dir(data_dir, lake)
    info = list_datasets(Lake(dd), project).filter(dataset=name)
    nums = versions(dd, project, name)
    if info.is_empty() and not nums:
        raise click.ClickException(f"no dataset {name!r} in project {project!r}")
    items = members(Lake(dd), project, name)
    if fmt == "json":
        manifests = [read_version(dd, project, name, n).manifest for n in nums]  # type: ignore[union-attr]
        out = {"info": info.to_dicts()[0] if info.height else None, "versions": manifests, "items": items.to_dicts()}
        click.echo(json.dumps(out, default=str, indent=2))
        return
    if info.height:
        row = info.to_dicts()[0]
        click.echo(f"{name} ({project}): {row['examples']} item(s); {row['description'] or ''}")
    click.echo("versions: " + (", ".join(f"v{n}" for n in nums) or "none frozen yet"))
    print_table(items.to_arrow(), fmt)


@dataset.command("export")
@click.argument("name")
@click.option(
    "--format", "fmt", required=True, help="jsonl, csv, parquet, openai-evals, promptfoo, pytest, deepeval, ragas."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: <name>-v<N>.<ext> here; '-' for stdout).",
)
@click.option("--version", "version", type=int, default=None, help="Export this frozen version (default: freeze now).")
@click.option("--target", default=None, help="pytest: the function to test, package.module:function.")
@click.option(
    "--call",
    type=click.Choice(["text", "messages", "variables"]),
    default="text",
    show_default=True,
    help="pytest: call the target with the input text, the chat messages, or **prompt variables.",
)
@click.option(
    "--match",
    type=click.Choice(["exact", "contains"]),
    default="exact",
    show_default=True,
    help="pytest, promptfoo: how the output must match the expected output.",
)
@click.option("--json", "as_json", is_flag=True, help="promptfoo: write JSON instead of YAML.")
@click.option("--raw-csv", is_flag=True, help="csv: do not prefix cells starting with = + - @ (formula guard).")
@project_option
@author_option
@data_dir_option
@lake_option
def export_cmd(
    name: str,
    fmt: str,
    output: Path | None,
    version: int | None,
    target: str | None,
    call: str,
    match: str,
    as_json: bool,
    raw_csv: bool,
    project: str,
    author: str | None,
    data_dir: Path,
    lake: str | None,
) -> None:
    """Freeze the dataset as a new version (unless nothing changed) and write it in one format."""
    if fmt not in FORMATS:
        raise click.BadParameter(f"{fmt!r}: use one of {', '.join(FORMATS)}", param_hint="--format")
    try:
        check_names(project, name)
        opts = ExportOptions(
            target=target, call=call, match=match, csv_formula_guard=not raw_csv, promptfoo_json=as_json
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    dd = lake_dir(data_dir, lake)
    if version is None:
        try:
            frozen = freeze_dataset(Analytics(Lake(dd)), project, name, author)
        except LookupError as e:
            raise click.ClickException(str(e.args[0])) from None
        v = frozen.version
        state = "froze new version" if frozen.created else "unchanged since"
        click.echo(f"{name}: {state} v{v.version} ({v.manifest['examples']} examples)", err=True)
        if frozen.missing:
            click.echo(f"  {len(frozen.missing)} item(s) left out: their traces are not in the lake", err=True)
    else:
        found = read_version(dd, project, name, version)
        if found is None:
            raise click.ClickException(f"dataset {name!r} has no version {version}")
        v = found
    data = export_bytes(read_examples(dd, v), v.manifest, fmt, opts)
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(data)
        return
    path = output or Path(file_name(name, v.version, fmt, opts))
    path.write_bytes(data)
    click.echo(f"wrote {path} ({fmt}, v{v.version})", err=True)
