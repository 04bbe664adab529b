"""The real `google-genai` client through opentelemetry-instrumentation-google-genai (the official
OTel one) → real OTLP exporters → the real collector.

The library cannot share .venv (it needs opentelemetry-util-genai >= 1.x; openai-v2 2.4b0 needs
0.4b0), so the instrumented client (tests/collector/instrumented_gemini.py) runs with the python
of .venv-google-genai, made by scripts/venv-google-genai, against spanlake's fake Gemini server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spanlake.demo.fake_gemini import FakeGemini
from tests.collector.instrumented_runs import Runs, clean_env, collect
from tests.conftest import start_collector

ROOT = Path(__file__).parents[2]
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


@dataclass(frozen=True)
class Config:
    protocol: str
    env: dict[str, str] = field(default_factory=dict)
    metrics: bool = False


CONFIGS = {
    "otel": Config("http", metrics=True),
    "otel_span": Config("grpc", {CAPTURE: "span_only"}),
    "otel_event": Config("http", {CAPTURE: "event_only"}),
}


def _has_library(python: str) -> bool:
    code = "import google.genai, opentelemetry.instrumentation.google_genai, opentelemetry.exporter.otlp.proto.grpc"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def genai_python() -> str:
    """A python with opentelemetry-instrumentation-google-genai: `SPANLAKE_GOOGLE_GENAI_PYTHON`,
    else .venv-google-genai (skips when neither has it; CI fails instead)."""
    local = ROOT / ".venv-google-genai" / "bin" / "python"
    for python in (os.environ.get("SPANLAKE_GOOGLE_GENAI_PYTHON"), str(local)):
        if python and Path(python).exists() and _has_library(python):
            return python
    pytest.skip("opentelemetry-instrumentation-google-genai: run scripts/venv-google-genai")


@pytest.fixture(scope="module")
def runs(genai_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    collector, stop = start_collector(tmp_path_factory.mktemp("gemini-otel") / "data")
    try:
        with FakeGemini() as fake:
            procs = {}
            for name, config in CONFIGS.items():
                endpoint = collector.grpc if config.protocol == "grpc" else collector.http
                argv = [genai_python, "-m", "tests.collector.instrumented_gemini", "otel", "--url", fake.url]
                argv += ["--otlp", endpoint, "--protocol", config.protocol, "--project", name]
                argv += ["--metrics"] if config.metrics else []
                env = clean_env(("OTEL_", "GOOGLE_", "GEMINI_"), config.env)
                procs[name] = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            traces, versions, failures = collect(procs)
        collector.flush()
        yield Runs(collector, traces, versions, failures)
    finally:
        stop()


def test_dump(runs: Runs) -> None:
    print(runs.versions, runs.failures)
    for config in CONFIGS:
        for scenario in ("chat", "stream", "tools", "thinking", "error"):
            rows = runs.collector.query(
                "SELECT * FROM spans WHERE project = ? AND trace_id = ?", [config, runs.trace(config, scenario)]
            )
            for r in rows:
                print("SPAN", config, scenario, {k: v for k, v in r.items() if v is not None})
            logs = runs.collector.query(
                "SELECT * FROM logs WHERE project = ? AND trace_id = ?", [config, runs.trace(config, scenario)]
            )
            for r in logs:
                print("LOG", config, scenario, {k: v for k, v in r.items() if v is not None})
    for r in runs.collector.query("SELECT * FROM metrics"):
        print("METRIC", {k: v for k, v in r.items() if v is not None})
