"""What the instrumentation tests share (tests/collector/test_instrumentations*.py): one builder
that starts a collector and the fake provider server(s), runs every configuration's instrumented
process at once against them and collects the results into `Runs` (`run_configurations`; each
module says only how to launch its processes, `Launch`), a clean environment for them, and the
docs' "Observed keys" blocks."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import RunningCollector, start_collector

ROOT = Path(__file__).parents[2]


@dataclass
class Runs:
    collector: RunningCollector
    traces: dict[str, dict[str, str]]  # config → scenario → trace id
    versions: dict[str, str]
    failures: dict[str, str]  # config → why its process failed (only its tests fail)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # config → its process's JSON output

    def trace(self, config: str, scenario: str) -> str:
        if config in self.failures:
            pytest.fail(self.failures[config])
        return self.traces[config][scenario]

    def call(self, config: str, scenario: str) -> dict[str, Any]:
        """The library's span for one scenario (the only child of the scenario span)."""
        rows = self.collector.query(
            "SELECT * FROM spans WHERE project = ? AND trace_id = ? AND name NOT LIKE 'scenario %'",
            [config, self.trace(config, scenario)],
        )
        assert len(rows) == 1, [r["name"] for r in rows]
        return rows[0]

    def trace_spans(self, config: str, scenario: str, order_by: str) -> list[dict[str, Any]]:
        """Every span of the scenario's trace, ordered by `order_by` (SQL)."""
        return self.collector.query(
            f"SELECT * FROM spans WHERE project = ? AND trace_id = ? ORDER BY {order_by}",
            [config, self.trace(config, scenario)],
        )

    def observed(self, project: str) -> list[dict[str, Any]]:
        """The project's spans but the scenario spans, by name: what the docs' "Observed keys" list."""
        return self.collector.query(
            "SELECT name, kind, scope_name, attributes, content, events FROM spans "
            "WHERE project = ? AND name NOT LIKE 'scenario %' ORDER BY name",
            [project],
        )


@dataclass
class ScopedRuns(Runs):
    """Runs where a call may have a span of each of several instrumentations (and the client's own)."""

    def spans(self, config: str, scenario: str) -> list[dict[str, Any]]:
        """The scenario's spans other than the scenario span, by instrumentation scope."""
        spans = self.trace_spans(config, scenario, "scope_name")
        return [s for s in spans if not s["name"].startswith("scenario ")]

    def call(self, config: str, scenario: str, scope: str | None = None) -> dict[str, Any]:
        """The scenario's one span (of `scope`)."""
        rows = [r for r in self.spans(config, scenario) if scope is None or r["scope_name"] == scope]
        assert len(rows) == 1, [(r["name"], r["scope_name"]) for r in rows]
        return rows[0]


@dataclass(frozen=True)
class Config:
    """One configuration of an instrumentation test: the library its process runs, the OTLP
    protocol it exports over, and environment variables set for it."""

    library: str
    protocol: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Launch:
    """How to start one configuration's instrumented process. `run_configurations` adds
    `--otlp <endpoint> --protocol <protocol> --project <project>` to `argv`."""

    argv: list[str]
    receiver: str  # "grpc" or "http": the collector endpoint it exports to
    cleared: tuple[str, ...]  # this process's environment variables starting so are not passed on
    env: Mapping[str, str] = field(default_factory=dict)  # set on top
    protocol: str | None = None  # its --protocol (default: `receiver`)
    project: str | None = None  # its --project (default: the configuration's name)
    cwd: Path = ROOT


F = TypeVar("F")
C = TypeVar("C")
R = TypeVar("R", bound=Runs)


@contextmanager
def run_configurations(
    data_dir: Path,
    fakes: AbstractContextManager[F],
    configs: Mapping[str, C],
    launch: Callable[[F, str, C], Launch],
    runs: Callable[..., R] = Runs,
) -> Iterator[R]:
    """A collector on `data_dir` and the fake server(s) `fakes`; every configuration's process,
    `launch(<what fakes gives>, name, config)`, run at once and collected (120 s each); yields
    `runs(collector, traces, versions, failures, outputs)` once the collector has flushed."""
    collector, stop = start_collector(data_dir)
    try:
        with fakes as fake:
            procs = {}
            for name, config in configs.items():
                how = launch(fake, name, config)
                endpoint = collector.grpc if how.receiver == "grpc" else collector.http
                argv = [*how.argv, "--otlp", endpoint, "--protocol", how.protocol or how.receiver]
                argv += ["--project", how.project or name]
                env = clean_env(how.cleared, how.env)
                procs[name] = subprocess.Popen(
                    argv, env=env, cwd=how.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            collected = collect(procs)
        collector.flush()
        yield runs(collector, *collected)
    finally:
        stop()


def clean_env(prefixes: tuple[str, ...], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without variables starting with `prefixes`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **(extra or {})}


def collect(
    procs: Mapping[str, subprocess.Popen[bytes]],
) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, str], dict[str, dict[str, Any]]]:
    """(traces, versions, failures, outputs) of the instrumented client processes, one per config;
    a process that fails or hangs (120 s) fails only its own config's tests."""
    traces, versions, failures, outputs = {}, {}, {}, {}
    for config, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode != 0:
            failures[config] = f"{config}: instrumented client failed:\n{err.decode()[-4000:]}"
            continue
        outputs[config] = result = json.loads(out)
        traces[config] = result["traces"]
        versions.update(result["versions"])
    return traces, versions, failures, outputs


_INDEX = re.compile(r"\.\d+\.")


def observed_keys(values: Iterable[str | None]) -> str:
    """The keys of JSON objects (list indexes as `.N.`), sorted, as Markdown code spans; or `none`."""
    keys = sorted({_INDEX.sub(".N.", k) for v in values if v for k in json.loads(v)})
    return ", ".join(f"`{k}`" for k in keys) or "none"


def check_docs_block(doc: Path, begin: str, end: str, observed: str) -> None:
    """Fail unless `doc` holds `observed` between the markers; SPANLAKE_REGEN_DOCS=1 writes it there."""
    block = f"{begin}\n{observed}{end}"
    text = doc.read_text()
    head, found, rest = text.partition(begin)
    assert found, f"{doc.name} has no {begin} marker"
    _, _, tail = rest.partition(end)
    if os.environ.get("SPANLAKE_REGEN_DOCS") == "1":
        doc.write_text(head + block + tail)
        text = doc.read_text()
    assert block in text, f"{doc.name} is stale: rerun with SPANLAKE_REGEN_DOCS=1"


def observed_lines(spans: Sequence[Mapping[str, Any]], *, names: bool = True, indent: str = "") -> list[str]:
    """The docs' lines of `spans`: their names (kind, scope) unless not `names`, their attribute and
    content keys, and their span events."""
    events = sorted({e["name"] for s in spans for e in json.loads(s["events"] or "[]")})
    named = sorted({f"`{s['name']}` ({s['kind']}, scope `{s['scope_name']}`)" for s in spans}) if names else []
    return [f"- spans: {', '.join(named)}"] * names + [
        f"{indent}- attributes: " + observed_keys(s["attributes"] for s in spans),
        f"{indent}- content (`content` column): " + observed_keys(s["content"] for s in spans),
        f"{indent}- span events: " + (", ".join(f"`{e}`" for e in events) or "none"),
    ]


def check_observed(runs: Runs, doc: Path, begin: str, end: str, observed: str) -> None:
    """check_docs_block of this run's library versions, then `observed`."""
    versions = "\n".join(f"- {p} {v}" for p, v in sorted(runs.versions.items()))
    check_docs_block(doc, begin, end, f"Versions:\n\n{versions}\n\n{observed}")
