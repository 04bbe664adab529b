"""spanlake-sdk installs and works alone: no backend package, no backend import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk"
BACKEND_PACKAGES = ("duckdb", "pyarrow", "polars", "fastapi", "streamlit", "uvicorn", "grpcio", "spanlake")
BACKEND_MODULES = ("duckdb", "pyarrow", "polars", "fastapi", "streamlit", "uvicorn", "grpc", "spanlake.collector")
ALLOWED_REQUIRES = {"opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"}

USE_IT = f"""
import sys
import spanlake.sdk as sl
h = sl.setup(endpoint="http://127.0.0.1:9", service_name="alone", project="p", timeout_s=0.5)
@sl.task("t")
def work():
    with sl.prompt("p", "v1"), sl.llm_call("m", "openai") as call:
        call.set_usage(input_tokens=1, output_tokens=1)
    return 7
assert work() == 7
h.flush(0.5)
h.shutdown()
loaded = [m for m in {BACKEND_MODULES!r} if m in sys.modules]
assert not loaded, loaded
print("ok")
"""


def _run(*cmd: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)


def test_importing_the_sdk_loads_no_backend_module() -> None:
    """Even where the backend is installed (this venv), the SDK does not import it."""
    out = _run(sys.executable, "-c", USE_IT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr


def test_sdk_installs_alone_into_a_fresh_venv(tmp_path: Path) -> None:
    start = time.monotonic()
    src = tmp_path / "sdk"
    shutil.copytree(SDK_DIR, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv).check_returncode()
    py = venv / "bin" / "python"
    pip = (py, "-m", "pip", "--disable-pip-version-check", "--no-input")
    install = _run(*pip, "install", "-q", src)
    assert install.returncode == 0, install.stderr

    listed = {p["name"].lower() for p in json.loads(_run(*pip, "list", "--format=json").stdout)}
    assert "spanlake-sdk" in listed
    assert not listed & set(BACKEND_PACKAGES), listed & set(BACKEND_PACKAGES)
    shown = _run(*pip, "show", *BACKEND_PACKAGES)
    assert shown.stdout.strip() == "", shown.stdout
    requires = next(
        line for line in _run(*pip, "show", "spanlake-sdk").stdout.splitlines() if line.startswith("Requires:")
    )
    assert {r.strip() for r in requires.removeprefix("Requires:").split(",")} == ALLOWED_REQUIRES

    used = _run(py, "-c", USE_IT, timeout=60)
    assert used.returncode == 0 and used.stdout.strip().endswith("ok"), used.stderr
    print(f"fresh venv install + use: {time.monotonic() - start:.1f}s")
