"""Experiments: run a candidate app (prompt, model, retrieval setting) over a frozen dataset,
score each item, compare runs item by item with confidence intervals, and gate a release on
the numbers, offline (CI) and on production traffic (a canary next to the current version)."""
