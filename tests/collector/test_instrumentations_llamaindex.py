"""Real LlamaIndex (its OpenAI LLM and OpenAIEmbedding with `api_base`), through OpenInference
→ real OTLP exporters → the real collector.

Each configuration runs in its own process (tests/collector/instrumented_llamaindex.py) with the
python of .venv-llamaindex (scripts/venv-llamaindex: LlamaIndex needs openai<3), against spanlake's
fake OpenAI server, exporting over loopback to a collector in this process. The expected numbers
come from the fake server's documented rule (spanlake.demo.fake_openai), worked out by hand in
tests/collector/llamaindex_runs.py: token counts, the retrieval ranking (cosine similarity of the
fake's embedding vectors) and the prompt the query engine builds; costs from genai-prices' own
`calc_price`, computed here.

Configurations: `llamaindex` (openinference-instrumentation-llama-index) and `llamaindex_openai`
(the same plus openinference-instrumentation-openai under it: one call, two spans).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from spanlake.analytics.reports.cost import call_totals
from spanlake.analytics.reports.retrieval import retrieval
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import trace_detail
from spanlake.demo.fake_openai import DEFAULT_DIMENSIONS, embedding_vector, words
from tests.collector import instrumented_llamaindex as client
from tests.collector.instrumented_runs import check_observed, observed_lines
from tests.collector.llamaindex_runs import (
    AGENT_ANSWER,
    AGENT_TOOL_CALL,
    CHAT,
    CONFIGS,
    MODEL,
    OI_LLAMA,
    OI_OPENAI,
    QUESTION_VECTOR,
    RAG,
    RAG_PROMPT,
    RANKED,
    REPLY,
    ROOT,
    SLOW_MS,
    STREAM,
    Runs,
    started,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    with started(tmp_path_factory.mktemp("llamaindex") / "data") as r:
        yield r


def _cost(exp: dict[str, Any]) -> float:
    """genai-prices' own price of one gpt-4o-mini call (its input_tokens include the cache)."""
    usage = Usage(input_tokens=exp["in"], cache_read_tokens=exp["cached"], output_tokens=exp["out"])
    return float(calc_price(usage, MODEL, provider_id="openai").total_price)


def _priced(runs: Runs, config: str, scenario: str) -> dict[str, dict[str, Any]]:
    """The trace detail's spans (with cost_usd), by span id."""
    detail = trace_detail(Analytics(runs.collector.data_dir), runs.trace(config, scenario), config)
    assert detail is not None
    return {s["span_id"]: s for s in detail.spans}


def _check(row: dict[str, Any], exp: dict[str, Any]) -> None:
    """An LLM call with usage, as OpenInference's LlamaIndex span reports it."""
    assert (row["category"], row["operation"], row["provider"], row["scope_name"]) == (
        "llm",
        "chat",
        "openai",
        OI_LLAMA,
    )
    assert (row["request_model"], row["response_model"]) == (MODEL, MODEL)  # LlamaIndex's model setting, both
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (
        exp["in"],
        exp["out"],
        exp["in"] + exp["out"],
    )
    assert (row["cache_read_tokens"], row["cache_write_tokens"], row["reasoning_tokens"]) == (
        exp["cached"],
        None,
        exp["reasoning"],
    )
    assert row["finish_reasons"] == [exp["finish"]]
    assert (row["status_code"], row["error_type"]) == ("OK", None)


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["content"] or "{}")


def _tree(spans: list[dict[str, Any]]) -> tuple[Any, ...]:
    """(name, category, children...) from the root, children by start."""
    kids: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        kids.setdefault(s["parent_span_id"], []).append(s)

    def node(s: dict[str, Any]) -> tuple[Any, ...]:
        return (s["name"], s["category"], *(node(c) for c in kids.get(s["span_id"], [])))

    (root,) = kids[None]
    return node(root)


# --- single calls -------------------------------------------------------------------------------


def test_chat(runs: Runs) -> None:
    scenario, row = runs.spans("llamaindex", "chat")
    assert (row["name"], row["parent_span_id"]) == ("OpenAI.chat", scenario["span_id"])
    _check(row, CHAT)
    assert row["time_to_first_token_ms"] is None
    content = _content(row)
    assert [content[f"llm.input_messages.{i}.message.{k}"] for i in (0, 1) for k in ("role", "content")] == [
        "system", client.SYSTEM, "user", client.QUESTION,
    ]  # fmt: skip
    assert content["llm.output_messages.0.message.content"] == REPLY
    assert _priced(runs, "llamaindex", "chat")[row["span_id"]]["cost_usd"] == pytest.approx(_cost(CHAT), rel=1e-9)
    assert runs.trace_row("llamaindex", "chat")["llm_calls"] == 1


def test_stream_with_usage(runs: Runs) -> None:
    """With `stream_options.include_usage` (LlamaIndex does not ask for it): the usage, and a span
    that ends when `stream_chat` returns, before the stream is read: its first token event comes
    after its end (the slow server holds the first chunk 150 ms after the request, which is sent
    only once the stream is read)."""
    _, row = runs.spans("llamaindex", "stream")
    assert row["name"] == "OpenAI.stream_chat"
    _check(row, STREAM)
    assert row["time_to_first_token_ms"] >= row["duration_ms"] + SLOW_MS - 1
    assert _priced(runs, "llamaindex", "stream")[row["span_id"]]["cost_usd"] == pytest.approx(_cost(STREAM), rel=1e-9)


def test_stream_without_usage(runs: Runs) -> None:
    """LlamaIndex's default stream: no usage chunk, so no tokens (no cost, no billable call)."""
    _, row = runs.spans("llamaindex", "stream_no_usage")
    assert (row["name"], row["category"], row["finish_reasons"]) == ("OpenAI.stream_chat", "llm", ["stop"])
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (None, None, None)
    assert row["time_to_first_token_ms"] is not None
    assert _priced(runs, "llamaindex", "stream_no_usage")[row["span_id"]]["cost_usd"] == 0.0
    trace = runs.trace_row("llamaindex", "stream_no_usage")
    assert (trace["llm_calls"], trace["input_tokens"]) == (1, 0)


def test_failed_call(runs: Runs) -> None:
    _, row = runs.spans("llamaindex", "error")
    assert (row["name"], row["category"], row["request_model"]) == ("OpenAI.chat", "llm", MODEL)
    assert (row["status_code"], row["error_type"]) == ("ERROR", "openai.InternalServerError")
    assert (row["input_tokens"], row["output_tokens"], row["finish_reasons"]) == (None, None, None)
    assert runs.trace_row("llamaindex", "error")["has_error"]


# --- RAG: a query engine over a VectorStoreIndex of three documents -------------------------------

RAG_TREE = (
    "scenario rag", "other",
    ("SentenceSplitter.__call__", "chain",
     ("SentenceSplitter._parse_nodes", "chain", *[("SentenceSplitter.split_text_metadata_aware", "chain")] * 3)),
    ("OpenAIEmbedding.get_text_embedding_batch", "embedding"),
    ("RetrieverQueryEngine.query", "chain",
     ("RetrieverQueryEngine._query", "chain",
      ("VectorIndexRetriever.retrieve", "retrieval",
       ("VectorIndexRetriever._retrieve", "retrieval",
        ("OpenAIEmbedding.get_query_embedding", "embedding", ("OpenAIEmbedding._get_query_embedding", "embedding")))),
      ("CompactAndRefine.synthesize", "chain",
       ("CompactAndRefine.get_response", "chain",
        ("TokenTextSplitter.split_text", "chain"),
        ("CompactAndRefine.get_response", "chain",
         ("TokenTextSplitter.split_text", "chain"),
         ("DefaultRefineProgram.__call__", "chain", ("OpenAI.predict", "llm", ("OpenAI.chat", "llm")))))))),
)  # fmt: skip


def test_rag_tree(runs: Runs) -> None:
    assert _tree(runs.spans("llamaindex", "rag")) == RAG_TREE


def _vector(content: dict[str, Any], i: int) -> list[float]:
    return list(content[f"embedding.embeddings.{i}.embedding.vector"])


def test_rag_embeddings(runs: Runs) -> None:
    """The documents' and the question's embeddings: the texts and the fake's vectors; OpenInference's
    LlamaIndex spans carry no embedding usage (no tokens) and no provider."""
    (batch,) = runs.named("llamaindex", "rag", "OpenAIEmbedding.get_text_embedding_batch")
    content = _content(batch)
    for i, doc in enumerate(client.DOCUMENTS):
        assert content[f"embedding.embeddings.{i}.embedding.text"] == doc
        assert _vector(content, i) == pytest.approx(embedding_vector(doc, DEFAULT_DIMENSIONS))
    (query,) = runs.named("llamaindex", "rag", "OpenAIEmbedding.get_query_embedding")
    assert _content(query)["embedding.embeddings.0.embedding.text"] == client.RAG_QUESTION
    assert _vector(_content(query), 0) == pytest.approx(QUESTION_VECTOR)
    for row in (batch, query):
        assert (row["category"], row["operation"], row["provider"]) == ("embedding", "embeddings", None)
        assert (row["request_model"], row["response_model"]) == (client.EMBED_MODEL, client.EMBED_MODEL)
        assert (row["input_tokens"], row["total_tokens"]) == (None, None)


def test_rag_retrieval(runs: Runs) -> None:
    """The retriever's span holds the ranked documents (text and cosine score, computed by hand);
    spanlake's retrieval report reads them. LlamaIndex's inner `_retrieve` span is a RETRIEVER too,
    without documents: the report counts it as a second, empty query (docs/instrumentations.md)."""
    (retrieve,) = runs.named("llamaindex", "rag", "VectorIndexRetriever.retrieve")
    content = _content(retrieve)
    assert content["input.value"] == client.RAG_QUESTION
    got = [
        (content[f"retrieval.documents.{i}.document.score"], content[f"retrieval.documents.{i}.document.content"])
        for i in range(client.TOP_K)
    ]
    assert [d for _, d in got] == [d for _, d in RANKED]
    assert [s for s, _ in got] == pytest.approx([s for s, _ in RANKED], rel=1e-9)
    ids = [content[f"retrieval.documents.{i}.document.id"] for i in range(client.TOP_K)]
    assert all(re.fullmatch(r"[0-9a-f-]{36}", i) for i in ids)  # LlamaIndex's node ids (uuid4)
    report = {
        r["data_source"]: r
        for r in retrieval(Analytics(runs.collector.data_dir), Filters(project="llamaindex")).to_dicts()
    }
    assert set(report) == {"VectorIndexRetriever.retrieve", "VectorIndexRetriever._retrieve"}
    outer, inner = report["VectorIndexRetriever.retrieve"], report["VectorIndexRetriever._retrieve"]
    assert (outer["queries"], outer["docs_per_query"], outer["empty_rate"]) == (1, client.TOP_K, 0.0)
    assert outer["avg_top1_score"] == pytest.approx(RANKED[0][0], rel=1e-9)
    assert outer["mean_score"] == pytest.approx(sum(s for s, _ in RANKED) / client.TOP_K, rel=1e-9)
    assert (inner["queries"], inner["docs_per_query"], inner["empty_rate"]) == (1, 0, 1.0)


def test_rag_llm_call(runs: Runs) -> None:
    """The prompt is the template filled with the ranked documents; `OpenAI.predict` (an LLM span
    with no usage) wraps `OpenAI.chat`, which has the call's numbers and counts."""
    (predict,), (chat,) = (
        runs.named("llamaindex", "rag", "OpenAI.predict"),
        runs.named("llamaindex", "rag", "OpenAI.chat"),
    )
    assert chat["parent_span_id"] == predict["span_id"]
    _check(chat, RAG)
    assert _content(chat)["llm.input_messages.0.message.content"] == RAG_PROMPT
    assert _content(predict)["llm.prompt_template.template"] == client.RAG_TEMPLATE
    assert (predict["category"], predict["input_tokens"], predict["finish_reasons"]) == ("llm", None, None)
    priced = _priced(runs, "llamaindex", "rag")
    assert priced[chat["span_id"]]["cost_usd"] == pytest.approx(_cost(RAG), rel=1e-9)
    # the wrapper repeats the call (storage/call_pairs.py): no call, no cost of its own
    assert (priced[predict["span_id"]]["duplicate_of"], priced[predict["span_id"]]["cost_usd"]) == (
        chat["span_id"],
        None,
    )
    trace = runs.trace_row("llamaindex", "rag")
    assert (trace["input_tokens"], trace["output_tokens"]) == (RAG["in"], RAG["out"])


def test_rag_counts_one_llm_call(runs: Runs) -> None:
    """`OpenAI.predict` (no usage, no finish reason) over `OpenAI.chat` (same model, parent and
    child, one library) is one model call."""
    assert runs.trace_row("llamaindex", "rag")["llm_calls"] == 1


# --- a function-calling agent with one tool --------------------------------------------------------

_STEP = (
    "BaseWorkflowAgent.run_agent_step",
    "chain",
    ("OpenAI._prepare_chat_with_tools", "llm"),
    ("OpenAI.astream_chat", "llm"),
)
AGENT_TREE = (
    "scenario agent", "other",
    ("FunctionAgent.run", "chain",
     ("BaseWorkflowAgent.init_run", "chain"),
     ("BaseWorkflowAgent.setup_agent", "chain"),
     _STEP,
     ("BaseWorkflowAgent.parse_agent_output", "chain"),
     ("BaseWorkflowAgent.call_tool", "chain", ("FunctionTool.acall", "tool")),
     ("BaseWorkflowAgent.aggregate_tool_results", "chain"),
     ("BaseWorkflowAgent.setup_agent", "chain"),
     _STEP,
     ("BaseWorkflowAgent.parse_agent_output", "chain")),
)  # fmt: skip


def test_agent(runs: Runs) -> None:
    """FunctionAgent: model call → tool → model call; LlamaIndex streams each model call."""
    assert _tree(runs.spans("llamaindex", "agent")) == AGENT_TREE
    first, second = runs.named("llamaindex", "agent", "OpenAI.astream_chat")
    _check(first, AGENT_TOOL_CALL)
    _check(second, AGENT_ANSWER)
    call = "llm.output_messages.0.message.tool_calls.0.tool_call."
    out = _content(first)
    assert (out[call + "id"], out[call + "function.name"]) == ("call_fake_0", "get_weather")
    assert json.loads(out[call + "function.arguments"]) == {"location": "Paris"}
    assert json.loads(out["llm.tools.0.tool.json_schema"])["function"]["name"] == "get_weather"
    back = _content(second)  # the tool's result goes back as a `tool` message
    assert (back["llm.input_messages.2.message.role"], back["llm.input_messages.2.message.content"]) == (
        "tool",
        client.get_weather("Paris"),
    )
    assert back["llm.output_messages.0.message.content"] == f"Fake reply: {client.WEATHER}"
    (tool,) = runs.named("llamaindex", "agent", "FunctionTool.acall")
    assert (tool["category"], tool["operation"], tool["tool_name"]) == ("tool", "execute_tool", "get_weather")
    assert json.loads(_content(tool)["output.value"])["raw_output"] == client.get_weather("Paris")
    priced = _priced(runs, "llamaindex", "agent")
    for row, exp in ((first, AGENT_TOOL_CALL), (second, AGENT_ANSWER)):
        assert priced[row["span_id"]]["cost_usd"] == pytest.approx(_cost(exp), rel=1e-9)
    # `_prepare_chat_with_tools` sends nothing (it builds the call's arguments): an LLM span without
    # usage or finish reason before its step's call, which it repeats (storage/call_pairs.py)
    preps = runs.named("llamaindex", "agent", "OpenAI._prepare_chat_with_tools")
    for prep, call in zip(preps, (first, second), strict=True):
        assert (prep["input_tokens"], prep["finish_reasons"]) == (None, None)
        assert prep["parent_span_id"] == call["parent_span_id"] and prep["end_time"] <= call["start_time"]
        assert (priced[prep["span_id"]]["duplicate_of"], priced[prep["span_id"]]["cost_usd"]) == (call["span_id"], None)
    trace = runs.trace_row("llamaindex", "agent")
    assert trace["input_tokens"] == AGENT_TOOL_CALL["in"] + AGENT_ANSWER["in"]


def test_cost_report_counts_the_calls_with_usage(runs: Runs) -> None:
    """The cost report counts a call only where there is usage: not the stream without usage, the
    failed call, `OpenAI.predict` or `_prepare_chat_with_tools`; each call at genai-prices' price."""
    calls = [CHAT, STREAM, RAG, AGENT_TOOL_CALL, AGENT_ANSWER]
    (totals,) = call_totals(Analytics(runs.collector.data_dir), Filters(project="llamaindex")).to_dicts()
    by_hand = {
        "calls": 5,
        "input_tokens": 9 + 6 + 20 + 7 + 10,
        "output_tokens": 10 + 9 + 23 + 4 + 12,
        "cache_read_tokens": 4 + 3 + 10 + 3 + 5,
        "reasoning_tokens": 2 + 1 + 1 + 1 + 3,
        "unpriced_calls": 0,
    }
    assert by_hand == {**by_hand, "calls": len(calls), "input_tokens": sum(e["in"] for e in calls),
                       "output_tokens": sum(e["out"] for e in calls),
                       "cache_read_tokens": sum(e["cached"] for e in calls)}  # fmt: skip
    assert {k: totals[k] for k in by_hand} == by_hand
    assert totals["cost_usd"] == pytest.approx(sum(_cost(e) for e in calls), rel=1e-9)


def test_agent_counts_two_llm_calls(runs: Runs) -> None:
    """Two model calls; the `_prepare_chat_with_tools` LLM spans are none."""
    assert runs.trace_row("llamaindex", "agent")["llm_calls"] == 2


# --- one call, two spans: OpenInference's LlamaIndex spans over its openai spans --------------------

CALLS = {"chat": [CHAT], "stream": [STREAM], "rag": [RAG], "agent": [AGENT_TOOL_CALL, AGENT_ANSWER]}
# Only openinference-openai's `CreateEmbeddings` spans carry embedding usage: the documents, then the question.
EMBED_TOKENS = [sum(words(d) for d in client.DOCUMENTS), words(client.RAG_QUESTION)]
NESTED = ("chat", "rag", "error")  # the openai span under LlamaIndex's; in the others after it


def test_one_call_two_spans_as_observed(runs: Runs) -> None:
    """openinference-instrumentation-openai adds `ChatCompletion` per model call: the child of
    LlamaIndex's `OpenAI.chat`, or, for a stream (LlamaIndex's span ends when the stream is
    returned), a sibling that starts after it ends. Both have the full usage."""
    config = "llamaindex_openai"
    for scenario in (*CALLS, "stream_no_usage", "error"):
        ours = [
            s for s in runs.spans(config, scenario) if s["scope_name"] == OI_LLAMA and s["input_tokens"] is not None
        ]
        theirs = [s for s in runs.spans(config, scenario) if s["scope_name"] == OI_OPENAI and s["category"] == "llm"]
        if scenario in ("stream_no_usage", "error"):
            ours = [s for s in runs.spans(config, scenario) if s["name"].startswith("OpenAI.")]
        assert len(ours) == len(theirs) == len(CALLS.get(scenario, [None])), scenario
        for mine, other in zip(ours, theirs, strict=True):
            if scenario in NESTED:
                assert other["parent_span_id"] == mine["span_id"], scenario
            else:
                assert other["parent_span_id"] == mine["parent_span_id"], scenario
                assert other["start_time"] >= mine["end_time"], scenario
            assert (other["request_model"], other["response_model"]) == (
                MODEL,
                None if scenario == "error" else f"{MODEL}-2025-01-01",
            )
            for col in ("input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"):
                assert other[col] == mine[col], (scenario, col)
        embeds = [s for s in runs.spans(config, scenario) if s["name"] == "CreateEmbeddings"]
        assert [s["input_tokens"] for s in embeds] == (EMBED_TOKENS if scenario == "rag" else []), scenario


def test_one_call_two_spans_counts_once(runs: Runs) -> None:
    """Each call counts once (storage/call_pairs.py): `ChatCompletion` (as complete, nearer the wire);
    LlamaIndex's span of the call repeats it (its child, or for a stream its later sibling), and
    so do `OpenAI.predict` and `_prepare_chat_with_tools`."""
    config = "llamaindex_openai"
    for scenario in (*CALLS, "stream_no_usage", "error"):
        calls = CALLS.get(scenario, [])
        trace = runs.trace_row(config, scenario)
        embeds = sum(EMBED_TOKENS) if scenario == "rag" else 0
        assert (trace["llm_calls"], trace["input_tokens"], trace["output_tokens"]) == (
            max(len(calls), 1),
            sum(e["in"] for e in calls) + embeds,
            sum(e["out"] for e in calls),
        ), scenario
        spans = runs.spans(config, scenario)
        counted = [s["span_id"] for s in spans if s["scope_name"] == OI_OPENAI and s["category"] == "llm"]
        dups = runs.collector.query(
            "SELECT span_id, duplicate_of FROM duplicate_calls WHERE project = ? AND trace_id = ?",
            [config, runs.trace(config, scenario)],
        )
        repeated = {s["span_id"] for s in spans if s["scope_name"] == OI_LLAMA and s["category"] == "llm"}
        assert {d["span_id"] for d in dups} == repeated and {d["duplicate_of"] for d in dups} == set(counted), scenario


# --- docs/instrumentations.md: the observed keys, regenerated from this run -------------------------

DOC = ROOT / "docs" / "instrumentations.md"
BEGIN, END = "<!-- observed-llamaindex:begin -->", "<!-- observed-llamaindex:end -->"


def render_observed(runs: Runs) -> str:
    """Per configuration and instrumentation scope: span kinds, attribute and content keys, events."""
    out = []
    for config, cfg in CONFIGS.items():
        out += [f"### `{config}`", "", f"- over OTLP/{cfg.protocol}"]
        for scope in (OI_LLAMA, OI_OPENAI) if config == "llamaindex_openai" else (OI_LLAMA,):
            spans = runs.collector.query(
                "SELECT name, kind, category, attributes, content, events FROM spans "
                "WHERE project = ? AND scope_name = ? ORDER BY name",
                [config, scope],
            )
            kinds = sorted({(s["category"], s["kind"]) for s in spans})
            out += [
                f"- scope `{scope}`: {len({s['name'] for s in spans})} span names; categories "
                + ", ".join(f"`{c}` ({k})" for c, k in kinds),
                *observed_lines(spans, names=False, indent="  "),
            ]
        out.append("")
    return "\n".join(out)


def test_docs_list_what_was_observed(runs: Runs) -> None:
    """docs/instrumentations.md holds this run's observations; SPANLAKE_REGEN_DOCS=1 rewrites them."""
    assert not runs.failures, runs.failures
    check_observed(runs, DOC, BEGIN, END, render_observed(runs))
