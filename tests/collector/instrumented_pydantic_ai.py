"""Run real Pydantic AI agents, with its own OpenTelemetry output, against the fake server; export to a collector.

Run in its own process (`Agent.instrument_all` is global):

    python -m tests.collector.instrumented_pydantic_ai CONFIG --url URL --otlp ENDPOINT \
        --protocol grpc|http --project NAME

CONFIG is `responses` (`OpenAIResponsesModel`, what the model name `openai:...` picks),
`chat` (`OpenAIChatModel`, Chat Completions) or `chat_openai_v2` (the same with
opentelemetry-instrumentation-openai-v2 on too: one model call, two LLM spans). Pydantic AI's
instrumentation is `Agent.instrument_all(InstrumentationSettings(tracer_provider=...))` with a
plain OTel SDK tracer provider and the OTLP exporter: no logfire. No retries: the openai client
has `max_retries=0`.

Each scenario is one agent run with nothing around it, as an app runs it, so its trace's root
is Pydantic AI's agent run span. stdout gets one JSON object: library versions and, per
scenario, the id of the one trace it started.
"""

from __future__ import annotations

from typing import Any

from tests.collector.instrumented_agents import FORECAST, MODEL, QUESTION, SYSTEM, WEATHER, run_scenarios, traced
from tests.collector.instrumented_process import report, runner_parser

AGENT = "assistant"
STRUCTURED = "Name one tracing standard"  # 4 words
SCENARIOS = ("chat", "tools", "stream", "structured", "error")
PACKAGES = {
    "responses": [],
    "chat": [],
    "chat_openai_v2": ["opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai"],
}


async def _run(name: str, model: Any, failing: Any) -> None:
    from pydantic import BaseModel
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.exceptions import ModelHTTPError

    class Answer(BaseModel):
        answer: str

    agent = Agent(model, name=AGENT, instructions=SYSTEM)
    if name == "chat":
        await agent.run(QUESTION)
    elif name == "tools":

        @agent.tool_plain
        def get_weather(location: str) -> str:
            """Current weather for a city."""
            return FORECAST

        await agent.run(WEATHER)
    elif name == "stream":
        async with agent.run_stream(QUESTION) as result:
            async for _ in result.stream_text():
                pass
    elif name == "structured":
        structured = Agent(model, name=AGENT, instructions=SYSTEM, output_type=NativeOutput(Answer))
        out = await structured.run(STRUCTURED)
        assert out.output == Answer(answer=STRUCTURED), out.output
    elif name == "error":
        try:
            await Agent(failing, name=AGENT, instructions=SYSTEM).run(QUESTION)
        except ModelHTTPError as e:
            assert e.status_code == 500, e
        else:
            raise AssertionError("fail-500 did not fail")


def main() -> None:
    args = runner_parser("config", PACKAGES).parse_args()

    tracer_provider, logger_provider, roots = traced(args, f"it-pydantic-ai-{args.config}")

    import openai
    from pydantic_ai import Agent, InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    Agent.instrument_all(InstrumentationSettings(tracer_provider=tracer_provider))
    if args.config == "chat_openai_v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    provider = OpenAIProvider(openai_client=openai.AsyncOpenAI(base_url=args.url, api_key="sk-fake", max_retries=0))
    model_class = OpenAIResponsesModel if args.config == "responses" else OpenAIChatModel
    model, failing = model_class(MODEL, provider=provider), model_class("fail-500", provider=provider)

    traces = run_scenarios(SCENARIOS, lambda name: _run(name, model, failing), roots)
    packages = [*PACKAGES[args.config], "pydantic-ai-slim", "openai", "opentelemetry-sdk"]
    report(packages, traces, tracer_provider, logger_provider)


if __name__ == "__main__":
    main()
