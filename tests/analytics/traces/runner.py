"""Run the agent app (agent_app.py) for several instrumentation configs, each in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.analytics.traces import agent_app

APP = Path(agent_app.__file__)
TIMEOUT_S = 120


def run_agents(
    configs: list[str], openai_url: str, otlp_http: str, project: str | None = None
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Run each config concurrently against a collector. Returns (config → scenario → trace id,
    config → why it failed); the project is the config name unless `project` is given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))}
    procs = {
        c: subprocess.Popen(
            [sys.executable, str(APP), c, "--openai-url", openai_url, "--otlp", otlp_http, "--project", project or c],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for c in configs
    }
    traces: dict[str, dict[str, str]] = {}
    failures: dict[str, str] = {}
    for c, p in procs.items():
        try:
            out, err = p.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        if p.returncode == 0:
            traces[c] = json.loads(out.strip().splitlines()[-1])
        else:
            failures[c] = f"{c} exited {p.returncode}: {err[-3000:]}"
    return traces, failures
