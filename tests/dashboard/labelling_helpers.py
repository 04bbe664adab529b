"""What the labelling tests share (tests/dashboard/test_labelling_*.py; the seeded lake served by a
real collector, `live`, is in conftest.py): the label form, the tables on a page, other reviewers'
labels through the API, and hostile text."""

from __future__ import annotations

from typing import Any

import polars as pl
from streamlit.testing.v1 import AppTest

from spanlake.dashboard import writes
from tests.analytics.traces.seed import trace_hex
from tests.dashboard.conftest import Live

HOSTILE = "<script>window.__xss = 1</script><img src=x onerror=alert(1)> **bold** [link](javascript:alert(1))"
CONTROL = "tab\there\x00nul\x07bell\x1b[31mred\x1b[0m\r\nline\u202eevil"


def fill_label(at: AppTest, key: str, **fields: Any) -> AppTest:
    """Set the label form `key`'s fields (verdict, mode, score, note, expected) and press Save."""
    for name, value in fields.items():
        widget = {"verdict": at.radio, "mode": at.selectbox, "score": at.number_input}.get(name, at.text_area)
        widget(key=f"{key}_{name}").set_value(value)
    return at.button(key=f"{key}_save").click().run()


def frame(at: AppTest, column: str) -> pl.DataFrame:
    """The first table on the page with this column."""
    return pl.from_pandas(next(d.value for d in at.dataframe if column in d.value.columns))


def history(at: AppTest) -> pl.DataFrame:
    return frame(at, "target")


def post_labels(live: Live, labels: list[tuple[int, str, str]]) -> None:
    """(trace number, author, verdict) labels through the API, as other reviewers would."""
    for n, author, verdict in labels:
        writes.post_label("shop", trace_hex(n), None, author, {"verdict": verdict})
    live.flush()
