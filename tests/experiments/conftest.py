"""Experiments tests: until experiments/stats.py (its own branch) is merged, a private stand-in
(stats_standin.py) is installed under its name, for these tests only."""

from __future__ import annotations

import importlib
import sys

try:
    importlib.import_module("spanlake.experiments.stats")
except ModuleNotFoundError:
    from tests.experiments import stats_standin

    sys.modules["spanlake.experiments.stats"] = stats_standin
