"""Model prices: the `genai-prices` database, user overrides, and a price table for SQL joins.

Cost is computed when a report runs, never stored, so a corrected price fixes history.
`PriceBook.table(pairs)` resolves each distinct (provider, model) seen in a query window
once, in Python, into a few rows of per-million-token rates; reports register that Arrow
table in their DuckDB connection and join it (see `COST_SQL`). Rows are piecewise over
time (dated price changes, time-of-day discounts), input-token tiers (context-length
pricing) and service tiers, so the join reproduces `genai_prices.calc_price` exactly for
the token kinds the lake has.

Token rule (OTel meaning, enforced by the columns): cache read and cache write tokens are
subsets of input tokens, 1-hour cache writes a subset of cache writes, reasoning tokens a
subset of output tokens. A span costs

    (input - cache_read - cache_write) * input_rate + cache_read * cache_read_rate
    + cache_write * cache_write_rate + cache_write_1h * (cache_write_1h_rate - cache_write_rate)
    + (output - reasoning) * output_rate + reasoning * reasoning_rate + request_price

where a rate the provider does not bill separately is the rate of its parent kind (as
genai-prices does), except that a Claude model billed Anthropic's way has a 1-hour
cache-write rate of 2x input when no source gives one (analytics.price_database,
`cache_write_1h_rate`). A (provider, model) with no price resolves to no rows: it is
reported as unpriced, never as zero.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow as pa

from spanlake.analytics.price_database import PROVIDER_IDS, anthropic_priced, cache_write_1h_rate, database_rows
from spanlake.analytics.price_rows import (
    DAY_US,
    FAR_FUTURE,
    FAR_PAST,
    MAX_TOKENS,
    PRICE_SCHEMA,
    flat_rates,
    midnight,
    price_row,
)

# Span attributes naming the service tier a call was billed at (OpenAI, OTel).
SERVICE_TIER_KEYS = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
)
KEY_SEP = "\x1f"


@dataclass(frozen=True)
class PriceOverride:
    """A user's price for models matching `model` (exact name or `*` pattern, case-insensitive).

    Rates are USD per million tokens. Omitted cache or reasoning rates default to the input
    or output rate; an omitted 1-hour cache-write rate to the cache-write rate, or for a
    Claude model billed Anthropic's way (its cache-write rate 1.25x input) to 2x input.
    `valid_from` dates a price: several overrides for one model form a history, each
    applying from its date until the next one.
    """

    model: str
    input_mtok: float
    output_mtok: float
    provider: str | None = None
    cache_read_mtok: float | None = None
    cache_write_mtok: float | None = None
    cache_write_1h_mtok: float | None = None
    reasoning_mtok: float | None = None
    request_price: float = 0.0
    valid_from: date | None = None

    def matches(self, provider: str, model: str) -> bool:
        if self.provider is not None and self.provider.lower() != provider.lower():
            return False
        return fnmatch.fnmatchcase(model.lower(), self.model.lower())

    @property
    def is_pattern(self) -> bool:
        return any(c in self.model for c in "*?[")


def load_overrides(path: str | Path) -> list[PriceOverride]:
    """Read overrides from a TOML file (`[[price]]` tables) or JSON (`{"prices": [...]}` or a list)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        doc: Any = json.loads(p.read_text())
        entries = doc if isinstance(doc, list) else doc.get("prices", doc.get("price", []))
    else:
        doc = tomllib.loads(p.read_text())
        entries = doc.get("price", doc.get("prices", []))
    allowed = {f.name for f in fields(PriceOverride)}
    out = []
    for i, e in enumerate(entries):
        unknown = set(e) - allowed
        if unknown:
            raise ValueError(f"{p}: price entry {i}: unknown keys {sorted(unknown)}")
        e = dict(e)
        if isinstance(e.get("valid_from"), str):
            e["valid_from"] = date.fromisoformat(e["valid_from"])
        if isinstance(e.get("valid_from"), datetime):
            e["valid_from"] = e["valid_from"].date()
        out.append(PriceOverride(**e))
    return out


@dataclass
class PriceBook:
    """Resolves (provider, model) to price rows: overrides first, then genai-prices' bundled data.

    genai-prices ships its data inside the package; nothing is fetched at run time.
    """

    overrides: list[PriceOverride] = field(default_factory=list)
    use_database: bool = True
    _cache: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_file(cls, path: str | Path | None, **kwargs: Any) -> PriceBook:
        """A price book with the overrides of `path` (None or a missing file: none)."""
        overrides = load_overrides(path) if path is not None and Path(path).is_file() else []
        return cls(overrides=overrides, **kwargs)

    def add_override(self, override: PriceOverride) -> None:
        """Add (or, appended last, take precedence with) a user price."""
        self.overrides.append(override)
        self._cache.clear()

    def rows(self, provider: str | None, model: str) -> list[dict[str, Any]]:
        """Price rows for one (provider, model); empty when the model has no price."""
        key = (provider or "", model)
        if key not in self._cache:
            self._cache[key] = self._resolve(*key)
        return self._cache[key]

    def is_priced(self, provider: str | None, model: str) -> bool:
        return bool(self.rows(provider, model))

    def table(self, pairs: Iterable[tuple[str | None, str | None]]) -> pa.Table:
        """The price table (PRICE_SCHEMA) for these (provider, model) pairs."""
        rows: list[dict[str, Any]] = []
        for provider, model in sorted({(p or "", m) for p, m in pairs if m}):
            rows.extend(self.rows(provider, model))
        return pa.Table.from_pylist(rows, schema=PRICE_SCHEMA)

    @staticmethod
    def service_tier_keys(table: pa.Table) -> list[str]:
        """`provider␟model␟tier` for each non-standard service tier in a price table."""
        keys = set()
        for r in table.select(["provider", "model", "service_tier"]).to_pylist():
            if r["service_tier"]:
                keys.add(KEY_SEP.join((r["provider"], r["model"], r["service_tier"])))
        return sorted(keys)

    @staticmethod
    def tier_models(table: pa.Table) -> list[str]:
        """`provider␟model` for each model whose price depends on the service tier."""
        return sorted({k.rsplit(KEY_SEP, 1)[0] for k in PriceBook.service_tier_keys(table)})

    # --- resolution ---------------------------------------------------------------------

    def _resolve(self, provider: str, model: str) -> list[dict[str, Any]]:
        rows = self._override_rows(provider, model)
        if rows or not self.use_database:
            return rows
        return database_rows(provider, model)

    def _override_rows(self, provider: str, model: str) -> list[dict[str, Any]]:
        matching = [o for o in self.overrides if o.matches(provider, model)]
        if not matching:
            return []
        exact = [o for o in matching if not o.is_pattern]
        chosen = exact or [o for o in matching if o.model == matching[-1].model]
        by_date: dict[date | None, PriceOverride] = {}
        for o in chosen:  # a later entry for the same date wins
            by_date[o.valid_from] = o
        dated = sorted(by_date.items(), key=lambda kv: kv[0] or date.min)
        anthropic = anthropic_priced(PROVIDER_IDS.get(provider.lower(), provider.lower()), model)
        rows = []
        for i, (start, o) in enumerate(dated):
            valid_from = FAR_PAST if i == 0 or start is None else midnight(start)
            end = dated[i + 1][0] if i + 1 < len(dated) else None
            valid_to = midnight(end) if end is not None else FAR_FUTURE
            inp, write = Decimal(str(o.input_mtok)), _decimal(o.cache_write_mtok)
            rates = flat_rates(
                inp,
                Decimal(str(o.output_mtok)),
                _decimal(o.cache_read_mtok),
                write,
                _decimal(o.reasoning_mtok),
                Decimal(str(o.request_price)) * 1000,
                cache_write_1h_rate(inp, write, _decimal(o.cache_write_1h_mtok), anthropic),
            )
            rows.append(
                price_row(
                    provider, model, "override", o.model, valid_from, valid_to, 0, DAY_US, -1, MAX_TOKENS, "", rates
                )
            )
        return rows


def _decimal(rate: float | None) -> Decimal | None:
    return None if rate is None else Decimal(str(rate))


def database_version() -> str:
    """Version of the bundled genai-prices data (shown in reports)."""
    return f"genai-prices {version('genai-prices')}"


def call_cost(
    book: PriceBook,
    provider: str | None,
    model: str,
    at: datetime,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float | None:
    """The USD cost of one call at `at` (UTC), as the reports' join prices it (standard service
    tier, the module docstring's formula); None when the model has no price."""
    at_us = int(at.timestamp() * 1_000_000)
    tod = at_us % DAY_US
    for r in book.rows(provider, model):
        if (
            r["service_tier"] == ""
            and r["valid_from"] <= at < r["valid_to"]
            and r["tod_lo_us"] <= tod < r["tod_hi_us"]
            and r["tier_lo"] < input_tokens <= r["tier_hi"]
        ):
            fresh = max(input_tokens - cache_read_tokens, 0) * r["input_mtok"]
            cached = cache_read_tokens * r["cache_read_mtok"]
            out = max(output_tokens - reasoning_tokens, 0) * r["output_mtok"] + reasoning_tokens * r["reasoning_mtok"]
            return (fresh + cached + out) / 1e6 + r["request_price"]
    return None
