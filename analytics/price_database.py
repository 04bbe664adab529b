"""genai-prices' bundled data → price rows (the layout of analytics.price_rows).

Each model's prices are evaluated piecewise: between the dates its prices change, between
the UTC times of day its off-peak windows start and end, per service tier it has a variant
for, and per input-token tier (context-length pricing). Each piece becomes one row with
flat rates, so a SQL range join reproduces `genai_prices.calc_price`.

genai-prices is imported inside the functions that use it: a heavy optional dependency
(importing it takes about 0.2 s and loading its data 0.6 s, paid only once a model needs a
price; without it only price overrides apply).
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from spanlake.analytics.price_rows import DAY_US, FAR_FUTURE, FAR_PAST, MAX_TOKENS, flat_rates, midnight, price_row

# OTel well-known provider names (our `provider` column) → genai-prices provider ids.
PROVIDER_IDS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "together_ai": "together",
    "moonshot_ai": "moonshotai",
    "fireworks": "fireworks",
    "cerebras": "cerebras",
    "openrouter": "openrouter",
}
PRICED_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "output_reasoning_mtok",
)
# Anthropic bills a cache write at 1.25x the model's base input price when the cache lives
# 5 minutes and at 2x when it lives 1 hour (docs.claude.com/en/docs/build-with-claude/prompt-caching,
# "Pricing"). genai-prices' `cache_write_mtok` is the 5-minute rate; where it lists no
# `cache_write_1h_mtok` for a Claude model on Anthropic's API, Bedrock (`aws`) or Vertex AI
# (`google`) whose cache-write rate is exactly Anthropic's 1.25x, the 1-hour rate is derived: 2x.
ANTHROPIC_PRICED_PROVIDERS = frozenset({"anthropic", "aws", "google"})
CACHE_WRITE_5M_RATIO = Decimal("1.25")
CACHE_WRITE_1H_RATIO = Decimal(2)


def find_model(provider: str, model: str) -> tuple[Any, Any] | None:
    """(genai-prices Provider, ModelInfo) for a model as our columns name it, or None.

    A known provider is searched alone (with genai-prices' own fallbacks, e.g. Azure → OpenAI);
    an unknown provider (self-hosted, a gateway genai-prices does not list) is not guessed at;
    no provider at all lets genai-prices infer it from the model name. A model named
    `<provider>/<model>` after its own provider (LiteLLM's names, as OpenInference sends them:
    `openai/gpt-4o-mini`) is the model after the slash.
    """
    from genai_prices import data_snapshot  # optional dependency: genai-prices, heavy (module docstring)

    snap = data_snapshot.get_snapshot()
    provider_id: str | None = None
    if provider:
        provider_id = PROVIDER_IDS.get(provider.lower(), provider.lower())
        if data_snapshot.find_provider_by_id(snap.providers, provider_id) is None:
            return None
    try:
        return snap.find_provider_model(model, None, provider_id, None)
    except LookupError:
        pass
    prefix, _, rest = model.partition("/")
    if provider and rest and prefix.lower() in (provider.lower(), provider_id):
        return find_model(provider, rest)
    return None


def _constraint_points(constraint: Any, dates: set[date], tods: set[int]) -> None:
    from genai_prices import types as T  # optional dependency: genai-prices, heavy (module docstring)

    if isinstance(constraint, T.StartDateConstraint):
        dates.add(constraint.start_date)
    elif isinstance(constraint, T.TimeOfDateConstraint):
        for t in (constraint.start_time, constraint.end_time):
            u = datetime.combine(date(2000, 1, 1), t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
            tods.add(((u.hour * 60 + u.minute) * 60 + u.second) * 10**6 + u.microsecond)


def database_rows(provider: str, model: str) -> list[dict[str, Any]]:
    """Price rows for one (provider, model) from genai-prices; [] when it has no price."""
    try:
        from genai_prices import types as T  # optional dependency: genai-prices, heavy (module docstring)
    except ImportError:  # only overrides apply; every other model reports as unpriced
        warnings.warn("genai-prices is not installed: only price overrides apply", stacklevel=2)
        return []

    found = find_model(provider, model)
    if found is None:
        return []
    gp_provider, info = found
    dates: set[date] = set()
    tods: set[int] = {0}
    if not isinstance(info.prices, T.ModelPrice):
        for cp in info.prices:
            _constraint_points(cp.constraint, dates, tods)
    own_model = any(info is m for m in gp_provider.models)  # variants apply only to the provider's own models
    service_tiers: set[str] = set()
    for v in (info.price_variants or []) if own_model else []:
        if set(v.when) == {"service_tier"}:
            service_tiers.add(v.when["service_tier"])
            _constraint_points(v.constraint, dates, tods)
    date_edges = [None, *sorted(dates)]
    tod_edges = sorted(t for t in tods if 0 <= t < DAY_US)
    rows: list[dict[str, Any]] = []
    for i, d in enumerate(date_edges):
        valid_from = FAR_PAST if d is None else midnight(d)
        nxt = date_edges[i + 1] if i + 1 < len(date_edges) else None
        valid_to = FAR_FUTURE if nxt is None else midnight(nxt)
        rep_day = date(1970, 1, 1) if d is None else d
        for j, tod in enumerate(tod_edges):
            tod_hi = tod_edges[j + 1] if j + 1 < len(tod_edges) else DAY_US
            at = midnight(rep_day) + timedelta(microseconds=tod)
            for tier in ["", *sorted(service_tiers)]:  # an inactive variant yields the standard price
                price = info.get_prices(at, {"service_tier": tier} if tier else None)
                for lo, hi, rates in _tier_brackets(price, anthropic_priced(gp_provider.id, info.id)):
                    rows.append(
                        price_row(
                            provider,
                            model,
                            "genai-prices",
                            info.id,
                            valid_from,
                            valid_to,
                            tod,
                            tod_hi,
                            lo,
                            hi,
                            tier,
                            rates,
                        )
                    )
    return rows


def anthropic_priced(provider_id: str, model_id: str) -> bool:
    """Whether a genai-prices model is a Claude model billed Anthropic's way (ANTHROPIC_PRICED_PROVIDERS)."""
    return provider_id == "anthropic" or (provider_id in ANTHROPIC_PRICED_PROVIDERS and "claude" in model_id.lower())


def cache_write_1h_rate(
    input_rate: Decimal | None, cache_write_rate: Decimal | None, listed: Decimal | None, anthropic: bool
) -> Decimal | None:
    """The 1-hour cache-write rate: genai-prices' when listed; else, for a model billed
    Anthropic's way whose cache-write rate is 1.25x input, 2x input; else None (the
    cache-write rate applies, genai-prices' leaf rule)."""
    if listed is not None:
        return listed
    if anthropic and input_rate is not None and cache_write_rate == input_rate * CACHE_WRITE_5M_RATIO:
        return input_rate * CACHE_WRITE_1H_RATIO
    return None


def _tier_brackets(price: Any, anthropic: bool = False) -> list[tuple[int, int, dict[str, float]]]:
    """Split a ModelPrice into input-token brackets (lo, hi] with flat rates.

    genai-prices' tiers are cliffs on total input tokens: past a tier's start, every token
    of that kind is billed at the tier's rate. `anthropic`: the model is billed Anthropic's
    way (its 1-hour cache-write rate may be derived: cache_write_1h_rate).
    """
    from genai_prices import types as T  # optional dependency: genai-prices, heavy (module docstring)

    values = {k: getattr(price, k, None) for k in PRICED_KEYS}
    if values["input_mtok"] is None and values["output_mtok"] is None:
        return []  # priced only in units the lake has no column for (audio hours, pages, ...)
    starts = sorted({t.start for v in values.values() if isinstance(v, T.TieredPrices) for t in v.tiers})
    edges = [-1, *starts]
    out = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else MAX_TOKENS
        flat: dict[str, Decimal | None] = {}
        for k, v in values.items():
            if isinstance(v, T.TieredPrices):
                rate = v.base
                for t in v.tiers:
                    if t.start <= lo:
                        rate = t.price
                flat[k] = rate
            else:
                flat[k] = v
        rates = flat_rates(
            flat["input_mtok"],
            flat["output_mtok"],
            flat["cache_read_mtok"],
            flat["cache_write_mtok"],
            flat["output_reasoning_mtok"],
            getattr(price, "requests_kcount", None),
            cache_write_1h_rate(flat["input_mtok"], flat["cache_write_mtok"], flat["cache_write_1h_mtok"], anthropic),
        )
        out.append((lo, hi, rates))
    return out
