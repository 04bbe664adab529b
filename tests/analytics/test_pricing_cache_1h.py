"""The 1-hour cache-write rate of a price row: genai-prices' where it lists one, else derived
for Claude models billed Anthropic's way (2x input where the cache-write rate is 1.25x input:
Anthropic's prompt-caching pricing), else the cache-write rate; overrides may set it.

Expected rates are read here from genai-prices' own data, and costs from its `calc_price`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("genai_prices")

from genai_prices import Usage, calc_price, data_snapshot

from spanlake.analytics.pricing import PriceBook, PriceOverride, load_overrides
from tests.analytics.helpers import call_cost

AT = datetime(2026, 1, 5, 12, tzinfo=UTC)


def listed(provider_id: str, model: str) -> Any:
    """genai-prices' current price of a model (its ModelPrice)."""
    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider_id, None)
    return info.get_prices(AT)


def row(provider: str, model: str, book: PriceBook | None = None) -> dict[str, Any]:
    """The price row of a call at AT (standard tier, below any context-length tier)."""
    rows = (book or PriceBook()).rows(provider, model)
    (r,) = [r for r in rows if r["valid_from"] <= AT < r["valid_to"] and r["service_tier"] == "" and r["tier_lo"] == -1]
    return r


def test_anthropic_models_use_the_listed_rate_which_is_twice_input() -> None:
    model = "claude-sonnet-4-5-20250929"
    price = listed("anthropic", model)  # tiered: above 200k input tokens every rate doubles
    inp, w5m, w1h = (price.input_mtok, price.cache_write_mtok, price.cache_write_1h_mtok)
    assert [w1h.base, *(t.price for t in w1h.tiers)] == [2 * inp.base, *(2 * t.price for t in inp.tiers)]
    assert [w5m.base, *(t.price for t in w5m.tiers)] == [Decimal("1.25") * x for x in (inp.base, inp.tiers[0].price)]
    r = row("anthropic", model)
    assert (r["cache_write_mtok"], r["cache_write_1h_mtok"]) == (3.75, 6.0)  # $3 input
    # 1000 input, of which 100 read, 500 written (300 of them for 1 hour), 50 output
    usage = Usage(input_tokens=1000, cache_read_tokens=100, cache_write_tokens=500, cache_write_1h_tokens=300)
    usage.output_tokens = 50
    want = calc_price(usage, model, provider_id="anthropic", genai_request_timestamp=AT).total_price
    assert call_cost(r, 1000, 100, 500, 50, 0, cw_1h=300) == pytest.approx(float(want), rel=1e-12)
    by_hand = (400 * 3 + 100 * 0.3 + 200 * 3.75 + 300 * 6 + 50 * 15) / 1e6
    assert float(want) == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize(
    ("provider", "provider_id", "model"),
    [
        ("gcp.vertex_ai", "google", "claude-3-5-sonnet"),  # Vertex AI
        ("aws.bedrock", "aws", "global.anthropic.claude-sonnet-4-20250514-v1:0"),  # Bedrock
    ],
)
def test_claude_on_bedrock_and_vertex_derive_it_where_genai_prices_lacks_it(
    provider: str, provider_id: str, model: str
) -> None:
    price = listed(provider_id, model)
    assert price.cache_write_1h_mtok is None and price.cache_write_mtok == Decimal("1.25") * price.input_mtok
    r = row(provider, model)
    assert r["cache_write_1h_mtok"] == float(2 * price.input_mtok)
    # genai-prices prices the 1-hour writes at its cache-write rate; the derived rate adds 0.75x input
    usage = Usage(input_tokens=1000, cache_write_tokens=500, cache_write_1h_tokens=300, output_tokens=50)
    gp = calc_price(usage, model, provider_id=provider_id, genai_request_timestamp=AT).total_price
    want = float(gp) + 300 * float(Decimal("0.75") * price.input_mtok) / 1e6
    assert call_cost(r, 1000, 0, 500, 50, 0, cw_1h=300) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    ("provider", "provider_id", "model", "why"),
    [
        ("gcp.vertex_ai", "google", "claude-3-haiku", "cache write 0.30 is not 1.25x input 0.25"),
        ("openai", "openai", "gpt-4o", "not billed Anthropic's way"),
    ],
)
def test_otherwise_it_is_the_cache_write_rate(provider: str, provider_id: str, model: str, why: str) -> None:
    price = listed(provider_id, model)
    assert price.cache_write_1h_mtok is None, why
    r = row(provider, model)
    assert r["cache_write_1h_mtok"] == r["cache_write_mtok"], why


def test_a_listed_rate_wins_for_any_provider() -> None:
    price = listed("moonshotai", "kimi-k3")
    assert price.cache_write_1h_mtok is not None and price.cache_write_1h_mtok != price.cache_write_mtok
    assert row("moonshot_ai", "kimi-k3")["cache_write_1h_mtok"] == float(price.cache_write_1h_mtok)


def test_overrides() -> None:
    book = PriceBook(
        overrides=[
            PriceOverride(model="claude-x", input_mtok=4.0, output_mtok=20.0, cache_write_mtok=5.0),
            PriceOverride(
                model="claude-y", input_mtok=4.0, output_mtok=20.0, cache_write_mtok=5.0, cache_write_1h_mtok=7
            ),
            PriceOverride(model="claude-z", input_mtok=4.0, output_mtok=20.0, cache_write_mtok=4.4),
            PriceOverride(model="tuned-1", input_mtok=4.0, output_mtok=20.0, cache_write_mtok=5.0),
            PriceOverride(model="claude-w", input_mtok=4.0, output_mtok=20.0),
        ],
        use_database=False,
    )
    rates = {m: row("anthropic", m, book)["cache_write_1h_mtok"] for m in ("claude-x", "claude-y", "claude-z")}
    assert rates == {"claude-x": 8.0, "claude-y": 7.0, "claude-z": 4.4}  # derived, given, 4.4 is not 1.25x
    assert row("aws.bedrock", "claude-x", book)["cache_write_1h_mtok"] == 8.0
    assert row("openai", "claude-x", book)["cache_write_1h_mtok"] == 5.0  # not billed Anthropic's way
    assert row("anthropic", "tuned-1", book)["cache_write_1h_mtok"] == 8.0  # Anthropic's API bills its way
    assert row("aws.bedrock", "tuned-1", book)["cache_write_1h_mtok"] == 5.0  # on Bedrock, not a Claude model
    assert row("anthropic", "claude-w", book)["cache_write_1h_mtok"] == 4.0  # no cache-write rate: input's


def test_the_price_file_takes_the_1h_rate(tmp_path: Any) -> None:
    f = tmp_path / "prices.toml"
    f.write_text('[[price]]\nmodel = "m"\ninput_mtok = 1\noutput_mtok = 2\ncache_write_1h_mtok = 2.5\n')
    (o,) = load_overrides(f)
    assert o.cache_write_1h_mtok == 2.5
    assert row("acme", "m", PriceBook(overrides=[o], use_database=False))["cache_write_1h_mtok"] == 2.5
