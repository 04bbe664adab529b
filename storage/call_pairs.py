"""One model call, several spans: which LLM spans repeat a call another span of it counts.

A call can be described by up to three layers of spans, each from its own library:

0. the client library's own span (the anthropic client 2.x traces itself: `CLIENT_SCOPES`);
1. an instrumentation of the client library (OpenInference, OpenLLMetry, openai-v2:
   `INSTRUMENTATION_SCOPES`);
2. a framework's span for the model step (LangChain, LlamaIndex, LiteLLM, the OpenAI Agents SDK,
   Pydantic AI: `FRAMEWORK_SCOPES`).

The rule (docs/instrumentations.md, "One call, two spans"): an LLM span `i` **repeats** an LLM
span `c` of a lower layer of the same trace when

- both name the same model: the requested model, else the answering one, without a
  `<provider>/` prefix naming the span's own provider; equal, or one is the other with a date
  suffix (an alias and its dated snapshot: `gpt-5-nano`, `gpt-5-nano-2025-08-07`), and
- `c` is `i`'s child, or starts no earlier than `i` and ends no later, or, when `i` is of a
  framework that traces methods (`METHOD_SCOPES`: its stream spans end before the request is
  sent), `c` is a later sibling; and
- when `c` is not `i`'s child, their `gen_ai.response.id` agree when both have one.

In a method-tracing framework, an LLM span with no usage and no finish reason (a wrapper such as
LlamaIndex's `predict`, a helper such as `_prepare_chat_with_tools`) also repeats a span of its
own layer and framework: its child, or, unless it failed, a later sibling.

The spans of one call form a group: the span `i` repeats most nearly (lowest layer, non-bare,
earliest start, lowest id: its **anchor**), followed one step further, to the anchor's anchor.
In each group one span counts, the **most complete**: the most usage columns known
(`USAGE_COLUMNS`), then the lowest layer (nearest the wire), then the anchor. The others are
duplicates: no call, no tokens, no cost, still in the trace. Pairing needs all the spans, which
may arrive in different batches, so it is decided when the lake is read, never written: the
stored rows stay as received.

Every reader builds the same CTEs from here: analytics' span relation (analytics.spans), the
trace list's lean relation (analytics.traces.relation), Spark's (analytics.spark) and the
`duplicate_calls` view (storage.reader). The pairing is one narrow read of the layered LLM spans
joined with itself on (project, trace, model); attributes (the response ids) are read only for
candidates that are not children; the rest works on the candidates. Readers skip it when the
window holds no possible pair (analytics.spans.pairing_needed: its LLM spans hold fewer than two
layers and none of a method-tracing framework).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

# Each scope also matches with a `.<suffix>` (the anthropic client's Foundry, Bedrock and Vertex
# clients: `com.anthropic.sdk.python.foundry`; OpenLLMetry's `opentelemetry.instrumentation.openai.v1`).
# Layer 0: client libraries that emit their own span for every API call. Observed with the real
# libraries in tests/collector/test_instrumentations_anthropic.py; google-genai 3.x and openai 3.x
# emit none.
CLIENT_SCOPES = ("com.anthropic.sdk.python",)
# Layer 1: instrumentations of a client library, one span per API call (observed in
# tests/collector/test_instrumentations*.py; `opentelemetry.util.genai.handler` is openai-v2's
# chat span in its latest experimental mode).
INSTRUMENTATION_SCOPES = (
    "openinference.instrumentation.openai",
    "opentelemetry.instrumentation.openai",
    "opentelemetry.instrumentation.openai_v2",
    "opentelemetry.util.genai.handler",
    "openinference.instrumentation.anthropic",
    "opentelemetry.instrumentation.anthropic",
    "openinference.instrumentation.google_genai",
)
# Layer 2: frameworks whose model step is an LLM span above the client's call, observed over a
# layer-1 span in tests/collector/test_instrumentations_{langchain,llamaindex,litellm,
# openai_agents,pydantic_ai}.py. A framework is added once its spans are seen.
FRAMEWORK_SCOPES = (
    "openinference.instrumentation.langchain",
    "opentelemetry.instrumentation.langchain",
    "openinference.instrumentation.llama_index",
    "openinference.instrumentation.litellm",
    "openinference.instrumentation.openai_agents",
    "pydantic-ai",
)
LAYERS = (CLIENT_SCOPES, INSTRUMENTATION_SCOPES, FRAMEWORK_SCOPES)
# Frameworks that trace the methods of a model object rather than its calls (OpenInference's
# LlamaIndex spans): wrappers (`predict`: the call is its child) and helpers that send nothing
# (`_prepare_chat_with_tools`) are LLM spans too, and a stream's span ends when the stream is
# returned, before its request is sent (the client's span of it is a later sibling).
METHOD_SCOPES = ("openinference.instrumentation.llama_index",)
# The usage a span may know: the span of a call with the most of them known counts.
USAGE_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
RESPONSE_ID_KEY = "gen_ai.response.id"
# A dated snapshot's suffix (`-2025-08-07`, `-20250929`): the alias without it names the same model.
DATE_SUFFIX = "-20[0-9]{2}-?[01][0-9]-?[0-3][0-9]$"
# Stored starts are whole microseconds, ends start + the exact duration: a span that ends with
# the one it encloses may look up to 1 µs early.
END_SLACK_NS = 1000
# The spans of one call start close together (an inner span as the outer one has just started,
# or ended), so a window's duplicates are found from the spans starting up to this long after its
# end and before its start: a call that straddles an hour counts once in hourly rollups too,
# whichever of its spans counts (an outer span counting is read by the window of its inner one).
PAIR_LOOKAHEAD = timedelta(minutes=5)


def _scope_in(scopes: Sequence[str]) -> str:
    # substr, not LIKE: `_` in a scope name is no wildcard. Plain SQL that DuckDB and Spark both run.
    return " OR ".join(f"scope_name = '{s}' OR substr(scope_name, 1, {len(s) + 1}) = '{s}.'" for s in scopes)


# The layer of a span by its scope (NULL: never paired). Plain SQL that DuckDB and Spark both run.
LAYER_SQL = "CASE " + " ".join(f"WHEN {_scope_in(s)} THEN {n}" for n, s in enumerate(LAYERS)) + " END"
METHOD_SQL = f"({_scope_in(METHOD_SCOPES)})"
_USAGE_KNOWN = " + ".join(f"CASE WHEN {c} IS NULL THEN 0 ELSE 1 END" for c in USAGE_COLUMNS)
_NAMED = "coalesce(request_model, response_model)"
# The model a span names, without a `<provider>/` prefix naming its own provider (LiteLLM's `openai/gpt-4o-mini`).
_MODEL_SQL = f"""CASE WHEN substr({_NAMED}, 1, length(provider) + 1) = concat(provider, '/')
            THEN substr({_NAMED}, length(provider) + 2) ELSE {_NAMED} END"""


def _llm_spans(where: str, source: str, start_ns: str, rid: str | None = None) -> str:
    # `base`: the model without a date suffix (the join key); `n`: usage columns known; `bare`: a
    # method-tracing framework's LLM span with no usage and no finish reason (a wrapper or helper);
    # `rid`: the response id, when read with the spans.
    inner, outer = (f", {rid} AS rid", ", rid") if rid else ("", "")
    return f"""SELECT project, trace_id, span_id, parent_span_id, model,
          regexp_replace(model, '{DATE_SUFFIX}', '') AS base, lo, hi, layer, n, by_method,
          (by_method AND n = 0 AND no_finish) AS bare, ok{outer}
      FROM (
        SELECT project, trace_id, span_id, parent_span_id, {_MODEL_SQL} AS model,
          {start_ns} AS lo, {start_ns} + duration_ns AS hi, {LAYER_SQL} AS layer, {_USAGE_KNOWN} AS n,
          {METHOD_SQL} AS by_method, finish_reasons IS NULL AS no_finish,
          coalesce(status_code, '') <> 'ERROR' AS ok{inner}
        FROM {source} WHERE ({where}) AND category = 'llm'
      ) AS layered WHERE layer IS NOT NULL"""


# The rule between an LLM span `i` and a span `c` it may repeat: same trace and model (equal, or an
# alias and its dated snapshot: two different snapshots are two models). `c` of a lower layer is
# `i`'s child, or `i` encloses it in time (then `c` hangs under `i`'s parent, as OpenLLMetry's
# anthropic span and the client's do, or further up: OpenInference's LangChain spans are not in
# the OTel context), or, `i` being a method-tracing framework's, `c` is a later sibling (a stream
# sent after `i` ended). `c` of `i`'s own layer and framework, `i` bare: `c` is its child or, `i`
# not failed, a later sibling.
_SAME_CALL = f"""c.project = i.project AND c.trace_id = i.trace_id AND c.base = i.base
      AND (c.model = i.model OR c.model = c.base OR i.model = i.base) AND c.span_id <> i.span_id
      AND ((c.layer < i.layer AND (c.parent_span_id = i.span_id OR (c.lo >= i.lo
              AND (c.hi <= i.hi + {END_SLACK_NS} OR (i.by_method AND c.parent_span_id = i.parent_span_id)))))
        OR (c.layer = i.layer AND i.bare AND c.by_method AND (c.parent_span_id = i.span_id
              OR (i.ok AND c.parent_span_id = i.parent_span_id AND c.lo > i.lo))))"""
# A candidate pair: `i`, the span `c` it may repeat (`c_parent`: '' for none: min_by skips NULLs),
# `c_key` ordering the candidates (nearest the wire, then not bare, then earliest: a stream's own
# later sibling before the next stream's, then lowest span id), and whether `c` is `i`'s child.
_CAND = """i.project, i.trace_id, i.span_id, i.parent_span_id, i.n, i.layer, c.span_id AS c_span_id,
        coalesce(c.parent_span_id, '') AS c_parent, c.n AS c_n, c.layer AS c_layer,
        concat(CAST(c.layer AS STRING), CASE WHEN c.bare THEN '1' ELSE '0' END,
          lpad(CAST(c.lo AS STRING), 20, '0'), c.span_id) AS c_key,
        c.parent_span_id = i.span_id AS is_parent"""
_SAME_RESPONSE = "(is_parent OR ri IS NULL OR rc IS NULL OR ri = rc)"
# Per span that repeats another: its anchor (the first candidate) with the anchor's parent, usage and layer.
_ANCHOR = """SELECT project, trace_id, span_id, any_value(parent_span_id) AS parent_span_id, any_value(n) AS n,
        any_value(layer) AS layer, min_by(c_span_id, c_key) AS anchor, min_by(c_parent, c_key) AS a_parent,
        min_by(c_n, c_key) AS a_n, min_by(c_layer, c_key) AS a_layer
      FROM ({pairs}) AS k WHERE {same_response}
      GROUP BY project, trace_id, span_id"""
# Orders a group's spans: the one that counts first (most usage known, nearest the wire, the group's
# root); its span id follows the first three characters.
_WIN_KEY = (
    "concat(CAST(9 - n AS STRING), CAST(layer AS STRING), CASE WHEN span_id = root THEN '0' ELSE '1' END, span_id)"
)


def _counted(anchors: str) -> str:
    """From the anchors (`anchors`: SQL of _ANCHOR's columns): each span of a group but the one that
    counts, with that one's id. A chain of subqueries each reading the one before once, with
    windows partitioned by project and trace, so a filter on those reaches the Parquet scans (the
    `duplicate_calls` view) and the pairing joins run once.

    The group's root is the anchor's anchor when the anchor has one (one step: a span's candidates
    include what its candidates enclose or are parent of, so longer chains were not seen): each
    anchor row asks, in the window of its anchor's id, the row of that id (if any) for its anchor."""
    offer = "max(CASE WHEN v.offers THEN a.{col} END) OVER hop AS h_{col}"
    hop = ", ".join(offer.format(col=c) for c in ("anchor", "a_parent", "a_n", "a_layer"))
    root = "CASE WHEN h_anchor IS NULL THEN {col} ELSE h_{col} END"
    roots = f"""SELECT project, trace_id, span_id, parent_span_id, n, layer, {root.format(col="anchor")} AS root,
          nullif({root.format(col="a_parent")}, '') AS r_parent, {root.format(col="a_n")} AS r_n,
          {root.format(col="a_layer")} AS r_layer
        FROM (
          SELECT a.*, v.offers, {hop} FROM ({anchors}) AS a CROSS JOIN (VALUES (true), (false)) AS v(offers)
          WINDOW hop AS (PARTITION BY a.project, a.trace_id, CASE WHEN v.offers THEN a.span_id ELSE a.anchor END)
        ) AS h WHERE NOT offers"""
    member = "CASE WHEN v.is_root THEN r.{r} ELSE r.{col} END AS {col}"
    members = f"""SELECT r.project, r.trace_id, r.root, {member.format(r="root", col="span_id")},
          {member.format(r="r_parent", col="parent_span_id")}, {member.format(r="r_n", col="n")},
          {member.format(r="r_layer", col="layer")}
        FROM ({roots}) AS r CROSS JOIN (VALUES (true), (false)) AS v(is_root)"""
    return f"""SELECT project, trace_id, span_id, any_value(parent_span_id) AS parent_span_id,
        min(winner) AS duplicate_of
      FROM (
        SELECT m.*, substr(min({_WIN_KEY}) OVER (PARTITION BY project, trace_id, root), 4) AS winner
        FROM ({members}) AS m
      ) AS w
      WHERE span_id <> winner
      GROUP BY project, trace_id, span_id"""


def duplicate_ctes(
    name: str,
    where: str,
    source: str = "spans_raw",
    *,
    start_ns: str = "epoch_ns(start_time)",
    response_id: str = f"attr_str(attributes, '{RESPONSE_ID_KEY}')",
) -> str:
    """CTEs ending in `<name>` (project, trace_id, span_id, parent_span_id, duplicate_of): each
    LLM span of `source` matching `where` that repeats a call another span of it counts (also
    matching `where`), its parent, and the id of the span that counts.

    For reports over a window: one narrow read of the layered LLM spans, joined with itself;
    attributes (the response ids) are read only for candidates that are not children; the groups
    and their counted spans are worked out on the candidates. Rows of `source` may repeat
    (re-sent spans): each duplicate comes out once. `start_ns` and `response_id` are the SQL of a
    span's start in ns and of its response id (the defaults are DuckDB's; analytics.spark passes
    Spark's).
    """
    same = "{b}.project = k.project AND {b}.trace_id = k.trace_id AND {b}.span_id = k.{col}"
    pairs = f"""SELECT k.*, r_i.rid AS ri, r_c.rid AS rc FROM {name}_cand k
        LEFT JOIN {name}_rid r_i ON {same.format(b="r_i", col="span_id")}
        LEFT JOIN {name}_rid r_c ON {same.format(b="r_c", col="c_span_id")}"""
    return f"""{name}_llm AS (
      {_llm_spans(where, source, start_ns)}
    ),
    {name}_cand AS (
      SELECT {_CAND} FROM {name}_llm i JOIN {name}_llm c ON {_SAME_CALL}
    ),
    {name}_rid AS (
      SELECT DISTINCT project, trace_id, span_id, {response_id} AS rid
      FROM {source} WHERE ({where}) AND category = 'llm' AND span_id IN (
        SELECT span_id FROM {name}_cand WHERE NOT is_parent
        UNION ALL SELECT c_span_id FROM {name}_cand WHERE NOT is_parent)
    ),
    {name}_anchor AS (
      {_ANCHOR.format(pairs=pairs, same_response=_SAME_RESPONSE)}
    ),
    {name} AS (
      {_counted(f"SELECT * FROM {name}_anchor")}
    )"""


def duplicates_sql(source: str = "spans_raw") -> str:
    """The result of duplicate_ctes over all of `source`, as one query a filter on project and
    trace id reaches (the `duplicate_calls` view: a trace's lookup reads that trace only).
    Response ids are read with the LLM spans."""
    llm = _llm_spans("TRUE", source, "epoch_ns(start_time)", f"attr_str(attributes, '{RESPONSE_ID_KEY}')")
    pairs = f"""SELECT {_CAND}, i.rid AS ri, c.rid AS rc FROM ({llm}) AS i JOIN ({llm}) AS c ON {_SAME_CALL}"""
    return _counted(_ANCHOR.format(pairs=pairs, same_response=_SAME_RESPONSE))


def may_pair_sql(where: str, source: str = "spans_raw") -> str:
    """`SELECT ... AS found`: whether the LLM spans matching `where` hold two layers or a
    method-tracing framework's (otherwise no span can be a duplicate and readers skip the pairing
    joins). One scan of the window's LLM spans' scope names; the layers are found from the
    distinct names (a handful), so the check costs about what looking for one client span cost
    (docs/analytics.md, "Performance")."""
    return f"""SELECT count(DISTINCT {LAYER_SQL}) > 1 OR bool_or({METHOD_SQL}) AS found
      FROM (SELECT DISTINCT scope_name FROM {source} WHERE ({where}) AND category = 'llm') AS scopes"""


def no_duplicates_cte(name: str) -> str:
    """`<name>` with the columns of duplicate_ctes' result and no row (a window where no span can pair)."""
    cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in ("project", "trace_id", "span_id", "parent_span_id"))
    return f"{name} AS (SELECT {cols}, CAST(NULL AS VARCHAR) AS duplicate_of WHERE false)"
