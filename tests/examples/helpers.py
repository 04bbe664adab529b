"""Reading what an app stored: attributes, content, retrieved documents; running scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def attr(row: dict[str, Any], key: str) -> Any:
    """A span attribute (from the `attributes` JSON column)."""
    return json.loads(row["attributes"] or "{}").get(key)


def content(row: dict[str, Any], key: str) -> Any:
    """A content attribute (from the `content` JSON column), JSON-decoded when it is JSON text."""
    value = json.loads(row["content"] or "{}").get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def document_ids(row: dict[str, Any]) -> list[str]:
    """The ids of a retrieval span's documents, in rank order ([] when none)."""
    return [d["id"] for d in content(row, "gen_ai.retrieval.documents") or []]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without OTEL_* / SPANLAKE_* / OPENAI_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLAKE_", "OPENAI_"))}
    return env | extra


def popen(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[str]:
    """Start `python args...` with pipes."""
    return subprocess.Popen(
        [sys.executable, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout_s: float = 120) -> str:
    """Wait for `proc`; its stdout, or an assertion error with its stderr."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}:\n{err[-4000:]}"
    return out
