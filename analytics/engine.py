"""Run report SQL over a lake: one DuckDB connection per call, the price table and labels registered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from spanlake.analytics.pricing import PriceBook
from spanlake.analytics.query import MACROS, Params, SpanSource, pairs_sql, span_ctes
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake, fetch_arrow

# Human labels on tasks (the label store does not exist yet): the latest label wins.
LABELS_SCHEMA = pa.schema(
    [
        ("project", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),  # the task span
        ("outcome", pa.string()),  # success | failure | unknown
        ("labeled_at", pa.timestamp("us", tz="UTC")),
    ]
)
LabelSource = Callable[[], pa.Table]


def no_labels() -> pa.Table:
    """The default label source: none yet. Replace with the label store's reader when it exists."""
    return LABELS_SCHEMA.empty_table()


class Analytics:
    """Entry point for reports over one lake.

    `prices` resolves model prices (defaults to genai-prices plus `<data_dir>/prices.toml`
    if present); `labels` returns human task labels as a LABELS_SCHEMA table.
    """

    def __init__(
        self, lake: Lake | str | Path, prices: PriceBook | None = None, labels: LabelSource | None = None
    ) -> None:
        self.lake = lake if isinstance(lake, Lake) else Lake(lake)
        if prices is None:
            prices = PriceBook.from_file(default_prices_path(self.lake.data_dir))
        self.prices = prices
        self.labels = labels or no_labels

    def run(self, src: SpanSource, body: Callable[[Params], str]) -> pl.DataFrame:
        """Run `WITH <span CTEs>, <body>`; `body` adds its own CTEs and final SELECT."""
        con = self.lake.connect()
        try:
            for stmt in MACROS:
                con.execute(stmt)
            pairs: list[dict[str, Any]] = []
            if src.priced:
                p0 = Params()
                pairs = fetch_arrow(con, pairs_sql(src, p0), p0.values).to_pylist()
            table = self.prices.table((r["provider"], r["model"]) for r in pairs)
            con.register("prices", table)
            labels = self.labels()
            con.register("task_labels", labels.cast(LABELS_SCHEMA) if labels.num_rows else LABELS_SCHEMA.empty_table())
            p = Params()
            ctes = span_ctes(src, p, PriceBook.tier_models(table), PriceBook.service_tier_keys(table))
            sql = f"WITH RECURSIVE {ctes},\n{body(p)}"
            return pl.from_arrow(fetch_arrow(con, sql, p.values))  # type: ignore[return-value]
        finally:
            con.close()

    def sql(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """Plain SQL over the lake's views (for tests and ad-hoc checks)."""
        return self.lake.query_polars(sql, params)


def default_prices_path(data_dir: DataDir) -> Path:
    return data_dir.root / "prices.toml"
