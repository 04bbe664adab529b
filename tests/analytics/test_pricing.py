"""Price resolution: genai-prices offline, versioned names, tiers, time-dependent prices, overrides."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("genai_prices")

from genai_prices import Usage, calc_price

from spanlake.analytics.pricing import MAX_TOKENS, PriceBook, PriceOverride, load_overrides
from tests.analytics.helpers import call_cost


def _rate_row(rows: list[dict], at: datetime, input_tokens: int, tier: str = "") -> dict:
    """The one row of a model's price rows that applies to a call (what the SQL join selects)."""
    tod = (at.hour * 3600 + at.minute * 60 + at.second) * 10**6
    hits = [
        r
        for r in rows
        if r["valid_from"] <= at < r["valid_to"]
        and r["tod_lo_us"] <= tod < r["tod_hi_us"]
        and r["tier_lo"] < input_tokens <= r["tier_hi"]
        and r["service_tier"] == tier
    ]
    assert len(hits) == 1, hits
    return hits[0]


def test_bundled_prices_work_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    rows = PriceBook().rows("openai", "gpt-4o-mini-2024-07-18")
    assert rows and rows[0]["matched_model"] == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini-2024-07-18"),  # dated version → gpt-4o-mini
        ("openai", "gpt-4o-2024-08-06"),
        ("anthropic", "claude-3-5-sonnet-20241022"),
        ("azure.ai.openai", "gpt-4o-mini"),  # Azure falls back to OpenAI's prices
        (None, "gpt-4o-mini"),  # no provider: genai-prices infers it from the name
    ],
)
def test_versioned_names_resolve_and_match_calc_price(provider: str | None, model: str) -> None:
    rows = PriceBook().rows(provider, model)
    assert rows, f"{provider}/{model} should be priced"
    at = datetime(2025, 6, 2, 12, tzinfo=UTC)
    usage = dict(input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000)
    expected = calc_price(
        Usage(**usage), model, provider_id=_gp_provider(provider), genai_request_timestamp=at
    ).total_price
    got = call_cost(_rate_row(rows, at, 10_000), 10_000, 4_000, 0, 2_000, 0)
    assert got == pytest.approx(float(expected), rel=1e-12)


def _gp_provider(provider: str | None) -> str | None:
    from spanlake.analytics.price_database import PROVIDER_IDS

    return None if provider is None else PROVIDER_IDS.get(provider, provider)


def test_a_model_named_after_its_own_provider_is_the_model_after_the_slash() -> None:
    """LiteLLM names models `<provider>/<model>` (OpenInference sends them so); calc_price itself
    finds none: priced as the model after the slash, only when the prefix is the span's provider."""
    book = PriceBook()
    at = datetime(2025, 6, 2, 12, tzinfo=UTC)
    rows = book.rows("openai", "openai/gpt-4o-mini")
    assert rows and rows[0]["matched_model"] == "gpt-4o-mini"
    with pytest.raises(LookupError):
        calc_price(Usage(input_tokens=1), "openai/gpt-4o-mini", provider_id="openai")
    expected = calc_price(Usage(input_tokens=900, cache_read_tokens=400, output_tokens=100), "gpt-4o-mini")
    got = call_cost(_rate_row(rows, at, 900), 900, 400, 0, 100, 0)
    assert got == pytest.approx(float(expected.total_price), rel=1e-12)
    assert book.rows("anthropic", "openai/gpt-4o-mini") == []  # another provider's prefix: not guessed at
    assert book.rows("openai", "openai/") == [] and book.rows(None, "openai/gpt-4o-mini") == []


def test_cache_write_and_read_priced_as_billed() -> None:
    """Anthropic bills cache writes above and cache reads below the input rate."""
    rows = PriceBook().rows("anthropic", "claude-3-5-sonnet-20241022")
    at = datetime(2025, 6, 2, tzinfo=UTC)
    row = _rate_row(rows, at, 1000)
    assert row["cache_write_mtok"] > row["input_mtok"] > row["cache_read_mtok"]
    expected = calc_price(
        Usage(input_tokens=1000, cache_read_tokens=300, cache_write_tokens=200, output_tokens=100),
        "claude-3-5-sonnet-20241022",
        provider_id="anthropic",
        genai_request_timestamp=at,
    ).total_price
    assert call_cost(row, 1000, 300, 200, 100, 0) == pytest.approx(float(expected), rel=1e-12)


def test_context_length_tiers_are_cliffs_on_input_tokens() -> None:
    rows = PriceBook().rows("gcp.gemini", "gemini-1.5-pro")
    at = datetime(2025, 6, 2, tzinfo=UTC)
    edges = sorted({r["tier_hi"] for r in rows} - {MAX_TOKENS})
    assert edges, "gemini-1.5-pro has a context-length tier"
    edge = edges[0]
    below, above = _rate_row(rows, at, edge), _rate_row(rows, at, edge + 1)
    assert above["input_mtok"] > below["input_mtok"]
    for n in (edge, edge + 1):
        expected = calc_price(
            Usage(input_tokens=n, output_tokens=1000),
            "gemini-1.5-pro",
            provider_id="google",
            genai_request_timestamp=at,
        )
        assert call_cost(_rate_row(rows, at, n), n, 0, 0, 1000, 0) == pytest.approx(
            float(expected.total_price), rel=1e-12
        )


def test_time_of_day_prices() -> None:
    """deepseek-chat has off-peak hours: the row for the call's UTC time of day applies."""
    rows = PriceBook().rows("deepseek", "deepseek-chat")
    for hour in (1, 12, 17, 23):
        at = datetime(2025, 6, 2, hour, 15, tzinfo=UTC)
        expected = calc_price(
            Usage(input_tokens=5000, cache_read_tokens=1000, output_tokens=700),
            "deepseek-chat",
            provider_id="deepseek",
            genai_request_timestamp=at,
        ).total_price
        assert call_cost(_rate_row(rows, at, 5000), 5000, 1000, 0, 700, 0) == pytest.approx(float(expected), rel=1e-12)


def test_service_tier_variants() -> None:
    book = PriceBook()
    rows = book.rows("openai", "gpt-4o-mini")
    tiers = sorted({r["service_tier"] for r in rows} - {""})
    assert tiers, "gpt-4o-mini has service-tier prices"
    at = datetime(2025, 6, 2, tzinfo=UTC)
    for tier in tiers:
        expected = calc_price(
            Usage(input_tokens=1000, output_tokens=500),
            "gpt-4o-mini",
            provider_id="openai",
            genai_request_timestamp=at,
            price_context={"service_tier": tier},
        ).total_price
        assert call_cost(_rate_row(rows, at, 1000, tier), 1000, 0, 0, 500, 0) == pytest.approx(
            float(expected), rel=1e-12
        )


def test_unknown_provider_or_model_is_unpriced() -> None:
    book = PriceBook()
    assert book.rows("vllm", "llama-3-8b-instruct") == []  # self-hosted: not guessed at
    assert book.rows("openai", "no-such-model-xyz") == []
    assert not book.is_priced(None, "totally-made-up")


def test_override_rates_and_defaults() -> None:
    book = PriceBook(overrides=[PriceOverride(model="acme-1", input_mtok=2.0, output_mtok=8.0, cache_read_mtok=0.5)])
    (row,) = book.rows("acme", "acme-1")
    # cache write and reasoning are not billed separately: they take the input / output rate
    assert (row["input_mtok"], row["cache_read_mtok"], row["cache_write_mtok"]) == (2.0, 0.5, 2.0)
    assert (row["output_mtok"], row["reasoning_mtok"]) == (8.0, 8.0)
    assert row["source"] == "override"
    # 1000 in (300 cached) + 400 out (100 reasoning):
    # 700*2 + 300*0.5 + 300*8 + 100*8 = 1400 + 150 + 2400 + 800 = 4750 per 1e6
    assert call_cost(row, 1000, 300, 0, 400, 100) == pytest.approx(4750 / 1e6)


def test_override_beats_database_and_exact_beats_pattern() -> None:
    book = PriceBook()
    book.add_override(PriceOverride(model="gpt-4o-mini*", input_mtok=1.0, output_mtok=1.0))
    book.add_override(PriceOverride(model="gpt-4o-mini-2024-07-18", input_mtok=3.0, output_mtok=3.0))
    assert book.rows("openai", "gpt-4o-mini")[0]["input_mtok"] == 1.0
    assert book.rows("openai", "gpt-4o-mini-2024-07-18")[0]["input_mtok"] == 3.0
    assert book.rows("openai", "GPT-4O-MINI-2025")[0]["matched_model"] == "gpt-4o-mini*"  # case-insensitive


def test_dated_overrides_form_a_history(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        """
[[price]]
model = "acme-1"
input_mtok = 1.0
output_mtok = 2.0

[[price]]
model = "acme-1"
input_mtok = 0.5
output_mtok = 1.0
valid_from = 2025-06-01
"""
    )
    rows = PriceBook.from_file(path).rows("", "acme-1")
    assert _rate_row(rows, datetime(2025, 5, 31, 23, 59, tzinfo=UTC), 1)["input_mtok"] == 1.0
    assert _rate_row(rows, datetime(2025, 6, 1, tzinfo=UTC), 1)["input_mtok"] == 0.5


def test_json_overrides_and_bad_keys(tmp_path: Path) -> None:
    good = tmp_path / "p.json"
    good.write_text('{"prices": [{"model": "m", "provider": "openai", "input_mtok": 1, "output_mtok": 2}]}')
    (o,) = load_overrides(good)
    assert o.matches("OpenAI", "M") and not o.matches("anthropic", "m")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[price]]\nmodel = "m"\ninput_mtok = 1\noutput_mtok = 1\ninput_price = 3\n')
    with pytest.raises(ValueError, match="unknown keys"):
        load_overrides(bad)
    assert PriceBook.from_file(tmp_path / "missing.toml").overrides == []


def test_price_table_is_small_and_typed() -> None:
    table = PriceBook().table([("openai", "gpt-4o-mini"), ("openai", "gpt-4o-mini"), ("vllm", "x"), (None, None)])
    assert table.num_rows == len(PriceBook().rows("openai", "gpt-4o-mini"))
    assert set(table.column("model").to_pylist()) == {"gpt-4o-mini"}
