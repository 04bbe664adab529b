"""The pytest plugin (entry point `pytest11: spanlake`): a team's test suite runs as an experiment.

    pytest --spanlake-dataset refunds@3 --spanlake-project shop [--spanlake-baseline ID --spanlake-gate gate.toml]

    def test_answer(spanlake_item):                     # once per item of refunds@3
        reply = bot.answer(spanlake_item.input)
        spanlake_item.record(reply)                     # the item's output in the experiment
        assert spanlake_item.expected_output in reply   # the test's verdict is the item's check

Installed with the `spanlake` distribution, so it loads in every pytest run of an environment
that has spanlake: until a dataset is given (`--spanlake-dataset`, or `spanlake_dataset` in the
ini file) it only adds its options to `pytest --help` and the `spanlake_item` fixture (a test
that requests it is skipped). It imports nothing of spanlake until enabled: the experiment
machinery (experiments.pytest_session) takes a second or two to import. See
docs/experiments.md, "In pytest".
"""

from __future__ import annotations

import os
from typing import Any

import pytest

PLUGIN_NAME = "spanlake-experiment"
FIXTURE = "spanlake_item"
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_DATA_DIR = "spanlake-data"
DEFAULT_WAIT_S = 60.0
# ini key -> help; each has an --spanlake-* option of the same name, which wins over it
INI = {
    "spanlake_dataset": "Run the tests that request spanlake_item as an experiment over this dataset (NAME@VERSION).",
    "spanlake_project": "The dataset's project (default: $SPANLAKE_PROJECT, else default).",
    "spanlake_data_dir": "spanlake's data directory, relative to the ini file (default: $SPANLAKE_DATA_DIR, "
    "else ./spanlake-data).",
    "spanlake_endpoint": f"The running spanlake's OTLP/HTTP address (default {DEFAULT_ENDPOINT}).",
    "spanlake_gate": "Gate rules (TOML), relative to the ini file; used when --spanlake-baseline is given.",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spanlake", "spanlake experiments (docs/experiments.md, 'In pytest')")
    group.addoption(
        "--spanlake-dataset",
        metavar="NAME@VERSION",
        help="Record this session as an experiment over a frozen spanlake dataset: every test that requests "
        "the spanlake_item fixture runs once per item. Without it (or the spanlake_dataset ini) the plugin "
        "does nothing.",
    )
    group.addoption("--spanlake-project", metavar="PROJECT", help=INI["spanlake_project"])
    group.addoption("--spanlake-data-dir", metavar="DIR", help="spanlake's data directory (default ./spanlake-data).")
    group.addoption("--spanlake-endpoint", metavar="URL", help=INI["spanlake_endpoint"])
    group.addoption(
        "--spanlake-trace-project",
        metavar="PROJECT",
        help="Project the tests' traces go to (default: <dataset project>-experiments).",
    )
    group.addoption(
        "--spanlake-meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Experiment metadata, on every span (e.g. prompt_version=v2). Repeatable.",
    )
    group.addoption(
        "--spanlake-wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"At the end, wait at most this long for the traces to reach the lake (default {DEFAULT_WAIT_S:g}).",
    )
    group.addoption(
        "--spanlake-baseline",
        metavar="ID",
        help="Gate this session's experiment against the baseline experiment ID at the end; a failing gate "
        "(or not enough data) fails the session.",
    )
    group.addoption("--spanlake-gate", metavar="RULES.toml", help="The gate's rules (docs/experiments.md).")
    for name, text in INI.items():
        parser.addini(name, text, default="")


def _given(config: pytest.Config, name: str) -> str | None:
    """An option's value: the command line's, else the ini file's (a path relative to the ini file)."""
    value = config.getoption(name)
    if value:
        return str(value)
    ini = str(config.getini(name) or "").strip()
    if ini and name in ("spanlake_data_dir", "spanlake_gate") and config.inipath is not None:
        return os.path.join(config.inipath.parent, ini)
    return ini or None


def settings(config: pytest.Config) -> dict[str, Any] | None:
    """The plugin's settings, or None when it is not enabled (no dataset given). A --spanlake-*
    option without a dataset is a usage error."""
    dataset = _given(config, "spanlake_dataset")
    if dataset is None:
        stray = [
            "--" + n.replace("_", "-")
            for n in ("spanlake_baseline", "spanlake_gate", "spanlake_meta", "spanlake_trace_project")
            if config.getoption(n)
        ]
        if stray:
            raise pytest.UsageError(f"{', '.join(stray)}: also give --spanlake-dataset NAME@VERSION")
        return None
    baseline, gate = config.getoption("spanlake_baseline"), _given(config, "spanlake_gate")
    if baseline and not gate:
        raise pytest.UsageError("--spanlake-baseline: also give the rules with --spanlake-gate RULES.toml")
    if config.getoption("spanlake_gate") and not baseline:
        raise pytest.UsageError("--spanlake-gate: also give the baseline experiment with --spanlake-baseline ID")
    if config.getoption("numprocesses", None):
        raise pytest.UsageError("--spanlake-dataset records one experiment from one process: drop -n (pytest-xdist)")
    return {
        "dataset": dataset,
        "project": _given(config, "spanlake_project") or os.environ.get("SPANLAKE_PROJECT") or "default",
        "data_dir": _given(config, "spanlake_data_dir") or os.environ.get("SPANLAKE_DATA_DIR") or DEFAULT_DATA_DIR,
        "endpoint": (_given(config, "spanlake_endpoint") or DEFAULT_ENDPOINT).rstrip("/"),
        "trace_project": config.getoption("spanlake_trace_project"),
        "meta": list(config.getoption("spanlake_meta")),
        "wait_s": config.getoption("spanlake_wait"),
        "baseline": baseline,
        "rules": gate if baseline else None,
    }


def pytest_configure(config: pytest.Config) -> None:
    given = settings(config)
    if given is None:
        return
    # The experiment machinery (DuckDB, Polars, the SDK) takes 1-2 s to import: only when enabled.
    from spanlake.experiments.pytest_session import ExperimentSession  # optional dependency: slow, on demand

    config.pluginmanager.register(ExperimentSession(config, **given), PLUGIN_NAME)


@pytest.fixture
def spanlake_item(request: pytest.FixtureRequest) -> Any:
    """One item of the dataset given with --spanlake-dataset (the test runs once per item):
    `id`, `input`, `expected_output`, `metadata`, `messages`, `variables`, `context`, `item`
    (the DatasetItem), and `record(output)` to store the item's output. Skips the test when no
    dataset is given."""
    session = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if session is None or not hasattr(request, "param"):
        pytest.skip("spanlake_item: no dataset (run pytest with --spanlake-dataset NAME@VERSION)")
    return session.item_for(request.param)
