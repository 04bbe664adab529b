"""Model prices: the `genai-prices` database, user overrides, and a price table for SQL joins.

Cost is computed when a report runs, never stored, so a corrected price fixes history.
`PriceBook.table(pairs)` resolves each distinct (provider, model) seen in a query window
once, in Python, into a few rows of per-million-token rates; reports register that Arrow
table in their DuckDB connection and join it (see `COST_SQL`). Rows are piecewise over
time (dated price changes, time-of-day discounts), input-token tiers (context-length
pricing) and service tiers, so the join reproduces `genai_prices.calc_price` exactly for
the token kinds the lake has.

Token rule (OTel meaning, enforced by the columns): cache read and cache write tokens are
subsets of input tokens, reasoning tokens a subset of output tokens. A span costs

    (input - cache_read - cache_write) * input_rate + cache_read * cache_read_rate
    + cache_write * cache_write_rate + (output - reasoning) * output_rate
    + reasoning * reasoning_rate + request_price

where a rate the provider does not bill separately is the rate of its parent kind (as
genai-prices does). A (provider, model) with no price resolves to no rows: it is reported
as unpriced, never as zero.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

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
# Span attributes naming the service tier a call was billed at (OpenAI, OTel).
SERVICE_TIER_KEYS = (
    "openai.response.service_tier",
    "gen_ai.openai.response.service_tier",
    "openai.request.service_tier",
    "gen_ai.openai.request.service_tier",
)
FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
DAY_US = 86_400 * 10**6
MAX_TOKENS = 2**63 - 1
KEY_SEP = "\x1f"

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
        ("cache_write_mtok", pa.float64()),
        ("output_mtok", pa.float64()),
        ("reasoning_mtok", pa.float64()),
        ("request_price", pa.float64()),  # USD per call
    ]
)


@dataclass(frozen=True)
class PriceOverride:
    """A user's price for models matching `model` (exact name or `*` pattern, case-insensitive).

    Rates are USD per million tokens. Omitted cache or reasoning rates default to the input
    or output rate. `valid_from` dates a price: several overrides for one model form a
    history, each applying from its date until the next one.
    """

    model: str
    input_mtok: float
    output_mtok: float
    provider: str | None = None
    cache_read_mtok: float | None = None
    cache_write_mtok: float | None = None
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
        return _database_rows(provider, model)

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
        rows = []
        for i, (start, o) in enumerate(dated):
            valid_from = FAR_PAST if i == 0 or start is None else _midnight(start)
            end = dated[i + 1][0] if i + 1 < len(dated) else None
            valid_to = _midnight(end) if end is not None else FAR_FUTURE
            rates = _rates(
                Decimal(str(o.input_mtok)),
                Decimal(str(o.output_mtok)),
                None if o.cache_read_mtok is None else Decimal(str(o.cache_read_mtok)),
                None if o.cache_write_mtok is None else Decimal(str(o.cache_write_mtok)),
                None if o.reasoning_mtok is None else Decimal(str(o.reasoning_mtok)),
                Decimal(str(o.request_price)) * 1000,
            )
            rows.append(
                _row(provider, model, "override", o.model, valid_from, valid_to, 0, DAY_US, -1, MAX_TOKENS, "", rates)
            )
        return rows


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(), tzinfo=UTC)


def _rates(
    input_mtok: Decimal | None,
    output_mtok: Decimal | None,
    cache_read: Decimal | None,
    cache_write: Decimal | None,
    reasoning: Decimal | None,
    request_kcount: Decimal | None,
) -> dict[str, float]:
    """Resolve unbilled sub-kinds to their parent's rate (genai-prices' leaf rule)."""
    inp = input_mtok or Decimal(0)
    out = output_mtok or Decimal(0)
    return {
        "input_mtok": float(inp),
        "cache_read_mtok": float(inp if cache_read is None else cache_read),
        "cache_write_mtok": float(inp if cache_write is None else cache_write),
        "output_mtok": float(out),
        "reasoning_mtok": float(out if reasoning is None else reasoning),
        "request_price": float((request_kcount or Decimal(0)) / 1000),
    }


def _row(
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


# --- genai-prices -------------------------------------------------------------------------

PRICED_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok")


def find_model(provider: str, model: str) -> tuple[Any, Any] | None:
    """(genai-prices Provider, ModelInfo) for a model as our columns name it, or None.

    A known provider is searched alone (with genai-prices' own fallbacks, e.g. Azure → OpenAI);
    an unknown provider (self-hosted, a gateway genai-prices does not list) is not guessed at;
    no provider at all lets genai-prices infer it from the model name.
    """
    from genai_prices import data_snapshot

    snap = data_snapshot.get_snapshot()
    provider_id: str | None = None
    if provider:
        provider_id = PROVIDER_IDS.get(provider.lower(), provider.lower())
        if data_snapshot.find_provider_by_id(snap.providers, provider_id) is None:
            return None
    try:
        return snap.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None


def _constraint_points(constraint: Any, dates: set[date], tods: set[int]) -> None:
    from genai_prices import types as T

    if isinstance(constraint, T.StartDateConstraint):
        dates.add(constraint.start_date)
    elif isinstance(constraint, T.TimeOfDateConstraint):
        for t in (constraint.start_time, constraint.end_time):
            u = datetime.combine(date(2000, 1, 1), t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
            tods.add(((u.hour * 60 + u.minute) * 60 + u.second) * 10**6 + u.microsecond)


def _database_rows(provider: str, model: str) -> list[dict[str, Any]]:
    from genai_prices import types as T

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
        valid_from = FAR_PAST if d is None else _midnight(d)
        nxt = date_edges[i + 1] if i + 1 < len(date_edges) else None
        valid_to = FAR_FUTURE if nxt is None else _midnight(nxt)
        rep_day = date(1970, 1, 1) if d is None else d
        for j, tod in enumerate(tod_edges):
            tod_hi = tod_edges[j + 1] if j + 1 < len(tod_edges) else DAY_US
            at = _midnight(rep_day) + timedelta(microseconds=tod)
            for tier in ["", *sorted(service_tiers)]:  # an inactive variant yields the standard price
                price = info.get_prices(at, {"service_tier": tier} if tier else None)
                for lo, hi, rates in _tier_brackets(price):
                    rows.append(
                        _row(
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


def _tier_brackets(price: Any) -> list[tuple[int, int, dict[str, float]]]:
    """Split a ModelPrice into input-token brackets (lo, hi] with flat rates.

    genai-prices' tiers are cliffs on total input tokens: past a tier's start, every token
    of that kind is billed at the tier's rate.
    """
    from genai_prices import types as T

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
        rates = _rates(
            flat["input_mtok"],
            flat["output_mtok"],
            flat["cache_read_mtok"],
            flat["cache_write_mtok"],
            flat["output_reasoning_mtok"],
            getattr(price, "requests_kcount", None),
        )
        out.append((lo, hi, rates))
    return out


def database_version() -> str:
    """Version of the bundled genai-prices data (shown in reports)."""
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"
