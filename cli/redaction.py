"""`spanlake redaction`: check a rule file and try it on text (see docs/security.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from spanlake.cli.options import data_dir_option
from spanlake.collector.redact import REDACTION_ENV, RedactionError, Redactor, describe, load_rules, redaction_path
from spanlake.collector.redact_rules import ALL, RuleSet
from spanlake.storage.layout import DEFAULT_PROJECT

_data_dir = data_dir_option(
    f"Data directory whose redaction.toml holds the rules (${REDACTION_ENV} names another file)."
)
_file = click.option(
    "--file",
    "rule_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Check this rule file instead of the data directory's.",
)


def _load(data_dir: Path, rule_file: Path | None) -> tuple[Path, RuleSet]:
    path = rule_file.expanduser().resolve() if rule_file else redaction_path(data_dir)
    try:
        return path, load_rules(path)
    except RedactionError as e:
        raise click.ClickException(str(e)) from None


@click.group("redaction")
def redaction() -> None:
    """Redaction rules applied by the collector before anything is stored.

    Rules live in <data-dir>/redaction.toml (or $SPANLAKE_REDACTION_FILE); a running
    collector picks up changes within a second. File format: docs/security.md.
    """


@redaction.command("check")
@_data_dir
@_file
def check(data_dir: Path, rule_file: Path | None) -> None:
    """Validate the rule file and list the rules each project gets (exit 1 when broken)."""
    path, rules = _load(data_dir, rule_file)
    if not path.exists():
        click.echo(f"{path}: no such file, nothing is redacted")
        return
    click.echo(f"{path}: ok, {describe(rules)}")
    if rules.projects and ALL not in rules.projects:
        click.echo(f'projects without a section are not redacted (add [projects."{ALL}"] to cover them)')


@redaction.command("test")
@click.argument("text")
@click.option("--project", default=DEFAULT_PROJECT, show_default=True, help="Whose rules to apply.")
@_data_dir
@_file
def test_text(text: str, project: str, data_dir: Path, rule_file: Path | None) -> None:
    """Print TEXT as the collector would store it for PROJECT ("-" reads standard input)."""
    _, rules = _load(data_dir, rule_file)
    if text == "-":
        text = sys.stdin.read()
    click.echo(rules.redact(text, project))


def redaction_banner(redactor: Redactor) -> str:
    """What `spanlake up` says about redaction at start."""
    rules = redactor.rules()
    if not rules:
        return f"redaction is off: no rules in {redactor.path}"
    return f"redaction is on ({redactor.path}): {describe(rules)}"
