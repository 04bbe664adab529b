"""`spanlake labels`: the project's label schema and how much reviewers agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pyarrow as pa

from spanlake.analytics.labels import project_agreement
from spanlake.cli.dataset import api, data_dir_option, project_option, url_option
from spanlake.cli.lake import lake_dir, lake_option
from spanlake.cli.output import print_table
from spanlake.cli.times import parse_time
from spanlake.storage.label_schema import LabelSchemas
from spanlake.storage.reader import Lake


@click.group("labels", context_settings={"max_content_width": 110})
def labels() -> None:
    """Label schema and reviewer agreement (labels themselves come from POST /api/v1/labels and the dashboard).

    \b
    Examples:
      spanlake labels schema --add-failure-mode unsafe_advice --score-range 1,5 --require verdict
      spanlake labels agreement --since 30d
      spanlake labels judge TRACE_ID SPAN_ID --relevant doc-1 --not-relevant doc-7
    """


@labels.command("judge")
@click.argument("trace_id")
@click.argument("span_id")
@click.option("--relevant", "relevant", multiple=True, help="A relevant document id (repeatable).")
@click.option("--not-relevant", "not_relevant", multiple=True, help="A document id judged not relevant (repeatable).")
@click.option("--source", type=click.Choice(["human", "judge", "api"]), default="human", show_default=True)
@click.option("--author", default=None, envvar="USER", help="Who judges (default: $USER).")
@project_option
@url_option
def judge_cmd(
    trace_id: str,
    span_id: str,
    relevant: tuple[str, ...],
    not_relevant: tuple[str, ...],
    source: str,
    author: str | None,
    project: str,
    url: str,
) -> None:
    """Judge which documents a retrieval span returned are relevant (a label with metadata.relevant).

    The latest judgment of a span wins; `spanlake report retrieval --k 5` shows hit rate and
    precision at k over judged spans (documents not judged count as not relevant).
    """
    if not relevant and not not_relevant:
        raise click.UsageError("judge at least one document: --relevant ID or --not-relevant ID")
    both = set(relevant) & set(not_relevant)
    if both:
        raise click.UsageError(f"judged both relevant and not: {', '.join(sorted(both))}")
    judged = {d: True for d in relevant} | {d: False for d in not_relevant}
    body = {"trace_id": trace_id, "span_id": span_id, "source": source, "author": author, "project": project,
            "metadata": {"relevant": judged}}  # fmt: skip
    click.echo(json.dumps(api(url, "POST", "/labels", body)))


@labels.command("schema")
@click.option("--add-failure-mode", "add", multiple=True, help="Add a failure mode (repeatable).")
@click.option("--remove-failure-mode", "remove", multiple=True, help="Remove a failure mode (repeatable).")
@click.option("--score-range", default=None, metavar="MIN,MAX", help="Allowed scores, e.g. 1,5 ('none' lifts it).")
@click.option("--score-buckets", type=int, default=None, help="Bins of the score range for agreement.")
@click.option("--require", multiple=True, help="Field a reviewer must set (repeatable; 'none' clears the list).")
@click.option("--require-failure-mode-on-fail/--no-require-failure-mode-on-fail", default=None)
@click.option("--author", default=None, envvar="USER", help="Who changes it (default: $USER).")
@project_option
@url_option
@data_dir_option
def schema_cmd(
    add: tuple[str, ...],
    remove: tuple[str, ...],
    score_range: str | None,
    score_buckets: int | None,
    require: tuple[str, ...],
    require_failure_mode_on_fail: bool | None,
    author: str | None,
    project: str,
    url: str,
    data_dir: Path,
) -> None:
    """Show the project's label schema, or change it (changes go through the running spanlake)."""
    if add or remove:
        api(
            url,
            "POST",
            "/label-schema/failure-modes",
            {"add": list(add), "remove": list(remove), "author": author},
            {"project": project},
        )
    changes: dict[str, object] = {}
    if score_range is not None:
        if score_range.strip().lower() == "none":
            changes |= {"score_min": None, "score_max": None}
        else:
            try:
                lo, hi = (float(x) for x in score_range.split(","))
            except ValueError:
                raise click.BadParameter("use MIN,MAX, e.g. 1,5", param_hint="--score-range") from None
            changes |= {"score_min": lo, "score_max": hi}
    if score_buckets is not None:
        changes["score_buckets"] = score_buckets
    if require:
        changes["required"] = [] if [r.lower() for r in require] == ["none"] else list(require)
    if require_failure_mode_on_fail is not None:
        changes["require_failure_mode_on_fail"] = require_failure_mode_on_fail
    if changes:
        for _ in range(10):  # someone else may save in between: read again and retry
            current = api(url, "GET", "/label-schema", query={"project": project})
            body = {k: v for k, v in current.items() if k != "project"} | changes | {"updated_by": author}
            try:
                api(url, "PUT", "/label-schema", body, {"project": project})
                break
            except click.ClickException as e:
                if "(409)" not in e.message:
                    raise
    if add or remove or changes:
        schema = api(url, "GET", "/label-schema", query={"project": project})
    else:
        schema = {"project": project, **LabelSchemas(data_dir).get(project).model_dump(mode="json")}
    click.echo(json.dumps(schema, indent=2))


@labels.command("agreement")
@click.option("--since", default=None, help="Labels set since: a duration ago (30d) or an ISO time.")
@click.option("--until", default=None, help="... and before this time.")
@click.option("--pairs", is_flag=True, help="Also show each pair of reviewers.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@project_option
@data_dir_option
@lake_option
def agreement_cmd(
    since: str | None, until: str | None, pairs: bool, fmt: str, project: str, data_dir: Path, lake: str | None
) -> None:
    """Agreement among human reviewers per label field: percent agreement, Cohen's and Fleiss' kappa."""
    now = datetime.now(UTC)
    dd = lake_dir(data_dir, lake)
    result = project_agreement(
        Lake(dd), project, LabelSchemas(dd).get(project), parse_time(since, now), parse_time(until, now)
    )
    rows = [{k: v for k, v in r.as_dict().items() if k != "pairs"} for r in result.values()]
    if pairs:
        rows = [{"field": f.field, **p.__dict__} for f in result.values() for p in f.pairs]
    print_table(pa.Table.from_pylist(rows), fmt)
