"""The price table's row layout: one row of flat per-million-token rates over a piece of time,
time of day, input-token tier and service tier (analytics.pricing explains how reports join it).

Shared by the two sources of rows: user overrides (analytics.pricing) and the genai-prices
database (analytics.price_database).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa

FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
DAY_US = 86_400 * 10**6
MAX_TOKENS = 2**63 - 1

PRICE_SCHEMA = pa.schema(
    [
        ("provider", pa.string()),  # '' matches spans without a provider
        ("model", pa.string()),
        ("source", pa.string()),  # 'override' or 'genai-prices'
        ("matched_model", pa.string()),  # the price entry's model id or override pattern
        ("valid_from", pa.timestamp("us", tz="UTC")),  # span start_time in [valid_from, valid_to)
        ("valid_to", pa.timestamp("us", tz="UTC")),
        ("tod_lo_us", pa.int64()),  # UTC time of day of the span start in [tod_lo_us, tod_hi_us)
        ("tod_hi_us", pa.int64()),
        ("tier_lo", pa.int64()),  # input tokens in (tier_lo, tier_hi]
        ("tier_hi", pa.int64()),
        ("service_tier", pa.string()),  # '' = standard price
        ("input_mtok", pa.float64()),
        ("cache_read_mtok", pa.float64()),
        ("cache_write_mtok", pa.float64()),  # 5-minute cache writes (Anthropic), and every other
        ("cache_write_1h_mtok", pa.float64()),  # the 1-hour share of the cache writes
        ("output_mtok", pa.float64()),
        ("reasoning_mtok", pa.float64()),
        ("request_price", pa.float64()),  # USD per call
    ]
)


def midnight(d: date) -> datetime:
    return datetime.combine(d, time(), tzinfo=UTC)


def flat_rates(
    input_mtok: Decimal | None,
    output_mtok: Decimal | None,
    cache_read: Decimal | None,
    cache_write: Decimal | None,
    reasoning: Decimal | None,
    request_kcount: Decimal | None,
    cache_write_1h: Decimal | None = None,
) -> dict[str, float]:
    """Resolve unbilled sub-kinds to their parent's rate (genai-prices' leaf rule): a 1-hour
    cache write without a rate of its own costs the cache-write rate."""
    inp = input_mtok or Decimal(0)
    out = output_mtok or Decimal(0)
    write = inp if cache_write is None else cache_write
    return {
        "input_mtok": float(inp),
        "cache_read_mtok": float(inp if cache_read is None else cache_read),
        "cache_write_mtok": float(write),
        "cache_write_1h_mtok": float(write if cache_write_1h is None else cache_write_1h),
        "output_mtok": float(out),
        "reasoning_mtok": float(out if reasoning is None else reasoning),
        "request_price": float((request_kcount or Decimal(0)) / 1000),
    }


def price_row(
    provider: str,
    model: str,
    source: str,
    matched: str,
    valid_from: datetime,
    valid_to: datetime,
    tod_lo: int,
    tod_hi: int,
    tier_lo: int,
    tier_hi: int,
    service_tier: str,
    rates: dict[str, float],
) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "source": source,
        "matched_model": matched,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "tod_lo_us": tod_lo,
        "tod_hi_us": tod_hi,
        "tier_lo": tier_lo,
        "tier_hi": tier_hi,
        "service_tier": service_tier,
        **rates,
    }
