"""One model call, two spans: which LLM spans repeat a call that a client's own span counts.

A client library that traces itself (the anthropic client 2.x: scope `com.anthropic.sdk.python`)
emits a span per API call, and an instrumentation (OpenInference, OpenLLMetry) emits another
LLM span for the same call. The rule (docs/instrumentations.md, "One call, two spans"): an
LLM span that is not a client's own is a **duplicate** of a client's LLM span of the same
trace when

- it is that span's parent, or a sibling (same parent) that encloses it in time, and
- both name the same model (requested, else answering), and
- for a sibling, their `gen_ai.response.id` agree when both have one.

The client's span counts (its numbers are the most complete); the duplicate counts as no call,
no tokens and no cost, and stays in the trace. Pairing needs both spans, which may arrive in
different batches, so it is decided when the lake is read, never written: the stored rows
stay as received.

Every reader builds the same CTEs from here: analytics' span relation (analytics.spans), the
trace list's lean relation (analytics.traces.relation) and the `traces` view (storage.reader).
The pairing is one narrow read of the LLM spans joined with itself on (project, trace, model);
attributes (the response ids) are read only for sibling candidates. Readers skip it when the
window holds no client span (analytics.spans.pairing_needed).
"""

from __future__ import annotations

from datetime import timedelta

# Scopes of client libraries that emit their own span for every API call, each also with a
# `.<platform>` suffix (the anthropic client's Foundry, Bedrock and Vertex clients:
# `com.anthropic.sdk.python.foundry`, ...). Observed with the real libraries in
# tests/collector/test_instrumentations_anthropic.py; google-genai 3.x and openai 3.x emit none.
CLIENT_SCOPES = ("com.anthropic.sdk.python",)
RESPONSE_ID_KEY = "gen_ai.response.id"
# Stored starts are whole microseconds, ends start + the exact duration: a sibling that ends
# with the client's span may look up to 1 µs early.
END_SLACK_NS = 1000
# A client's span starts as the instrumentation's span has just started (it is called inside
# it), so a window's duplicates are found from the client spans starting up to this long after
# the window's end (a call that straddles an hour counts once in hourly rollups too).
PAIR_LOOKAHEAD = timedelta(minutes=5)

# Plain SQL that DuckDB and Spark both run (analytics.spark).
IS_CLIENT_SCOPE = "(" + " OR ".join(f"scope_name = '{s}' OR scope_name LIKE '{s}.%'" for s in CLIENT_SCOPES) + ")"
IS_CLIENT_CALL = f"(category = 'llm' AND {IS_CLIENT_SCOPE})"


def _llm_spans(where: str, source: str, start_ns: str, extra: str = "") -> str:
    return f"""SELECT project, trace_id, span_id, parent_span_id, coalesce(request_model, response_model) AS model,
        {start_ns} AS lo, {start_ns} + duration_ns AS hi, coalesce({IS_CLIENT_SCOPE}, false) AS is_client{extra}
      FROM {source} WHERE ({where}) AND category = 'llm'"""


# The rule between an LLM span `i` that is not a client's and a client's span `c`: same trace
# and model; `c`'s parent is `i`, or `c` is a sibling `i` encloses in time. Then, for a
# sibling, the response ids (`ri`, `rc`) agree when both are known.
_SAME_CALL = f"""c.project = i.project AND c.trace_id = i.trace_id AND c.model = i.model
      AND c.is_client AND NOT i.is_client
      AND (c.parent_span_id = i.span_id
           OR (c.parent_span_id = i.parent_span_id AND c.lo >= i.lo AND c.hi <= i.hi + {END_SLACK_NS}))"""
_SAME_RESPONSE = "(is_parent OR ri IS NULL OR rc IS NULL OR ri = rc)"


def duplicate_ctes(
    name: str,
    where: str,
    source: str = "spans_raw",
    *,
    start_ns: str = "epoch_ns(start_time)",
    response_id: str = f"attr_str(attributes, '{RESPONSE_ID_KEY}')",
) -> str:
    """CTEs ending in `<name>` (project, trace_id, span_id, parent_span_id, duplicate_of): each
    LLM span of `source` matching `where` that duplicates a client's span (also matching
    `where`), its parent, and the id of that client's span (the lowest, if several).

    For reports over a window: one narrow read of the LLM spans, joined with itself; attributes
    (the response ids) are read only for the sibling candidates. Rows of `source` may repeat
    (re-sent spans): each duplicate comes out once. `start_ns` and `response_id` are the SQL of a
    span's start in ns and of its response id (the defaults are DuckDB's; analytics.spark passes
    Spark's).
    """
    return f"""{name}_llm AS (
      {_llm_spans(where, source, start_ns)}
    ),
    {name}_cand AS (
      SELECT i.project, i.trace_id, i.span_id, i.parent_span_id, c.span_id AS c_span_id,
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
      SELECT k.project, k.trace_id, k.span_id, any_value(k.parent_span_id) AS parent_span_id,
        min(k.c_span_id) AS duplicate_of
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
    return f"""SELECT project, trace_id, span_id, any_value(parent_span_id) AS parent_span_id,
        min(c_span_id) AS duplicate_of
      FROM (
        SELECT i.project, i.trace_id, i.span_id, i.parent_span_id, c.span_id AS c_span_id,
          c.parent_span_id = i.span_id AS is_parent, i.rid AS ri, c.rid AS rc
        FROM ({_llm_spans("TRUE", source, "epoch_ns(start_time)", rid)}) i
        JOIN ({_llm_spans("TRUE", source, "epoch_ns(start_time)", rid)}) c ON {_SAME_CALL}
      ) WHERE {_SAME_RESPONSE}
      GROUP BY project, trace_id, span_id"""


def has_client_calls_sql(client_where: str, source: str = "spans_raw") -> str:
    """`SELECT EXISTS (...) AS found`: whether any client span matches `client_where` (when none
    does, no span can be a duplicate and readers skip the pairing joins)."""
    return f"SELECT EXISTS (SELECT 1 FROM {source} WHERE ({client_where}) AND {IS_CLIENT_CALL}) AS found"


def no_duplicates_cte(name: str) -> str:
    """`<name>` with the columns of duplicate_ctes' result and no row (a window without client spans)."""
    cols = ", ".join(f"CAST(NULL AS VARCHAR) AS {c}" for c in ("project", "trace_id", "span_id", "parent_span_id"))
    return f"{name} AS (SELECT {cols}, CAST(NULL AS VARCHAR) AS duplicate_of WHERE false)"
