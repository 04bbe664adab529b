"""Fixtures for the dataset tests: the eval tools that consume exports, when they are installed here.

- promptfoo (npm): `SPANLAKE_PROMPTFOO` names a promptfoo executable; else it is installed once
  into ~/.cache/spanlake-tests with `npm install --offline` (from npm's cache only, never the
  network at test time). Neither works → the promptfoo test is skipped, saying why.
- deepeval and ragas (PyPI) are heavy and pull in conflicting pins, so they live in their own
  virtualenv: `SPANLAKE_EVAL_PYTHON` names its python, else `.venv-evaltools` (scripts/eval-tools
  makes it), else this interpreter if it has them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spanlake.demo.fake_openai import FakeOpenAI

PROMPTFOO_VERSION = "0.121"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spanlake-tests"


@pytest.fixture(scope="session")
def promptfoo() -> str:
    """Path to a promptfoo executable (skips when none can be had offline)."""
    given = os.environ.get("SPANLAKE_PROMPTFOO")
    if given:
        return given
    folder = CACHE / f"promptfoo-{PROMPTFOO_VERSION}"
    exe = folder / "node_modules" / ".bin" / "promptfoo"
    if exe.exists():
        return str(exe)
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("promptfoo: npm is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        npm,
        "install",
        "--offline",
        "--no-audit",
        "--no-fund",
        "--prefix",
        str(folder),
        f"promptfoo@{PROMPTFOO_VERSION}",
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("promptfoo: npm install --offline took over 10 minutes")
    if done.returncode != 0 or not exe.exists():
        pytest.skip(
            f"promptfoo: not in npm's offline cache (npm install promptfoo once to cache it): {done.stderr[-300:]}"
        )
    return str(exe)


def _has(python: str, modules: str) -> bool:
    code = f"import {modules}"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def eval_python() -> str:
    """A python with deepeval and ragas importable (skips when there is none)."""
    local = Path(__file__).resolve().parents[2] / ".venv-evaltools" / "bin" / "python"  # scripts/eval-tools
    for python in (os.environ.get("SPANLAKE_EVAL_PYTHON"), str(local) if local.exists() else None, sys.executable):
        if python and _has(python, "deepeval, ragas"):
            return python
    pytest.skip("deepeval/ragas not installed: run scripts/eval-tools, or set SPANLAKE_EVAL_PYTHON")


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()
