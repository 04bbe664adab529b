"""Run one real OpenAI instrumentation against the fake server and export to a collector.

Run in its own process (instrumentors patch the openai module globally):

    python -m tests.collector.instrumented_client LIBRARY --openai-url URL --otlp ENDPOINT \
        --protocol grpc|http --project NAME [--metrics]

LIBRARY is `openai_v2` (opentelemetry-instrumentation-openai-v2), `openinference`
(openinference-instrumentation-openai) or `traceloop` (opentelemetry-instrumentation-openai);
the library's own settings come from the environment. Each scenario runs under a parent span
named `scenario <name>`; stdout gets one JSON object: library versions and, per scenario, the
trace id. The scenarios' inputs are the SCENARIOS constants, which the tests import.

With `--metrics` (openai_v2 only: the library that records GenAI metrics) a MeterProvider
exports the library's metrics too, with the standard OTLP metric exporter, after every
scenario and at shutdown: cumulative totals, exported again and again, as an app's periodic
reader would.
"""

from __future__ import annotations

from typing import Any

from tests.collector.instrumented_process import meter_provider, providers, report, runner_parser, scenario

SYSTEM = "You are terse."
QUESTION = "What is OpenTelemetry in one line?"
STREAM_MODEL = "slow-150"  # the fake server waits 150 ms before the first chunk
WEATHER = "What is the weather in Paris today?"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}
JSON_QUESTION = "Answer in JSON please with many words"
JSON_MAX_TOKENS = 3
EMBED_INPUT = ["hello spanlake world", "traces and logs"]
SCENARIOS = ("chat", "stream", "tools", "json_length", "embeddings", "error")
PACKAGES = {
    "openai_v2": "opentelemetry-instrumentation-openai-v2",
    "openinference": "openinference-instrumentation-openai",
    "traceloop": "opentelemetry-instrumentation-openai",
    "traceloop_events": "opentelemetry-instrumentation-openai",  # use_attributes=False: content as log events
}


def _instrument(library: str, tracer_provider: Any, logger_provider: Any, meter_provider: Any = None) -> None:
    if library == "openai_v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    elif library == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif library in ("traceloop", "traceloop_events"):
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as Traceloop

        instrumentor = Traceloop(use_attributes=library == "traceloop")
        instrumentor.instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
        return
    else:
        raise SystemExit(f"unknown library {library}")
    extra = {"meter_provider": meter_provider} if meter_provider is not None else {}
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider, **extra)


def _run(name: str, client: Any) -> None:
    if name == "chat":
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        )
    elif name == "stream":
        stream = client.chat.completions.create(
            model=STREAM_MODEL,
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass
    elif name == "tools":
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": WEATHER}], tools=[WEATHER_TOOL]
        )
    elif name == "json_length":
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": JSON_QUESTION}],
            response_format={"type": "json_object"},
            max_tokens=JSON_MAX_TOKENS,
        )
    elif name == "embeddings":
        client.embeddings.create(model="text-embedding-3-small", input=EMBED_INPUT)
    elif name == "error":
        import openai

        try:
            client.chat.completions.create(model="fail-500", messages=[{"role": "user", "content": QUESTION}])
        except openai.InternalServerError:
            pass
        else:
            raise AssertionError("fail-500 did not fail")


def main() -> None:
    parser = runner_parser("library", PACKAGES, url="--openai-url")
    parser.add_argument("--metrics", action="store_true", help="export the library's metrics too")
    args = parser.parse_args()

    resource = {"service.name": f"it-{args.library}", "spanlake.project": args.project}
    tracer_provider, logger_provider = providers(args.otlp, args.protocol, resource)
    meters = meter_provider(args.otlp, args.protocol, resource) if args.metrics else None
    _instrument(args.library, tracer_provider, logger_provider, meters)
    import openai

    client = openai.OpenAI(base_url=args.openai_url, api_key="sk-fake", max_retries=0)
    tracer = tracer_provider.get_tracer("spanlake.tests")
    traces: dict[str, str] = {}
    for name in SCENARIOS:
        with scenario(tracer, name) as traces[name]:
            _run(name, client)
        if meters is not None and not meters.force_flush():
            raise SystemExit(f"metric export failed after {name}")
    packages = [PACKAGES[args.library], "openai", "opentelemetry-sdk"]
    if args.library == "openai_v2":
        packages.append("opentelemetry-util-genai")  # openai-v2's telemetry handler; its version decides the modes
    report(packages, traces, meters, tracer_provider, logger_provider)


if __name__ == "__main__":
    main()
