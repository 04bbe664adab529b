"""One model call, two spans: which LLM spans repeat a call that a span nearer the wire counts.

A call can be described by up to three layers of spans, each from its own library:

0. the client library's own span (the anthropic client 2.x traces itself: `CLIENT_SCOPES`);
1. an instrumentation of the client library (OpenInference, OpenLLMetry, openai-v2:
   `INSTRUMENTATION_SCOPES`);
2. a framework's span for the model step (LangChain through OpenInference or OpenLLMetry:
   `FRAMEWORK_SCOPES`).

The rule (docs/instrumentations.md, "One call, two spans"): an LLM span of layer L is a
**duplicate** of an LLM span of a lower layer of the same trace when

- it is that span's parent, or it encloses that span in time, and
- both name the same model (requested, else answering), and
- when it is not the parent, their `gen_ai.response.id` agree when both have one.

The span nearest the wire counts (its numbers are the most complete: observed, it alone has the
response model and time to first token of a stream, the reasoning tokens OpenLLMetry's
LangChain span lacks, the 1-hour cache writes); a duplicate counts as no call, no tokens and no
cost, and stays in the trace. Spans of other scopes are never paired. Pairing needs both
spans, which may arrive in different batches, so it is decided when the lake is read, never
written: the stored rows stay as received.

Every reader builds the same CTEs from here: analytics' span relation (analytics.spans), the
trace list's lean relation (analytics.traces.relation) and the `traces` view (storage.reader).
The pairing is one narrow read of the layered LLM spans joined with itself on (project, trace,
model); attributes (the response ids) are read only for enclosing candidates. Readers skip it
when the window holds no possible pair (analytics.spans.pairing_needed: its LLM spans hold
fewer than two layers).
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
# Layer 2: frameworks whose model step is an LLM span above the client's call (observed in
# tests/collector/test_instrumentations_langchain.py). A framework is added once its spans are seen.
FRAMEWORK_SCOPES = (
    "openinference.instrumentation.langchain",
    "opentelemetry.instrumentation.langchain",
)
LAYERS = (CLIENT_SCOPES, INSTRUMENTATION_SCOPES, FRAMEWORK_SCOPES)
RESPONSE_ID_KEY = "gen_ai.response.id"
# Stored starts are whole microseconds, ends start + the exact duration: a span that ends with
# the one it encloses may look up to 1 µs early.
END_SLACK_NS = 1000
# A span nearer the wire starts as the outer span has just started (it is called inside it), so
# a window's duplicates are found from the spans starting up to this long after the window's end
# (a call that straddles an hour counts once in hourly rollups too).
PAIR_LOOKAHEAD = timedelta(minutes=5)


def _scope_in(scopes: Sequence[str]) -> str:
    # substr, not LIKE: `_` in a scope name is no wildcard. Plain SQL that DuckDB and Spark both run.
    return " OR ".join(f"scope_name = '{s}' OR substr(scope_name, 1, {len(s) + 1}) = '{s}.'" for s in scopes)


# The layer of a span by its scope (NULL: never paired). Plain SQL that DuckDB and Spark both run.
LAYER_SQL = "CASE " + " ".join(f"WHEN {_scope_in(s)} THEN {n}" for n, s in enumerate(LAYERS)) + " END"


def _llm_spans(where: str, source: str, start_ns: str, extra: str = "") -> str:
    return f"""SELECT * FROM (
        SELECT project, trace_id, span_id, parent_span_id, coalesce(request_model, response_model) AS model,
          {start_ns} AS lo, {start_ns} + duration_ns AS hi, {LAYER_SQL} AS layer{extra}
        FROM {source} WHERE ({where}) AND category = 'llm'
      ) AS layered WHERE layer IS NOT NULL"""


# The rule between an LLM span `i` and one nearer the wire, `c`: same trace and model; `c`'s
# parent is `i`, or `i` encloses `c` in time (then `c` hangs under `i`'s parent, as OpenLLMetry's
# anthropic span and the client's do, or further up: OpenInference's LangChain spans are not in
# the OTel context, so a client instrumentation's span of the call is a child of the app's span
# around the whole run). Then, when not the parent, the response ids (`ri`, `rc`) agree when
# both are known. `c_key` orders the candidates: nearest the wire, then lowest span id.
_SAME_CALL = f"""c.project = i.project AND c.trace_id = i.trace_id AND c.model = i.model AND c.layer < i.layer
      AND (c.parent_span_id = i.span_id OR (c.lo >= i.lo AND c.hi <= i.hi + {END_SLACK_NS}))"""
_C_KEY = "concat(CAST(c.layer AS STRING), c.span_id) AS c_key"
_SAME_RESPONSE = "(is_parent OR ri IS NULL OR rc IS NULL OR ri = rc)"
_DUPLICATE_OF = "substr(min(c_key), 2) AS duplicate_of"


def duplicate_ctes(
    name: str,
    where: str,
    source: str = "spans_raw",
    *,
    start_ns: str = "epoch_ns(start_time)",
    response_id: str = f"attr_str(attributes, '{RESPONSE_ID_KEY}')",
) -> str:
    """CTEs ending in `<name>` (project, trace_id, span_id, parent_span_id, duplicate_of): each
    LLM span of `source` matching `where` that duplicates a span nearer the wire (also matching
    `where`), its parent, and the id of the span it repeats (the nearest the wire, then the
    lowest id, if several: the span that counts).

    For reports over a window: one narrow read of the layered LLM spans, joined with itself;
    attributes (the response ids) are read only for the enclosing candidates. Rows of `source`
    may repeat (re-sent spans): each duplicate comes out once. `start_ns` and `response_id` are
    the SQL of a span's start in ns and of its response id (the defaults are DuckDB's;
    analytics.spark passes Spark's).
    """
    return f"""{name}_llm AS (
      {_llm_spans(where, source, start_ns)}
    ),
    {name}_cand AS (
      SELECT i.project, i.trace_id, i.span_id, i.parent_span_id, c.span_id AS c_span_id, {_C_KEY},
        c.parent_span_id = i.span_id AS is_parent
      FROM {name}_llm i JOIN {name}_llm c ON {_SAME_CALL}
    ),
    {name}_rid AS (
      SELECT DISTINCT project, trace_id, span_id, {response_id} AS rid
      FROM {source} WHERE ({where}) AND category = 'llm' AND span_id IN (
        SELECT span_id FROM {name}_cand WHERE NOT is_parent
        UNION ALL SELECT c_span_id FROM {name}_cand WHERE NOT is_parent)
    ),
    {name} AS (
      SELECT k.project, k.trace_id, k.span_id, any_value(k.parent_span_id) AS parent_span_id, {_DUPLICATE_OF}
      FROM (
        SELECT k.*, r_i.rid AS ri, r_c.rid AS rc FROM {name}_cand k
        LEFT JOIN {name}_rid r_i ON r_i.project = k.project AND r_i.trace_id = k.trace_id AND r_i.span_id = k.span_id
        LEFT JOIN {name}_rid r_c ON r_c.project = k.project AND r_c.trace_id = k.trace_id AND r_c.span_id = k.c_span_id
      ) k
      WHERE {_SAME_RESPONSE}
      GROUP BY k.project, k.trace_id, k.span_id
    )"""


def duplicates_sql(source: str = "spans_raw") -> str:
    """The result of duplicate_ctes over all of `source`, as one query a filter on project and
    trace id reaches (the `duplicate_calls` view: a trace's lookup reads that trace only).
    Response ids are read with the LLM spans."""
    rid = f", attr_str(attributes, '{RESPONSE_ID_KEY}') AS rid"
    return f"""SELECT project, trace_id, span_id, any_value(parent_span_id) AS parent_span_id, {_DUPLICATE_OF}
      FROM (
        SELECT i.project, i.trace_id, i.span_id, i.parent_span_id, {_C_KEY},
          c.parent_span_id = i.span_id AS is_parent, i.rid AS ri, c.rid AS rc
        FROM ({_llm_spans("TRUE", source, "epoch_ns(start_time)", rid)}) i
        JOIN ({_llm_spans("TRUE", source, "epoch_ns(start_time)", rid)}) c ON {_SAME_CALL}
      ) WHERE {_SAME_RESPONSE}
      GROUP BY project, trace_id, span_id"""


def may_pair_sql(where: str, source: str = "spans_raw") -> str:
    """`SELECT ... AS found`: whether the LLM spans matching `where` hold two layers (otherwise no
    span can be a duplicate and readers skip the pairing joins). One scan of the window's LLM
    spans' scope names; the layers are found from the distinct names (a handful), so the check
    costs about what looking for one client span cost (docs/analytics.md, "Performance")."""
    return f"""SELECT count(DISTINCT {LAYER_SQL}) > 1 AS found
      FROM (SELECT DISTINCT scope_name FROM {source} WHERE ({where}) AND category = 'llm') AS scopes"""


def no_duplicates_cte(name: str) -> str:
    """`<name>` with the columns of duplicate_ctes' result and no row (a window where no span can pair)."""
    cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in ("project", "trace_id", "span_id", "parent_span_id"))
    return f"{name} AS (SELECT {cols}, CAST(NULL AS VARCHAR) AS duplicate_of WHERE false)"
