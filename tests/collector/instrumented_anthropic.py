"""Run the real `anthropic` client, optionally instrumented, against the fake server; export to a collector.

Run in its own process (instrumentors patch the anthropic module globally):

    python tests/collector/instrumented_anthropic.py LIBRARY --url URL --otlp ENDPOINT \
        --protocol grpc|http --project NAME

LIBRARY is `sdk` (no instrumentation: the client's own spans only), `openinference`
(openinference-instrumentation-anthropic), `openllmetry` (opentelemetry-instrumentation-anthropic)
or `openllmetry_events` (the same with `use_attributes=False`: content as log records).
The tracer provider is made the global one, as an app's OTel setup does, so the client 2.x traces
itself too unless ANTHROPIC_OPEN_TELEMETRY=false. Each scenario runs under a parent span
`scenario <name>`; stdout gets one JSON object: library versions and, per scenario, the trace id.
"""

from __future__ import annotations

from typing import Any

from tests.collector.instrumented_process import providers, report, runner_parser, scenario

MODEL = "claude-sonnet-4-5"
SYSTEM = "You are terse and you answer in one line only."  # 10 words, cached
QUESTION = "What is OpenTelemetry in one line?"  # 6 words
WEATHER = "What is the weather in Paris today?"  # 7 words
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}
MAX_TOKENS = 64
SCENARIOS = ("chat", "cache_1h", "stream", "stream_helper", "async_chat", "tools", "thinking", "error", "foundry")
PACKAGES = {
    "sdk": None,
    "openinference": "openinference-instrumentation-anthropic",
    "openllmetry": "opentelemetry-instrumentation-anthropic",
    "openllmetry_events": "opentelemetry-instrumentation-anthropic",  # use_attributes=False: content as logs
}


def _system(ttl: str | None) -> list[dict[str, Any]]:
    cache: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": SYSTEM, "cache_control": cache}]


def _instrument(library: str, tracer_provider: Any, logger_provider: Any) -> None:
    if library == "openinference":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tracer_provider)
    elif library in ("openllmetry", "openllmetry_events"):
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as Traceloop

        instrumentor = Traceloop(use_attributes=library == "openllmetry")
        instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)


def _run(name: str, client: Any) -> None:
    user = [{"role": "user", "content": QUESTION}]
    if name == "chat":
        client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, system=_system(None), messages=user)
    elif name == "cache_1h":
        client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, system=_system("1h"), messages=user)
    elif name == "stream":
        stream = client.messages.create(
            model=MODEL, max_tokens=MAX_TOKENS, system=_system(None), messages=user, stream=True
        )
        for _ in stream:
            pass
    elif name == "stream_helper":  # the client's `messages.stream()` helper
        with client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, system=_system(None), messages=user) as s:
            for _ in s.text_stream:
                pass
    elif name == "async_chat":  # AsyncAnthropic, same request as chat
        import asyncio

        import anthropic

        async def call() -> None:
            async with anthropic.AsyncAnthropic(base_url=client.base_url, api_key="sk-ant-fake", max_retries=0) as c:
                await c.messages.create(model=MODEL, max_tokens=MAX_TOKENS, system=_system(None), messages=user)

        asyncio.run(call())
    elif name == "tools":
        client.messages.create(
            model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": WEATHER}], tools=[WEATHER_TOOL]
        )
    elif name == "thinking":
        client.messages.create(
            model=MODEL,
            max_tokens=MAX_TOKENS,
            messages=user,
            thinking={"type": "enabled", "budget_tokens": 32},
        )
    elif name == "foundry":  # a platform client (AnthropicFoundry), same request as chat
        import anthropic

        foundry = anthropic.AnthropicFoundry(base_url=str(client.base_url), api_key="sk-ant-fake", max_retries=0)
        foundry.messages.create(model=MODEL, max_tokens=MAX_TOKENS, system=_system(None), messages=user)
    elif name == "error":
        import anthropic

        try:
            client.messages.create(model="fail-529", max_tokens=MAX_TOKENS, messages=user)
        except anthropic.APIStatusError as e:
            assert e.status_code == 529, e
        else:
            raise AssertionError("fail-529 did not fail")


def main() -> None:
    args = runner_parser("library", PACKAGES, "the fake server's base URL").parse_args()

    from opentelemetry import trace

    tracer_provider, logger_provider = providers(
        args.otlp, args.protocol, {"service.name": f"it-anthropic-{args.library}", "spanlake.project": args.project}
    )
    trace.set_tracer_provider(tracer_provider)
    _instrument(args.library, tracer_provider, logger_provider)
    import anthropic

    client = anthropic.Anthropic(base_url=args.url, api_key="sk-ant-fake", max_retries=0)
    tracer = tracer_provider.get_tracer("spanlake.tests")
    traces: dict[str, str] = {}
    for name in SCENARIOS:
        with scenario(tracer, name) as traces[name]:
            _run(name, client)
    packages = [p for p in (PACKAGES[args.library], "anthropic", "opentelemetry-sdk") if p]
    report(packages, traces, tracer_provider, logger_provider)


if __name__ == "__main__":
    main()
