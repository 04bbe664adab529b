"""Run the real OpenAI Agents SDK through OpenInference against the fake server; export to a collector.

Run in its own process (the instrumentor registers a global trace processor):

    python -m tests.collector.instrumented_agents CONFIG --url URL --otlp ENDPOINT \
        --protocol grpc|http --project NAME

CONFIG is `openinference` (openinference-instrumentation-openai-agents; the SDK's default, the
Responses API), `openinference_chat` (the same with `set_default_openai_api("chat_completions")`)
or `openinference_openai` (the Responses API, with openinference-instrumentation-openai on too:
one model call, two LLM spans). The SDK's own trace export to OpenAI is off: its processors are
replaced by OpenInference's alone, and its client is ours (no network). No retries: the client
has `max_retries=0`, the runner's retries are off by default.

Each scenario is one agent run with nothing around it, as an app runs it, so its trace's root is
the SDK's trace span. stdout gets one JSON object: library versions and, per scenario, the id
of the one trace it started (a span processor records every root span).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tests.collector.instrumented_process import providers, report, runner_parser

MODEL = "gpt-5-nano"  # the fake answers gpt-5-nano-2025-01-01, which genai-prices prices as gpt-5-nano
SYSTEM = "You are terse."  # 3 words
QUESTION = "What is OpenTelemetry in one line?"  # 6 words
WEATHER = "What is the weather in Paris today?"  # 7 words
FORECAST = "Sunny and 21 degrees"  # the tool's answer, 4 words
WEATHER_WORKFLOW = "Weather workflow"
SCENARIOS = ("chat", "tools", "stream", "stream_usage", "error")
PACKAGES = {
    "openinference": ["openinference-instrumentation-openai-agents"],
    "openinference_chat": ["openinference-instrumentation-openai-agents"],
    "openinference_openai": ["openinference-instrumentation-openai-agents", "openinference-instrumentation-openai"],
}


def get_weather(location: str) -> str:
    """Current weather for a city."""
    return FORECAST


def root_spans() -> Any:
    """An OTel span processor whose `trace_ids` are those of every root span, in start order."""
    from opentelemetry.sdk.trace import SpanProcessor

    class RootSpans(SpanProcessor):
        def __init__(self) -> None:
            self.trace_ids: list[str] = []

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if span.parent is None:
                self.trace_ids.append(format(span.get_span_context().trace_id, "032x"))

    return RootSpans()


async def _run(name: str) -> None:
    import openai
    from agents import Agent, ModelSettings, RunConfig, Runner, function_tool

    agent = Agent(name="Assistant", instructions=SYSTEM, model=MODEL)
    if name == "chat":
        await Runner.run(agent, QUESTION)
    elif name == "tools":
        weather = Agent(name="Weather", instructions=SYSTEM, model=MODEL, tools=[function_tool(get_weather)])
        await Runner.run(weather, WEATHER, run_config=RunConfig(workflow_name=WEATHER_WORKFLOW))
    elif name == "stream":
        result = Runner.run_streamed(agent, QUESTION)
        async for _ in result.stream_events():
            pass
    elif name == "stream_usage":  # Chat Completions streams report usage only when asked (non-OpenAI URL)
        asking = Agent(
            name="Assistant", instructions=SYSTEM, model=MODEL, model_settings=ModelSettings(include_usage=True)
        )
        result = Runner.run_streamed(asking, QUESTION)
        async for _ in result.stream_events():
            pass
    elif name == "error":
        failing = Agent(name="Assistant", instructions=SYSTEM, model="fail-500")
        try:
            await Runner.run(failing, QUESTION)
        except openai.InternalServerError:
            pass
        else:
            raise AssertionError("fail-500 did not fail")


def traced(args: Any, service: str) -> tuple[Any, Any, Any]:
    """(tracer provider, logger provider, root_spans on the tracer provider) of the process's project."""
    tracer_provider, logger_provider = providers(
        args.otlp, args.protocol, {"service.name": service, "spanlake.project": args.project}
    )
    roots = root_spans()
    tracer_provider.add_span_processor(roots)
    return tracer_provider, logger_provider, roots


def run_scenarios(scenarios: Iterable[str], run: Callable[[str], Awaitable[None]], roots: Any) -> dict[str, str]:
    """`run(name)` of each scenario, in one event loop (the client's connections belong to it);
    per scenario the one trace it started (`roots`: root_spans, on the tracer provider)."""
    traces: dict[str, str] = {}

    async def run_all() -> None:
        for name in scenarios:
            before = len(roots.trace_ids)
            await run(name)
            (traces[name],) = roots.trace_ids[before:]  # one run, one trace

    asyncio.run(run_all())
    return traces


def main() -> None:
    args = runner_parser("config", PACKAGES).parse_args()

    tracer_provider, logger_provider, roots = traced(args, f"it-agents-{args.config}")

    import openai
    from agents import set_default_openai_api, set_default_openai_client, set_trace_processors
    from agents.tracing import get_trace_provider
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    set_trace_processors([])  # no export to OpenAI's trace endpoint, whatever happens below
    OpenAIAgentsInstrumentor().instrument(tracer_provider=tracer_provider)  # its processor, alone
    processors = get_trace_provider()._multi_processor._processors  # type: ignore[attr-defined]
    assert [type(p).__name__ for p in processors] == ["OpenInferenceTracingProcessor"], processors
    if args.config == "openinference_openai":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    if args.config == "openinference_chat":
        set_default_openai_api("chat_completions")
    client = openai.AsyncOpenAI(base_url=args.url, api_key="sk-fake", max_retries=0)
    set_default_openai_client(client, use_for_tracing=False)

    traces = run_scenarios(SCENARIOS, _run, roots)
    packages = [*PACKAGES[args.config], "openai-agents", "openai", "opentelemetry-sdk"]
    report(packages, traces, tracer_provider, logger_provider)


if __name__ == "__main__":
    main()
