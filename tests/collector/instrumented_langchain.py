"""Run LangChain and LangGraph, instrumented, with `langchain-openai`'s ChatOpenAI against the fake
OpenAI server; export to a collector.

Run in its own process (instrumentors patch langchain and openai globally):

    python -m tests.collector.instrumented_langchain FRAMEWORK [--client CLIENT] --url URL \
        --otlp ENDPOINT --protocol grpc|http --project NAME

FRAMEWORK is `openinference` (openinference-instrumentation-langchain) or `openllmetry`
(opentelemetry-instrumentation-langchain). CLIENT, if given, instruments the openai client too, as
a team instrumenting everything would: `openinference` (openinference-instrumentation-openai) or
`openllmetry` (opentelemetry-instrumentation-openai). The tracer provider is the global one.

Scenarios: `chat` (system + user), `stream` (`stream_usage=True`), `stream_default` (the same
without it: langchain-openai asks no usage of a stream to a base_url of its own), `chain`
(prompt | model | parser), `agent` (a LangGraph ReAct agent with one tool, get_weather: the fake
answers with a tool call, then with text), `error` (model fail-500, max_retries=0), each under a
span `scenario <name>`; `bare`, the agent again with
no enclosing span (as a script that calls the agent directly); with CLIENT, `direct`: the openai
client called without LangChain (shows that the client instrumentation is on). stdout gets one
JSON object: library versions, per scenario the trace id (for `bare`, the trace of the graph's
root span) and every trace id its spans were exported under.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tests.collector.instrumented_process import providers, report, runner_parser, scenario

MODEL = "gpt-5-nano"  # the fake answers gpt-5-nano-2025-01-01, which genai-prices prices as gpt-5-nano
SYSTEM = "You are terse."  # 3 words
QUESTION = "What is OpenTelemetry in one line?"  # 6 words
TOPIC = "OpenTelemetry"
TEMPLATE = "Explain {topic} in one line."  # 5 words once filled in
WEATHER = "What is the weather in Paris today?"  # 7 words
TOOL_RESULT = "Sunny in Paris"  # 3 words
SCENARIOS = ("chat", "stream", "stream_default", "chain", "agent", "error", "bare")
FRAMEWORKS = {
    "openinference": "openinference-instrumentation-langchain",
    "openllmetry": "opentelemetry-instrumentation-langchain",
}
CLIENTS = {
    "openinference": "openinference-instrumentation-openai",
    "openllmetry": "opentelemetry-instrumentation-openai",
}


def _instrument(framework: str, client: str | None, tracer_provider: Any) -> None:
    if framework == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(tracer_provider=tracer_provider)
    else:
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        LangchainInstrumentor().instrument(tracer_provider=tracer_provider)
    if client == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif client == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as Traceloop

        Traceloop().instrument(tracer_provider=tracer_provider)


def _trace_ids() -> Any:
    """A span processor noting the trace id of every span that ends, per scenario."""
    from opentelemetry.sdk.trace import SpanProcessor

    class TraceIds(SpanProcessor):
        def __init__(self) -> None:
            self.scenario = ""
            self.seen: dict[str, set[str]] = defaultdict(set)

        def on_end(self, span: Any) -> None:
            self.seen[self.scenario].add(format(span.context.trace_id, "032x"))

    return TraceIds()


def _agent(url: str) -> Any:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent

    @tool
    def get_weather(location: str) -> str:
        """Current weather for a city."""
        return f"Sunny in {location}"

    return create_react_agent(ChatOpenAI(model=MODEL, base_url=url, api_key="sk-fake", max_retries=0), [get_weather])


def _run(name: str, url: str) -> None:
    import openai
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=url, api_key="sk-fake", max_retries=0)
    if name == "chat":
        llm.invoke([("system", SYSTEM), ("human", QUESTION)])
    elif name == "stream":
        for _ in llm.stream(QUESTION, stream_usage=True):
            pass
    elif name == "stream_default":
        for _ in llm.stream(QUESTION):
            pass
    elif name == "chain":
        prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", TEMPLATE)])
        (prompt | llm | StrOutputParser()).invoke({"topic": TOPIC})
    elif name in ("agent", "bare"):
        _agent(url).invoke({"messages": [("user", WEATHER)]})
    elif name == "error":
        try:
            ChatOpenAI(model="fail-500", base_url=url, api_key="sk-fake", max_retries=0).invoke(QUESTION)
        except openai.InternalServerError:
            pass
        else:
            raise AssertionError("fail-500 did not fail")
    elif name == "direct":
        client = openai.OpenAI(base_url=url, api_key="sk-fake", max_retries=0)
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])


def main() -> None:
    parser = runner_parser("framework", FRAMEWORKS)
    parser.add_argument("--client", choices=sorted(CLIENTS), help="also instrument the openai client")
    args = parser.parse_args()

    from opentelemetry import trace

    resource = {"service.name": f"it-langchain-{args.project}", "spanlake.project": args.project}
    tracer_provider, logger_provider = providers(args.otlp, args.protocol, resource)
    ids = _trace_ids()
    tracer_provider.add_span_processor(ids)
    trace.set_tracer_provider(tracer_provider)
    _instrument(args.framework, args.client, tracer_provider)
    tracer = tracer_provider.get_tracer("spanlake.tests")
    traces: dict[str, str] = {}
    for name in SCENARIOS + (("direct",) if args.client else ()):
        ids.scenario = name
        if name == "bare":
            _run(name, args.url)
            continue
        with scenario(tracer, name) as traces[name]:
            _run(name, args.url)
    packages = [FRAMEWORKS[args.framework], "langchain-core", "langchain-openai", "langgraph", "openai"]
    packages += [CLIENTS[args.client]] if args.client else []
    trace_ids = {k: sorted(v) for k, v in ids.seen.items()}
    report([*packages, "opentelemetry-sdk"], traces, tracer_provider, logger_provider, trace_ids=trace_ids)


if __name__ == "__main__":
    main()
