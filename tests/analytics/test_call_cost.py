"""`call_cost`: one call priced as the reports' join prices it (genai-prices' calc_price, overrides)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytest.importorskip("genai_prices")

from genai_prices import Usage, calc_price

from spanlake.analytics.pricing import PriceBook, PriceOverride, call_cost

AT = datetime(2025, 6, 2, 12, tzinfo=UTC)


def test_matches_calc_price_with_cached_tokens() -> None:
    want = calc_price(
        Usage(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000),
        "gpt-4o-mini",
        provider_id="openai",
        genai_request_timestamp=AT,
    ).total_price
    got = call_cost(PriceBook(), "openai", "gpt-4o-mini", AT, 10_000, 2_000, cache_read_tokens=4_000)
    assert got == pytest.approx(float(want), rel=1e-12)


def test_picks_the_context_length_tier_of_the_call() -> None:
    book = PriceBook()
    edge = next(r["tier_hi"] for r in book.rows("gcp.gemini", "gemini-1.5-pro") if r["tier_hi"] < 2**62)
    for n in (edge, edge + 1):
        want = calc_price(
            Usage(input_tokens=n, output_tokens=1000),
            "gemini-1.5-pro",
            provider_id="google",
            genai_request_timestamp=AT,
        ).total_price
        assert call_cost(book, "gcp.gemini", "gemini-1.5-pro", AT, n, 1000) == pytest.approx(float(want), rel=1e-12)


def test_override_with_reasoning_and_request_price_and_unpriced_models() -> None:
    book = PriceBook(
        overrides=[
            PriceOverride(model="acme-*", input_mtok=2.0, output_mtok=8.0, reasoning_mtok=16.0, request_price=0.01)
        ],
        use_database=False,
    )
    # 1000 input at 2, (500 - 100) output at 8, 100 reasoning at 16, per million; plus 0.01 a call
    assert call_cost(book, "acme", "acme-1", AT, 1000, 500, reasoning_tokens=100) == pytest.approx(
        (1000 * 2 + 400 * 8 + 100 * 16) / 1e6 + 0.01
    )
    assert call_cost(book, "acme", "other", AT, 1000, 500) is None
