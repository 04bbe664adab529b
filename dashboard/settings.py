"""What the dashboard was started with: options after `streamlit run app.py --`, else the
environment. Imported by auth, context and writes (and importing none of them)."""

from __future__ import annotations

import os
import sys

DATA_DIR_ENV = "SPANLAKE_DATA_DIR"
DEFAULT_DATA_DIR = "./spanlake-data"


def arg(flag: str) -> str | None:
    """`flag VALUE` or `flag=VALUE` after `streamlit run app.py --`."""
    args = sys.argv[1:]
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def default_data_dir() -> str:
    """`--data-dir` after `streamlit run app.py --`, else SPANLAKE_DATA_DIR, else ./spanlake-data."""
    return arg("--data-dir") or os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)
