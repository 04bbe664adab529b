"""Designed lakes where one model call is seen as two or three spans (storage.call_pairs), with
what each trace counts worked out by hand; read by tests/analytics/test_call_pairs_*.py and
tests/engines/test_spark.py.

`build`: a client library's own span and an instrumentation's LLM span of the same call.
T0 = 10:00 UTC, every model priced $1 per million input and $2 per million
output tokens (cost = (in + 2 out) / 1e6). Instrumentation spans, client spans and roots
arrive in different files, as batches of different exporters would. Per trace (besides its
task root), and what counts (calls, input, output tokens):

1. OpenInference-like `messages.create` 1000/101 → its child, the client's span 1000/100: 1, 1000, 100.
2. OpenLLMetry-like `anthropic.chat` 2000/201 enclosing its sibling, the client's span 2000/200,
   same response id: 1, 2000, 200.
3. An instrumentation call 300/30, then a client call 400/40 (siblings, one after the other,
   same model): 2, 700, 70.
4. A retry: an instrumented call and its client child, both failed (no usage); then again,
   500/51 and 500/50: 2, 500, 50.
5. A client call alone 800/80: 1, 800, 80.
6. An instrumentation call 900/90 enclosing a client call 150/15, response ids differ: 2, 1050, 105.
7. An instrumentation call to acme-2 50/5 enclosing a client call to acme-1 60/6: 2, 110, 11.
8. Root at 10:59:59.995; an instrumented call at 10:59:59.999 600/60, its client child at
   11:00:00.0005 600/60: 1, 600, 60 (in hour 11).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.analytics.helpers import span, write

H = 3_600_000  # ms
MIN = 60_000  # ms
CLIENT = "com.anthropic.sdk.python"
OI = "openinference.instrumentation.anthropic"
OL = "opentelemetry.instrumentation.anthropic"
TASK = "spanlake.task.name"


def call(model: str, inp: int | None, out: int | None, rid: str | None = None) -> dict[str, Any]:
    """Attributes of a chat call (no usage when `inp` is None: a failed call)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "acme",
        "gen_ai.request.model": model,
    }
    if inp is not None:
        attrs |= {"gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out}
    if rid is not None:
        attrs["gen_ai.response.id"] = rid
    return attrs


def build(d: Path) -> None:
    def at(trace: int) -> float:
        return (trace - 1) * MIN

    roots = [span(t, 1, at_ms=at(t), ms=1000, name=f"task {t}", **{TASK: f"t{t}"}) for t in range(1, 8)]
    roots.append(span(8, 1, at_ms=H - 5, ms=400, name="task 8", **{TASK: "t8"}))
    inst: dict[str, list[Span]] = {
        OI: [
            span(1, 2, 1, at_ms=at(1) + 10, ms=500, name="messages.create", **call("acme-1", 1000, 101)),
            span(4, 2, 1, at_ms=at(4) + 10, ms=50, name="messages.create", error=True, **call("acme-1", None, None)),
            span(4, 4, 1, at_ms=at(4) + 100, ms=200, name="messages.create", **call("acme-1", 500, 51)),
            span(8, 2, 1, at_ms=H - 1, ms=300, name="messages.create", **call("acme-1", 600, 60)),
        ],
        OL: [
            span(2, 2, 1, at_ms=at(2) + 10, ms=500, name="anthropic.chat", **call("acme-1", 2000, 201, "msg_2")),
            span(3, 2, 1, at_ms=at(3) + 10, ms=100, name="anthropic.chat", **call("acme-1", 300, 30, "msg_3a")),
            span(6, 2, 1, at_ms=at(6) + 10, ms=600, name="anthropic.chat", **call("acme-1", 900, 90, "msg_6a")),
            span(7, 2, 1, at_ms=at(7) + 10, ms=500, name="anthropic.chat", **call("acme-2", 50, 5)),
        ],
    }
    name = "anthropic.messages.create"
    clients = [
        span(1, 3, 2, at_ms=at(1) + 11, ms=498, name=name, **call("acme-1", 1000, 100, "msg_1")),
        span(2, 3, 1, at_ms=at(2) + 12, ms=497, name=name, **call("acme-1", 2000, 200, "msg_2")),
        span(3, 3, 1, at_ms=at(3) + 200, ms=100, name=name, **call("acme-1", 400, 40, "msg_3b")),
        span(4, 3, 2, at_ms=at(4) + 11, ms=48, name=name, error=True, **call("acme-1", None, None)),
        span(4, 5, 4, at_ms=at(4) + 101, ms=198, name=name, **call("acme-1", 500, 50, "msg_4")),
        span(5, 2, 1, at_ms=at(5) + 10, ms=300, name=name, **call("acme-1", 800, 80, "msg_5")),
        span(6, 3, 1, at_ms=at(6) + 20, ms=300, name=name, **call("acme-1", 150, 15, "msg_6b")),
        span(7, 3, 1, at_ms=at(7) + 20, ms=400, name=name, **call("acme-1", 60, 6)),
        span(8, 3, 2, at_ms=H + 0.5, ms=290, name=name, **call("acme-1", 600, 60, "msg_8")),
    ]
    write(d, roots)
    for scope, spans in inst.items():
        write(d, spans, scope=scope)
    write(d, clients, scope=CLIENT)


# trace → (llm calls, input tokens, output tokens), counted once per call
COUNTED = {1: (1, 1000, 100), 2: (1, 2000, 200), 3: (2, 700, 70), 4: (2, 500, 50), 5: (1, 800, 80),
           6: (2, 1050, 105), 7: (2, 110, 11), 8: (1, 600, 60)}  # fmt: skip
# (trace, span) of each duplicate → the client's span it repeats
DUPLICATES = {(1, 2): 3, (2, 2): 3, (4, 2): 3, (4, 4): 5, (8, 2): 3}


def cost(inp: int, out: int) -> float:
    return (inp + 2 * out) / 1e6


def sid_hex(n: int) -> str:
    return n.to_bytes(8, "big").hex()


# --- three layers: a framework's LLM span over a client instrumentation's over a client's own --------
#
# Designed data (storage.call_pairs: layer 0 the client's own span, 1 a client instrumentation's,
# 2 a framework's; other scopes have none), same prices, T0 = 10:00 UTC, trace t at (t - 1) min,
# each under its task root. Per trace, and what counts (calls, input, output tokens):
#
# 1. As observed with OpenInference's LangChain and openai instrumentations: root → chain →
#    framework LLM 700/70; the openai span 700/71 is the root's child, enclosed by the LLM span
#    in time: 1, 700, 71 (the inner span's numbers).
# 2. OpenLLMetry LangChain 1000/100 (msg_2), its sibling OpenLLMetry anthropic 1000/101 (msg_2),
#    that span's child the client's own 1000/102 (msg_2): 1, 1000, 102; both others repeat the
#    client's span.
# 3. A framework call alone 300/30, then an openai call alone 200/20: 2, 500, 50.
# 4. A framework call to acme-2 50/5 enclosing an openai call to acme-1 60/6: 2, 110, 11.
# 5. A framework call 400/40 (msg_5a) enclosing an OpenLLMetry openai call 100/10 (msg_5b): 2, 500, 50.
# 6. An app's own LLM span (no layer) 500/50 enclosing an openai call 500/50; then a framework
#    call 80/8 with a framework LLM span 80/8 under it (one layer): 4, 1160, 116.
# 7. A retry: a framework call and its openai call, both failed (no usage), then again 500/50
#    over 500/51: 2 calls (the openai ones), 500, 51.
#
# Projects whose window holds one layer only (pairing is skipped, and nothing changes): fw_only
# (a framework call 300/30), inst_only (an openai call 200/20), client_only (a client's own span
# 100/10), app_over_inst (an app's LLM span 500/50 enclosing an openai call 500/50: 2 calls).

FW_OI = "openinference.instrumentation.langchain"
FW_OL = "opentelemetry.instrumentation.langchain"
OAI_OI = "openinference.instrumentation.openai"
OAI_OL = "opentelemetry.instrumentation.openai.v1"
APP = "acme.app"
CHAIN = {"openinference__span__kind": "CHAIN"}


def build_layers(d: Path) -> None:
    def at(trace: int) -> float:
        return (trace - 1) * MIN

    roots = [span(t, 1, at_ms=at(t), ms=1000, name=f"task {t}", **{TASK: f"t{t}"}) for t in range(1, 8)]
    frameworks: dict[str, list[Span]] = {
        FW_OI: [
            span(1, 2, 1, at_ms=at(1) + 10, ms=500, name="RunnableSequence", **CHAIN),
            span(1, 3, 2, at_ms=at(1) + 20, ms=400, name="ChatOpenAI", **call("acme-1", 700, 70)),
            span(3, 2, 1, at_ms=at(3) + 10, ms=100, name="ChatOpenAI", **call("acme-1", 300, 30)),
            span(4, 2, 1, at_ms=at(4) + 10, ms=500, name="ChatOpenAI", **call("acme-2", 50, 5)),
            span(6, 4, 1, at_ms=at(6) + 600, ms=300, name="ChatOpenAI", **call("acme-1", 80, 8)),
            span(6, 5, 4, at_ms=at(6) + 610, ms=280, name="ChatOpenAI", **call("acme-1", 80, 8)),
            span(7, 2, 1, at_ms=at(7) + 10, ms=50, name="ChatOpenAI", error=True, **call("acme-1", None, None)),
            span(7, 4, 1, at_ms=at(7) + 100, ms=200, name="ChatOpenAI", **call("acme-1", 500, 50)),
        ],
        FW_OL: [
            span(2, 2, 1, at_ms=at(2) + 10, ms=500, name="ChatAnthropic.chat", **call("acme-1", 1000, 100, "msg_2")),
            span(5, 2, 1, at_ms=at(5) + 10, ms=500, name="ChatOpenAI.chat", **call("acme-1", 400, 40, "msg_5a")),
        ],
    }
    inner: dict[str, list[Span]] = {
        OAI_OI: [
            span(1, 4, 1, at_ms=at(1) + 30, ms=380, name="ChatCompletion", **call("acme-1", 700, 71)),
            span(3, 3, 1, at_ms=at(3) + 200, ms=100, name="ChatCompletion", **call("acme-1", 200, 20)),
            span(4, 3, 1, at_ms=at(4) + 20, ms=300, name="ChatCompletion", **call("acme-1", 60, 6)),
            span(6, 3, 1, at_ms=at(6) + 20, ms=300, name="ChatCompletion", **call("acme-1", 500, 50)),
            span(7, 3, 1, at_ms=at(7) + 11, ms=48, name="ChatCompletion", error=True, **call("acme-1", None, None)),
            span(7, 5, 1, at_ms=at(7) + 101, ms=198, name="ChatCompletion", **call("acme-1", 500, 51)),
        ],
        OAI_OL: [span(5, 3, 1, at_ms=at(5) + 20, ms=300, name="openai.chat", **call("acme-1", 100, 10, "msg_5b"))],
        OL: [span(2, 3, 1, at_ms=at(2) + 12, ms=490, name="anthropic.chat", **call("acme-1", 1000, 101, "msg_2"))],
        CLIENT: [span(2, 4, 3, at_ms=at(2) + 13, ms=480, name="messages.create", **call("acme-1", 1000, 102, "msg_2"))],
        APP: [span(6, 2, 1, at_ms=at(6) + 10, ms=500, name="app.llm", **call("acme-1", 500, 50))],
    }
    write(d, roots)
    for scope, spans in (*frameworks.items(), *inner.items()):
        write(d, spans, scope=scope)
    one_layer = {
        "fw_only": [(FW_OI, span(11, 2, 1, at_ms=10, ms=100, name="ChatOpenAI", **call("acme-1", 300, 30)))],
        "inst_only": [(OAI_OI, span(12, 2, 1, at_ms=10, ms=100, name="ChatCompletion", **call("acme-1", 200, 20)))],
        "client_only": [(CLIENT, span(13, 2, 1, at_ms=10, ms=100, name="messages.create", **call("acme-1", 100, 10)))],
        "app_over_inst": [
            (APP, span(14, 2, 1, at_ms=10, ms=500, name="app.llm", **call("acme-1", 500, 50))),
            (OAI_OI, span(14, 3, 1, at_ms=20, ms=300, name="ChatCompletion", **call("acme-1", 500, 50))),
        ],
    }
    for project, scoped in one_layer.items():
        resource = {"service.name": "layers", "spanlake.project": project}
        trace = scoped[0][1].trace_id
        write(d, [span(int.from_bytes(trace, "big"), 1, at_ms=0, ms=1000, name="task")], resource)
        for scope, s in scoped:
            write(d, [s], resource, scope=scope)


LAYERED_COUNTED = {1: (1, 700, 71), 2: (1, 1000, 102), 3: (2, 500, 50), 4: (2, 110, 11), 5: (2, 500, 50),
                   6: (4, 1160, 116), 7: (2, 500, 51)}  # fmt: skip
# (trace, span) of each duplicate → the span it repeats (nearest the wire)
LAYERED_DUPLICATES = {(1, 3): 4, (2, 2): 4, (2, 3): 4, (7, 2): 3, (7, 4): 5}
ONE_LAYER = {"fw_only": (1, 300, 30), "inst_only": (1, 200, 20), "client_only": (1, 100, 10),
             "app_over_inst": (2, 1000, 100)}  # fmt: skip


# --- frameworks over client instrumentations: the model names, the later sibling, the wrappers --------
#
# Designed data (storage.call_pairs), T0 = 10:00 UTC, trace t at (t - 1) min under its task root
# (span 1); every model `*acme-*` at $1 per million input, $0.5 cached input, $2 output tokens
# (cost = (in - cached / 2 + 2 out) / 1e6).
# Framework spans (layer 2) of the Agents SDK (OpenInference), Pydantic AI, LiteLLM (OpenInference) and
# LlamaIndex (OpenInference: it traces methods), over openinference-openai or openai-v2 spans (layer 1).
# Per trace, and what counts (calls, input, output, cached tokens):
#
#  1. Agents SDK `response` acme-1-2025-01-01 100/10, 40 cached, 4 reasoning; its child `Response`
#     requested acme-1 with the same numbers (an alias and its dated snapshot; as complete: the child
#     counts): 1, 100, 10, 40.
#  2. The same on a stream: the child has no usage (and answers acme-1): the SDK's span counts: 1, 100, 10, 40.
#  3. Pydantic AI's `chat` 200/20, 80 cached, 8 reasoning; openai-v2's child 200/20 only, same response
#     id: Pydantic AI's counts (the more complete): 1, 200, 20, 80.
#  4. LiteLLM's `completion` of `acme/acme-1` (provider acme) 300/30; openinference-openai's child of
#     acme-1 300/30: the child counts: 1, 300, 30, 0.
#  5. Two LlamaIndex streams under the root: `stream_chat` 10-20 ms, then its call 25-60 ms (a later
#     sibling) 400/40; `stream_chat` 70-80 ms, its call 85-120 ms 500/50: each pairs with its own
#     call, the first later sibling: 2, 900, 90, 0.
#  6. Not a method-tracing framework: OpenInference's LangChain `ChatOpenAI` 10-50 ms 600/60, then a
#     later sibling openai call 60-90 ms 700/70 (two calls): 2, 1300, 130, 0.
#  7. A LlamaIndex stream 100/10 under a chain span, an openai call 150/15 after it under another: 2, 250, 25, 0.
#  8. LlamaIndex `predict` (no usage, no finish reason) over its child `chat` 800/80: 1, 800, 80, 0.
#  9. LlamaIndex `_prepare_chat_with_tools` (no usage, no finish reason) 10-12 ms, then `chat`
#     15-60 ms 900/90, both under a step span: 1, 900, 90, 0.
# 10. A failed LlamaIndex `chat` (no usage, no finish reason, ERROR) 10-20 ms, then its retry, a
#     sibling, 250/25: 2, 250, 25, 0.
# 11. A LlamaIndex stream without usage but with a finish reason 10-20 ms, then `chat` 30-60 ms
#     350/35: 2, 350, 35, 0.
# 12. LlamaIndex `chat` 450/45 (with usage) over its child `chat` 450/45: 2, 900, 90, 0.
# 13. Two snapshots: Agents SDK `response` acme-1-2025-01-01 100/10 over its child requesting
#     acme-1-2025-06-01 100/10: 2, 200, 20, 0.
# 14. LiteLLM's `other/acme-1` (provider acme: not its prefix) 100/10 over openai's acme-1 100/10: 2, 200, 20, 0.
# 15. A LlamaIndex agent step, as observed: `_prepare_chat_with_tools` 10-12 ms, `astream_chat`
#     15-20 ms 500/50, then the openai call 22-60 ms 500/50, siblings: 1, 500, 50, 0.
# 16. A LlamaIndex stream 10-20 ms 700/70, 30 cached, 7 reasoning; its later sibling, an
#     OpenInference anthropic span 25-60 ms 700/70, and that span's child, the client's own 700/70,
#     30 cached: one group through the anchor's anchor; the LlamaIndex span knows most: 1, 700, 70, 30.
# 17. Root at 10:59:59.995; Pydantic AI's `chat` at 10:59:59.999 200/20, 80 cached; openai-v2's child
#     at 11:00:00.0005 200/20: Pydantic AI's counts, in hour 10 (hour 11 reads it to know its child
#     repeats it): 1, 200, 20, 80.
#
# Project `llama_only`: LlamaIndex `predict` over `chat` 100/10, one layer: pairing is not skipped; 1 call.

AGENTS = "openinference.instrumentation.openai_agents"
PYDANTIC = "pydantic-ai"
LITELLM = "openinference.instrumentation.litellm"
LLAMA = "openinference.instrumentation.llama_index"
OAI_V2 = "opentelemetry.instrumentation.openai_v2"


def usage(
    model: str | None,
    inp: int | None = None,
    out: int | None = None,
    cached: int | None = None,
    reasoning: int | None = None,
    *,
    answered: str | None = None,
    finish: bool | None = None,
    rid: str | None = None,
) -> dict[str, Any]:
    """Attributes of a chat call to provider `acme` (`finish`: a finish reason; by default when there is usage)."""
    attrs = call(model, inp, out, rid) if model else {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme"}
    for key, value in (
        ("gen_ai.response.model", answered),
        ("gen_ai.usage.cache_read.input_tokens", cached),
        ("gen_ai.usage.reasoning.output_tokens", reasoning),
    ):
        if value is not None:
            attrs[key] = value
    if finish if finish is not None else inp is not None:
        attrs["gen_ai.response.finish_reasons"] = ["stop"]
    return attrs


def build_frameworks(d: Path) -> None:
    def at(trace: int) -> float:
        return (trace - 1) * MIN

    snap, step = "acme-1-2025-01-01", {"openinference__span__kind": "CHAIN"}
    roots = [span(t, 1, at_ms=at(t), ms=1000, name=f"task {t}", **{TASK: f"t{t}"}) for t in range(1, 17)]
    roots.append(span(17, 1, at_ms=H - 5, ms=400, name="task 17", **{TASK: "t17"}))
    by_scope: dict[str, list[Span]] = {
        AGENTS: [
            span(1, 2, 1, at_ms=at(1) + 10, ms=500, name="response", **usage(snap, 100, 10, 40, 4, answered=snap)),
            span(2, 2, 1, at_ms=at(2) + 10, ms=500, name="response", **usage(snap, 100, 10, 40, 4, answered=snap)),
            span(13, 2, 1, at_ms=at(13) + 10, ms=500, name="response", **usage(snap, 100, 10)),
        ],
        PYDANTIC: [
            span(3, 2, 1, at_ms=at(3) + 10, ms=500, name="chat acme-1", **usage("acme-1", 200, 20, 80, 8, rid="c3")),
            span(17, 2, 1, at_ms=H - 1, ms=300, name="chat acme-1", **usage("acme-1", 200, 20, 80, rid="c17")),
        ],
        LITELLM: [
            span(4, 2, 1, at_ms=at(4) + 10, ms=500, name="completion", **usage("acme/acme-1", 300, 30)),
            span(14, 2, 1, at_ms=at(14) + 10, ms=500, name="completion", **usage("other/acme-1", 100, 10)),
        ],
        FW_OI: [span(6, 2, 1, at_ms=at(6) + 10, ms=40, name="ChatOpenAI", **usage("acme-1", 600, 60))],
        LLAMA: [
            span(5, 2, 1, at_ms=at(5) + 10, ms=10, name="OpenAI.stream_chat", **usage("acme-1", 400, 40)),
            span(5, 4, 1, at_ms=at(5) + 70, ms=10, name="OpenAI.stream_chat", **usage("acme-1", 500, 50)),
            span(7, 2, 1, at_ms=at(7) + 5, ms=50, name="chain A", **step),
            span(7, 3, 1, at_ms=at(7) + 5, ms=50, name="chain B", **step),
            span(7, 4, 2, at_ms=at(7) + 10, ms=10, name="OpenAI.stream_chat", **usage("acme-1", 100, 10)),
            span(8, 2, 1, at_ms=at(8) + 10, ms=90, name="OpenAI.predict", **usage("acme-1")),
            span(8, 3, 2, at_ms=at(8) + 11, ms=80, name="OpenAI.chat", **usage("acme-1", 800, 80)),
            span(9, 2, 1, at_ms=at(9) + 5, ms=60, name="step", **step),
            span(9, 3, 2, at_ms=at(9) + 10, ms=2, name="OpenAI._prepare_chat_with_tools", **usage("acme-1")),
            span(9, 4, 2, at_ms=at(9) + 15, ms=45, name="OpenAI.chat", **usage("acme-1", 900, 90)),
            span(10, 2, 1, at_ms=at(10) + 10, ms=10, name="OpenAI.chat", error=True, **usage("acme-1")),
            span(10, 3, 1, at_ms=at(10) + 30, ms=30, name="OpenAI.chat", **usage("acme-1", 250, 25)),
            span(11, 2, 1, at_ms=at(11) + 10, ms=10, name="OpenAI.stream_chat", **usage("acme-1", finish=True)),
            span(11, 3, 1, at_ms=at(11) + 30, ms=30, name="OpenAI.chat", **usage("acme-1", 350, 35)),
            span(12, 2, 1, at_ms=at(12) + 10, ms=90, name="OpenAI.chat", **usage("acme-1", 450, 45)),
            span(12, 3, 2, at_ms=at(12) + 20, ms=60, name="OpenAI.chat", **usage("acme-1", 450, 45)),
            span(15, 2, 1, at_ms=at(15) + 5, ms=60, name="step", **step),
            span(15, 3, 2, at_ms=at(15) + 10, ms=2, name="OpenAI._prepare_chat_with_tools", **usage("acme-1")),
            span(15, 4, 2, at_ms=at(15) + 15, ms=5, name="OpenAI.astream_chat", **usage("acme-1", 500, 50)),
            span(16, 2, 1, at_ms=at(16) + 10, ms=10, name="OpenAI.stream_chat", **usage("acme-1", 700, 70, 30, 7)),
        ],
        OAI_OI: [
            span(1, 3, 2, at_ms=at(1) + 20, ms=400, name="Response", **usage("acme-1", 100, 10, 40, 4, answered=snap)),
            span(2, 3, 2, at_ms=at(2) + 20, ms=400, name="Response", **usage("acme-1", answered="acme-1")),
            span(4, 3, 2, at_ms=at(4) + 20, ms=400, name="ChatCompletion", **usage("acme-1", 300, 30, answered=snap)),
            span(5, 3, 1, at_ms=at(5) + 25, ms=35, name="ChatCompletion", **usage("acme-1", 400, 40)),
            span(5, 5, 1, at_ms=at(5) + 85, ms=35, name="ChatCompletion", **usage("acme-1", 500, 50)),
            span(6, 3, 1, at_ms=at(6) + 60, ms=30, name="ChatCompletion", **usage("acme-1", 700, 70)),
            span(7, 5, 3, at_ms=at(7) + 30, ms=20, name="ChatCompletion", **usage("acme-1", 150, 15)),
            span(13, 3, 2, at_ms=at(13) + 20, ms=400, name="Response", **usage("acme-1-2025-06-01", 100, 10)),
            span(14, 3, 2, at_ms=at(14) + 20, ms=400, name="ChatCompletion", **usage("acme-1", 100, 10)),
            span(15, 5, 2, at_ms=at(15) + 22, ms=38, name="ChatCompletion", **usage("acme-1", 500, 50)),
        ],
        OAI_V2: [
            span(3, 3, 2, at_ms=at(3) + 20, ms=400, name="chat acme-1", **usage("acme-1", 200, 20, rid="c3")),
            span(17, 3, 2, at_ms=H + 0.5, ms=290, name="chat acme-1", **usage("acme-1", 200, 20, rid="c17")),
        ],
        OI: [span(16, 3, 1, at_ms=at(16) + 25, ms=35, name="messages.stream", **usage("acme-1", 700, 70))],
        CLIENT: [span(16, 4, 3, at_ms=at(16) + 26, ms=33, name="messages.create", **usage("acme-1", 700, 70, 30))],
    }
    write(d, roots)
    for scope, spans in by_scope.items():
        write(d, spans, scope=scope)
    resource = {"service.name": "llama", "spanlake.project": "llama_only"}
    write(d, [span(21, 1, at_ms=0, ms=1000, name="task")], resource)
    llama = [
        span(21, 2, 1, at_ms=10, ms=90, name="OpenAI.predict", **usage("acme-1")),
        span(21, 3, 2, at_ms=11, ms=80, name="OpenAI.chat", **usage("acme-1", 100, 10)),
    ]
    write(d, llama, resource, scope=LLAMA)


# trace → (calls, input, output, cached tokens), each call counted once
FRAMEWORK_COUNTED = {1: (1, 100, 10, 40), 2: (1, 100, 10, 40), 3: (1, 200, 20, 80), 4: (1, 300, 30, 0),
                     5: (2, 900, 90, 0), 6: (2, 1300, 130, 0), 7: (2, 250, 25, 0), 8: (1, 800, 80, 0),
                     9: (1, 900, 90, 0), 10: (2, 250, 25, 0), 11: (2, 350, 35, 0), 12: (2, 900, 90, 0),
                     13: (2, 200, 20, 0), 14: (2, 200, 20, 0), 15: (1, 500, 50, 0), 16: (1, 700, 70, 30),
                     17: (1, 200, 20, 80)}  # fmt: skip
# (trace, span) of each duplicate → the span that counts
FRAMEWORK_DUPLICATES = {(1, 2): 3, (2, 3): 2, (3, 3): 2, (4, 2): 3, (5, 2): 3, (5, 4): 5, (8, 2): 3, (9, 3): 4,
                        (15, 3): 5, (15, 4): 5, (16, 3): 2, (16, 4): 2, (17, 3): 2}  # fmt: skip


def cached_cost(inp: int, out: int, cached: int) -> float:
    return (inp - cached + 0.5 * cached + 2 * out) / 1e6
