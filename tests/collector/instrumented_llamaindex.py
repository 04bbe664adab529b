"""Run real LlamaIndex, instrumented by OpenInference, against the fake OpenAI server; export to a collector.

Run in its own process, with the python of .venv-llamaindex (scripts/venv-llamaindex: LlamaIndex's
OpenAI LLM needs openai<3; this file imports nothing of spanlake):

    python -m tests.collector.instrumented_llamaindex LIBRARY --url URL --slow-url URL --down-url URL \
        --otlp ENDPOINT --protocol grpc|http --project NAME

LIBRARY is `llamaindex` (openinference-instrumentation-llama-index) or `llamaindex_openai` (the
same plus openinference-instrumentation-openai on the openai client LlamaIndex calls). `--url` is
the fake server, `--slow-url` one that holds every answer 150 ms (the streamed call), `--down-url`
one that answers 503 to everything (the failed call). Each scenario runs under a parent span
`scenario <name>`; stdout gets one JSON object: library versions and, per scenario, the trace id.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from tests.collector.instrumented_process import providers, report, runner_parser, scenario

MODEL = "gpt-4o-mini"
EMBED_MODEL = "text-embedding-3-small"
SYSTEM = "You are terse."
QUESTION = "What is OpenTelemetry in one line?"
WEATHER = "What is the weather in Paris today?"
DOCUMENTS = (
    "Spanlake stores traces in Parquet files.",
    "The collector speaks OTLP over gRPC and HTTP.",
    "Budgets alert when spend passes a limit.",
)
RAG_QUESTION = "Where does spanlake store traces?"
RAG_TEMPLATE = "Context: {context_str} Question: {query_str}"
TOP_K = 2
SCENARIOS = ("chat", "stream", "stream_no_usage", "rag", "agent", "error")
PACKAGES = {
    "llamaindex": ("openinference-instrumentation-llama-index",),
    "llamaindex_openai": ("openinference-instrumentation-llama-index", "openinference-instrumentation-openai"),
}
USAGE = {"stream_options": {"include_usage": True}}  # LlamaIndex drops it on calls that do not stream


def get_weather(location: str) -> str:
    """Current weather for a city."""
    return f"Sunny in {location}"


def _instrument(library: str, tracer_provider: Any) -> None:
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    LlamaIndexInstrumentor().instrument(tracer_provider=tracer_provider)
    if library == "llamaindex_openai":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)


def _llm(url: str, **extra: Any) -> Any:
    from llama_index.llms.openai import OpenAI

    return OpenAI(model=MODEL, api_base=url, api_key="sk-fake", max_retries=0, **extra)


def _run(name: str, args: argparse.Namespace) -> None:
    from llama_index.core import Document, PromptTemplate, VectorStoreIndex
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.llms import ChatMessage
    from llama_index.embeddings.openai import OpenAIEmbedding

    user = ChatMessage(role="user", content=QUESTION)
    if name == "chat":
        _llm(args.url).chat([ChatMessage(role="system", content=SYSTEM), user])
    elif name == "stream":  # with the usage chunk: LlamaIndex does not ask for it by itself
        for _ in _llm(args.slow_url, additional_kwargs=USAGE).stream_chat([user]):
            pass
    elif name == "stream_no_usage":
        for _ in _llm(args.url).stream_chat([user]):
            pass
    elif name == "rag":
        embed = OpenAIEmbedding(model=EMBED_MODEL, api_base=args.url, api_key="sk-fake", max_retries=0)
        index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS], embed_model=embed)
        engine = index.as_query_engine(
            llm=_llm(args.url), similarity_top_k=TOP_K, text_qa_template=PromptTemplate(RAG_TEMPLATE)
        )
        engine.query(RAG_QUESTION)
    elif name == "agent":
        agent = FunctionAgent(tools=[get_weather], llm=_llm(args.url, additional_kwargs=USAGE))

        async def run() -> None:
            await agent.run(WEATHER)

        asyncio.run(run())
    elif name == "error":
        import openai

        try:
            _llm(args.down_url).chat([user])
        except openai.InternalServerError:
            pass
        else:
            raise AssertionError("the down server did not fail")


def main() -> None:
    parser = runner_parser("library", PACKAGES)
    parser.add_argument("--slow-url", required=True, help="a fake server that holds every answer")
    parser.add_argument("--down-url", required=True, help="a fake server that answers 503")
    args = parser.parse_args()

    from opentelemetry import trace

    resource = {"service.name": f"it-{args.library}", "spanlake.project": args.project}
    tracer_provider, logger_provider = providers(args.otlp, args.protocol, resource)
    trace.set_tracer_provider(tracer_provider)
    _instrument(args.library, tracer_provider)
    from llama_index.core import Settings

    # LlamaIndex counts tokens to split text and fit prompts, by default with tiktoken, whose
    # vocabulary is a download: the fake server's own rule (words) instead.
    Settings.tokenizer = str.split
    tracer = tracer_provider.get_tracer("spanlake.tests")
    traces: dict[str, str] = {}
    for name in SCENARIOS:
        with scenario(tracer, name) as traces[name]:
            _run(name, args)
    packages = [*PACKAGES[args.library], "llama-index-core", "llama-index-llms-openai", "openai", "opentelemetry-sdk"]
    packages.append("llama-index-embeddings-openai")
    report(packages, traces, tracer_provider, logger_provider)


if __name__ == "__main__":
    main()
