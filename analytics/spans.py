"""Filters, group-by dimensions and the shared span relation every report starts from.

All values a user supplies (times, project, model, attribute keys and values) reach DuckDB
as bound parameters. Identifiers (group-by columns, time-bucket units) come only from the
allow-lists below.

The span relation reads `spans_raw` (so filters and partition pruning apply before the
de-duplication, and big columns such as `content` are never read unless a report asks),
keeps one row per (project, trace_id, span_id), marks the LLM spans that repeat a call another
span of it counts (`duplicate_of`, storage.call_pairs), and prices each
LLM/embedding call by joining the price table registered as `prices` (see analytics.pricing).
A duplicate is not `billable`: it has no cost and its tokens count nowhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from spanlake.analytics.pricing import KEY_SEP, SERVICE_TIER_KEYS
from spanlake.storage.call_pairs import PAIR_LOOKAHEAD, duplicate_ctes, may_pair_sql, no_duplicates_cte
from spanlake.storage.reader import KEY_POINTER_SQL, ROOT_PREDICATE, fetch_arrow
from spanlake.storage.schema import SPANS
from spanlake.storage.toml_file import parse_duration  # also imported from here by the CLI and the API

BUCKETS = ("minute", "hour", "day", "week", "month")
BILLABLE_CATEGORIES = ("llm", "embedding")  # token counts elsewhere (agent, chain) are aggregates
STEP_CATEGORIES = ("llm", "embedding", "retrieval", "rerank", "tool", "guardrail", "agent", "chain")

# Group-by name → column of the span relation (span-level reports).
SPAN_DIMS = {
    "project": "project",
    "service": "service_name",
    "model": "model",
    "response_model": "response_model",
    "provider": "provider",
    "prompt_name": "prompt_name",
    "prompt_version": "prompt_version",
    "category": "category",
    "name": "name",
    "task_name": "task_name",
    "validator": "validation_name",
    "tool": "tool_name",
    "status": "status_code",
}
# Filter name → column of spans_raw (a model filter matches the requested or the answering model).
RAW_FILTER_COLUMNS = {
    "service": "service_name",
    "model": "request_model",
    "response_model": "response_model",
    "provider": "provider",
    "prompt_name": "prompt_name",
    "prompt_version": "prompt_version",
}
# Columns read from spans_raw (never content, never the raw attributes unless asked): the
# schema's scanned columns.
BASE_COLUMNS = tuple(c.name for c in SPANS.all_columns if c.scanned)


@dataclass(frozen=True)
class Filters:
    """What a report looks at. `since`/`until` bound the start time (until exclusive, UTC).

    `model` matches the requested or the answering model; `attributes` are exact matches on
    span attributes (`attr_str(attributes, key) = value`). For task-level reports the
    dimension filters apply to the task (its span, primary model and prompt version).
    """

    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    service: str | None = None
    model: str | None = None
    provider: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    task_name: str | None = None  # only tasks of this name (and the steps inside them)

    @classmethod
    def last(cls, span: str | timedelta, now: datetime | None = None, **kw: Any) -> Filters:
        """The window ending now and lasting `span` ('24h', '7d' or a timedelta)."""
        now = now or datetime.now(UTC)
        delta = parse_duration(span) if isinstance(span, str) else span
        return cls(since=now - delta, until=now, **kw)


def parse_attr_filter(item: str) -> tuple[str, str]:
    r"""`KEY=VALUE` → (key, value). KEY ends at the first '=' not escaped: in KEY, `\=` stands
    for '=' and `\\` for one backslash (any other backslash is itself); VALUE is the rest,
    exactly. So every key can be named: `a\=b=1` is key 'a=b', value '1'."""
    key: list[str] = []
    i = 0
    while i < len(item):
        c = item[i]
        if c == "\\" and item[i + 1 : i + 2] in ("=", "\\"):
            key.append(item[i + 1])
            i += 2
            continue
        if c == "=":
            return "".join(key), item[i + 1 :]
        key.append(c)
        i += 1
    raise ValueError(f"{item!r}: use KEY=VALUE (write \\= for an '=' in KEY)")


class Params:
    """Collects bound parameters; `add(v)` returns the `$name` to put in the SQL."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


@dataclass(frozen=True)
class GroupBy:
    """Validated group-by keys: dimension names, `attr:KEY`, and at most one time bucket."""

    dims: tuple[str, ...] = ()
    attrs: tuple[str, ...] = ()
    bucket: str | None = None

    @classmethod
    def parse(cls, keys: Sequence[str], allowed: Mapping[str, str], bucket: str | None = None) -> GroupBy:
        dims: list[str] = []
        attrs: list[str] = []
        for k in keys:
            if k.startswith("attr:"):  # the rest is the key, exactly (any text, even empty)
                attrs += [] if k[5:] in attrs else [k[5:]]
                continue
            k = k.strip()
            if not k:
                continue
            if k.startswith("attr:"):
                attrs += [] if k[5:] in attrs else [k[5:]]
            elif k in BUCKETS:
                bucket = k
            elif k in allowed:
                dims += [] if k in dims else [k]
            else:
                names = ", ".join([*allowed, "attr:KEY", *BUCKETS])
                raise ValueError(f"cannot group by {k!r}; choose from {names}")
        if bucket is not None and bucket not in BUCKETS:
            raise ValueError(f"time bucket must be one of {', '.join(BUCKETS)}")
        return cls(tuple(dims), tuple(attrs), bucket)

    def select(self, allowed: Mapping[str, str], time_col: str = "start_time") -> list[tuple[str, str]]:
        """(expression, output name) pairs, in the order: bucket, dims, attributes."""
        out = []
        if self.bucket:
            out.append((f"date_trunc('{self.bucket}', {time_col})", self.bucket))
        out += [(allowed[d], d) for d in self.dims]
        out += [(f"g_attr_{i}", attr_alias(i)) for i in range(len(self.attrs))]
        return out

    @property
    def renames(self) -> dict[str, str]:
        """SQL output name → the group's name, for the attribute keys: a key never enters SQL
        text, not even as a quoted alias (DuckDB cuts identifiers at NUL and matches them
        case-insensitively), so results are renamed after the query."""
        return {attr_alias(i): f"attr:{k}" for i, k in enumerate(self.attrs)}

    @property
    def names(self) -> list[str]:
        return [*([self.bucket] if self.bucket else []), *self.dims, *(f"attr:{k}" for k in self.attrs)]


def attr_alias(i: int) -> str:
    """The SQL output name of the i-th attribute group key (see GroupBy.renames)."""
    return f"sl_attr_key_{i}"


def quote_ident(name: str) -> str:
    """A SQL identifier for any text (output names such as `attr:KEY` carry a user's key)."""
    return '"' + name.replace('"', '""') + '"'


def select_list(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{expr} AS {quote_ident(name)}, " for expr, name in pairs)


def group_list(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(str(i + 1) for i in range(len(pairs)))


def dim_predicates(f: Filters, p: Params, cols: Mapping[str, str]) -> list[str]:
    """Equality filters on service/model/provider/prompt, over the given column names."""
    preds = []
    if f.service is not None:
        preds.append(f"{cols['service']} = {p.add(f.service)}")
    if f.model is not None:
        m = p.add(f.model)
        preds.append(f"({cols['model']} = {m} OR {cols['response_model']} = {m})")
    if f.provider is not None:
        preds.append(f"{cols['provider']} = {p.add(f.provider)}")
    if f.prompt_name is not None:
        preds.append(f"{cols['prompt_name']} = {p.add(f.prompt_name)}")
    if f.prompt_version is not None:
        preds.append(f"{cols['prompt_version']} = {p.add(f.prompt_version)}")
    return preds


def attr_predicate(f: Filters, p: Params) -> str:
    if not f.attributes:
        return "TRUE"
    return " AND ".join(f"attr_str(attributes, {p.add(k)}) = {p.add(str(v))}" for k, v in f.attributes.items())


@dataclass(frozen=True)
class SpanSource:
    """How to build the de-duplicated, priced span relation `sp`."""

    filters: Filters
    group: GroupBy = GroupBy()
    span_level_filters: bool = True  # False for task reports: keep whole traces, filter tasks later
    widen_after: timedelta = timedelta(0)  # read spans starting this long after `until` (task bodies)
    widen_before: timedelta = timedelta(0)  # ... and this long before `since` (clock skew)
    categories: tuple[str, ...] | None = None  # read only these categories
    extra_columns: tuple[str, ...] = ()  # e.g. ('attributes',) or ('content',)
    priced: bool = True  # False: skip the price join (cost_usd NULL, nothing unpriced)
    # Before `since` and past `until`, read only spans of traces that have a span in the window
    # (task and check reports relate spans of one trace only, so other traces are never needed).
    outside_window_traces_only: bool = False


def window_predicates(src: SpanSource, p: Params) -> list[str]:
    f = src.filters
    preds = []
    if f.since is not None:
        since = f.since - src.widen_before
        preds += [f"date >= {p.add(since.astimezone(UTC).date())}", f"start_time >= {p.add(since)}"]
    if f.until is not None:
        until = f.until + src.widen_after
        preds += [f"date <= {p.add(until.astimezone(UTC).date())}", f"start_time < {p.add(until)}"]
    if f.project is not None:
        preds.append(f"project = {p.add(f.project)}")
    return preds


def _outside_ranges(src: SpanSource, p: Params) -> list[str]:
    """Predicates for the widened parts of the source's window: before `since`, after `until`."""
    f = src.filters
    ranges = []
    if f.since is not None and src.widen_before:
        ranges.append((f.since - src.widen_before, f.since))
    if f.until is not None and src.widen_after:
        ranges.append((f.until, f.until + src.widen_after))
    out = []
    for lo, hi in ranges:
        lo_day, hi_day = p.add(lo.astimezone(UTC).date()), p.add(hi.astimezone(UTC).date())
        out.append(
            f"(date >= {lo_day} AND date <= {hi_day} AND start_time >= {p.add(lo)} AND start_time < {p.add(hi)})"
        )
    return out


# A span's cost from its tokens (`s`) and its price row (`pr`, per million tokens): cached and
# reasoning tokens are subsets of the input and output totals, so they are taken out of them
# before the base prices apply; the 1-hour cache writes, a subset of the cache writes, cost
# the difference of their rate on top. Plain SQL that DuckDB and Spark both run (analytics.spark).
SPAN_COST_SQL = """CASE WHEN pr.model IS NOT NULL THEN
          (greatest(coalesce(s.input_tokens, 0) - coalesce(s.cache_read_tokens, 0)
                    - coalesce(s.cache_write_tokens, 0), 0) * pr.input_mtok
           + coalesce(s.cache_read_tokens, 0) * pr.cache_read_mtok
           + coalesce(s.cache_write_tokens, 0) * pr.cache_write_mtok
           + coalesce(s.cache_write_1h_tokens, 0) * (pr.cache_write_1h_mtok - pr.cache_write_mtok)
           + greatest(coalesce(s.output_tokens, 0) - coalesce(s.reasoning_tokens, 0), 0) * pr.output_mtok
           + coalesce(s.reasoning_tokens, 0) * pr.reasoning_mtok) / 1e6 + pr.request_price
        END"""


# A call is billable when it is an LLM/embedding span with token counts that no other span
# of its call counts already (`d`: the duplicate marks, storage.call_pairs).
_BILLABLE_SQL = f"""(s.category IN {BILLABLE_CATEGORIES} AND (s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL)
          AND d.duplicate_of IS NULL)"""


def _unpriced_sql(dup_join: str) -> str:
    return f"""
      SELECT s.*, d.duplicate_of, {_BILLABLE_SQL} AS billable,
        CAST(NULL AS DOUBLE) AS cost_usd, false AS unpriced
      FROM dedup_sp s {dup_join}"""


def _priced_sql(dup_join: str) -> str:
    return f"""
      SELECT s.*, d.duplicate_of, {_BILLABLE_SQL} AS billable,
        CASE WHEN d.duplicate_of IS NULL THEN {SPAN_COST_SQL} END AS cost_usd,
        (billable AND pr.model IS NULL) AS unpriced
      FROM dedup_sp s {dup_join} LEFT JOIN prices pr
        ON s.category IN {BILLABLE_CATEGORIES}
        AND pr.provider = coalesce(s.provider, '') AND pr.model = s.price_model
        AND s.start_time >= pr.valid_from AND s.start_time < pr.valid_to
        AND epoch_us(s.start_time) % 86400000000 >= pr.tod_lo_us
        AND epoch_us(s.start_time) % 86400000000 < pr.tod_hi_us
        AND coalesce(s.input_tokens, 0) > pr.tier_lo AND coalesce(s.input_tokens, 0) <= pr.tier_hi
        AND pr.service_tier = s.service_tier"""


_DUP_JOIN = "LEFT JOIN sl_dup d ON d.project = s.project AND d.trace_id = s.trace_id AND d.span_id = s.span_id"
_NO_DUP_JOIN = "CROSS JOIN (SELECT CAST(NULL AS VARCHAR) AS duplicate_of) d"


def pair_where(src: SpanSource, p: Params) -> str:
    """Where the call pairing reads LLM spans: the source's window, PAIR_LOOKAHEAD longer at both
    ends (the inner spans of calls that start at its end; the outer spans, which may be the ones
    that count, of calls that start before it), and span-level filters, any category (a superset
    of the relation's spans: only those in it are marked)."""
    wide = replace(
        src,
        categories=None,
        outside_window_traces_only=False,
        widen_before=src.widen_before + PAIR_LOOKAHEAD,
        widen_after=src.widen_after + PAIR_LOOKAHEAD,
    )
    return _where(wide, p)


def pairing_needed(con: duckdb.DuckDBPyConnection, src: SpanSource, seen: dict[str, bool] | None = None) -> bool:
    """Whether the source's window holds LLM spans of two layers of one call (storage.call_pairs:
    a client's own span, an instrumentation's, a framework's) or of a framework that traces
    methods (LlamaIndex: its wrappers repeat its calls); otherwise no span can be a duplicate,
    and span_ctes skips the pairing joins. `seen` remembers the answers given
    on this connection (the jobs of one report often read the same window)."""
    p = Params()
    sql = may_pair_sql(pair_where(src, p))
    key = f"{sql}\x00{sorted((k, str(v)) for k, v in p.values.items())}"
    if seen is not None and key in seen:
        return seen[key]
    found = bool(fetch_arrow(con, sql, p.values)["found"][0].as_py())
    if seen is not None:
        seen[key] = found
    return found


def pairs_sql(src: SpanSource, p: Params) -> str:
    """Distinct (provider, price model) of billable calls in the window (to build the price table)."""
    where = " AND ".join([*window_predicates(src, p), f"category IN {BILLABLE_CATEGORIES}"])
    return (
        "SELECT DISTINCT provider, coalesce(response_model, request_model) AS model "
        f"FROM spans_raw WHERE {where} AND coalesce(response_model, request_model) IS NOT NULL"
    )


def _where(src: SpanSource, p: Params) -> str:
    """The predicates of the source's spans_raw rows (window, categories, span-level filters)."""
    f = src.filters
    preds = window_predicates(src, p)
    if src.categories is not None:
        preds.append(f"category IN ({', '.join(p.add(c) for c in src.categories)})")
    outside = _outside_ranges(src, p) if src.outside_window_traces_only else []
    if outside:
        # Outside the window, only spans of traces with a span inside it. The traces are found
        # from the (short) outside ranges first, so no hash table of every trace is built.
        inner = window_predicates(replace(src, widen_after=timedelta(0), widen_before=timedelta(0)), p)
        bounds = [x for x in inner if x.startswith("start_time")]
        # One scan per range: DuckDB prunes partitions for each range, not for an OR of them.
        project = f" AND project = {p.add(f.project)}" if f.project is not None else ""
        near = " UNION ALL ".join(f"SELECT trace_id FROM spans_raw WHERE {r}{project}" for r in outside)
        preds.append(
            f"(({' AND '.join(bounds) or 'TRUE'}) OR trace_id IN (SELECT trace_id FROM spans_raw WHERE "
            f"{' AND '.join(inner) or 'TRUE'} AND trace_id IN ({near})))"
        )
    if src.span_level_filters:
        preds += dim_predicates(f, p, RAW_FILTER_COLUMNS)
        if f.attributes:
            preds.append(attr_predicate(f, p))
    return " AND ".join(preds) or "TRUE"


def span_ctes(src: SpanSource, p: Params, tier_models: list[str], tier_keys: list[str], pair_calls: bool = True) -> str:
    """CTEs `dedup_sp` → `sl_dup` (the duplicate calls, storage.call_pairs) → `sp`: filtered,
    de-duplicated spans with `duplicate_of` and cost columns.

    `pair_calls=False` (when `pairing_needed` says no span of the window can pair) leaves
    `sl_dup` empty and every `duplicate_of` NULL without the pairing joins."""
    f = src.filters
    where = _where(src, p)
    attr_match = attr_predicate(f, p)
    g_attrs = "".join(f"attr_str(attributes, {p.add(k)}) AS g_attr_{i}, " for i, k in enumerate(src.group.attrs))
    price_model = "coalesce(response_model, request_model)"
    tier_expr = "''"
    if tier_models and src.priced:
        sep = p.add(KEY_SEP)
        raw = f"coalesce({', '.join(f'attr_str(attributes, {p.add(k)})' for k in SERVICE_TIER_KEYS)}, '')"
        model_key = f"(coalesce(provider, '') || {sep} || {price_model})"
        tier_expr = (
            # list_position, not list_contains: DuckDB turns the latter into a join that computes
            # the key (and reads the attributes JSON) for every span, billable or not.
            f"CASE WHEN category IN {BILLABLE_CATEGORIES} AND list_position({p.add(tier_models)}, {model_key}) "
            f"IS NOT NULL THEN (CASE WHEN list_position({p.add(tier_keys)}, {model_key} || {sep} || {raw}) "
            f"IS NOT NULL THEN {raw} ELSE '' END) ELSE '' END"
        )
    extra = "".join(f"{c}, " for c in src.extra_columns)
    select = f"""SELECT {", ".join(BASE_COLUMNS)}, {extra}{g_attrs}
        coalesce(request_model, response_model) AS model, {price_model} AS price_model,
        duration_ns / 1e6 AS duration_ms, {ROOT_PREDICATE} AS is_root,
        ({attr_match}) AS attr_match, {tier_expr} AS service_tier"""
    pairs = duplicate_ctes("sl_dup", pair_where(src, p)) if pair_calls else no_duplicates_cte("sl_dup")
    join = _DUP_JOIN if pair_calls else _NO_DUP_JOIN
    # Rows of spans_raw_once are distinct already (storage.reader.split_unique_files).
    return f"""dedup_sp AS (
      {select} FROM spans_raw_once WHERE {where}
      UNION ALL
      SELECT DISTINCT ON (project, trace_id, span_id) * FROM ({select} FROM spans_raw_rest WHERE {where})
    ),
    {pairs},
    sp AS ({_priced_sql(join) if src.priced else _unpriced_sql(join)}
    )"""


# Macros reading retrieved documents from the `content` column: OTel GenAI
# `gen_ai.retrieval.documents` (a JSON array, or a string holding one) or OpenInference's
# flattened `retrieval.documents.N.document.{id,score}`. A span without content has an
# unknown document count (NULL), not zero.
_OI_DOC = r"^retrieval\.documents\.([0-9]+)\.document\."
MACROS = (
    """CREATE OR REPLACE MACRO sl_gen_docs(c) AS (
      CASE WHEN json_type(json_extract(c, '$."gen_ai.retrieval.documents"')) = 'VARCHAR'
           THEN try(json(json_extract_string(c, '$."gen_ai.retrieval.documents"')))
           ELSE json_extract(c, '$."gen_ai.retrieval.documents"') END)""",
    f"""CREATE OR REPLACE MACRO sl_oi_doc_keys(c) AS
      list_filter(coalesce(json_keys(c), []), lambda k: regexp_matches(k, '{_OI_DOC}'))""",
    f"""CREATE OR REPLACE MACRO sl_doc_count(c) AS (
      CASE WHEN c IS NULL THEN NULL
           WHEN json_type(sl_gen_docs(c)) = 'ARRAY' THEN json_array_length(sl_gen_docs(c))::BIGINT
           ELSE len(list_distinct(list_transform(sl_oi_doc_keys(c), lambda k: regexp_extract(k, '{_OI_DOC}', 1))))
      END)""",
    f"""CREATE OR REPLACE MACRO sl_doc_scores(c) AS (
      CASE WHEN json_type(sl_gen_docs(c)) = 'ARRAY'
           THEN list_filter(TRY_CAST(json_extract_string(sl_gen_docs(c), '$[*].score') AS DOUBLE[]),
                            lambda x: x IS NOT NULL)
           ELSE list_transform(list_filter(sl_oi_doc_keys(c), lambda k: k LIKE '%.document.score'),
                               lambda k: TRY_CAST(json_extract_string(c, {KEY_POINTER_SQL}) AS DOUBLE))
      END)""",
    """CREATE OR REPLACE MACRO sl_top1_score(c) AS (
      CASE WHEN json_type(sl_gen_docs(c)) = 'ARRAY'
           THEN TRY_CAST(json_extract_string(sl_gen_docs(c), '$[0].score') AS DOUBLE)
           ELSE TRY_CAST(json_extract_string(c, '$."retrieval.documents.0.document.score"') AS DOUBLE) END)""",
    f"""CREATE OR REPLACE MACRO sl_doc_ids(c) AS (
      CASE WHEN json_type(sl_gen_docs(c)) = 'ARRAY'
           THEN list_filter(json_extract_string(sl_gen_docs(c), '$[*].id'), lambda x: x IS NOT NULL)
           ELSE list_transform(list_filter(sl_oi_doc_keys(c), lambda k: k LIKE '%.document.id'),
                               lambda k: json_extract_string(c, {KEY_POINTER_SQL}))
      END)""",
)
