"""Run the real `google-genai` client, instrumented, against the fake Gemini server; export to a collector.

Run in its own process (instrumentors patch the google.genai module globally):

    python -m tests.collector.instrumented_gemini LIBRARY --url URL --otlp ENDPOINT \
        --protocol grpc|http --project NAME [--metrics] [--scenarios chat,stream,...]

LIBRARY is `openinference` (openinference-instrumentation-google-genai) or `otel`
(opentelemetry-instrumentation-google-genai, which runs in .venv-google-genai: made by
scripts/venv-google-genai); the library's own settings come from the environment. Each scenario
runs under a parent span `scenario <name>`; stdout gets one JSON object: library versions and,
per scenario, the trace id. Needs only google-genai, the instrumentation, the OTel SDK and the
OTLP exporters (tests.collector.instrumented_process imports nothing else at module level).

With `--metrics` (`otel` only) the library's GenAI metrics are exported too, after every
scenario (cumulative, as in tests.collector.instrumented_client).
"""

from __future__ import annotations

from typing import Any

from tests.collector.instrumented_process import meter_provider, providers, report, runner_parser, scenario

MODEL = "gemini-2.5-flash"
SYSTEM = "You are terse."  # 3 words
QUESTION = "What is OpenTelemetry in one line?"  # 6 words
WEATHER = "What is the weather in Paris today?"  # 7 words
SCENARIOS = ("chat", "stream", "tools", "thinking", "error")
PACKAGES = {
    "openinference": ["openinference-instrumentation-google-genai"],
    # its telemetry handler (spans, metrics, log records) is opentelemetry-util-genai's
    "otel": ["opentelemetry-instrumentation-google-genai", "opentelemetry-util-genai"],
}


def _instrument(library: str, tracer_provider: Any, logger_provider: Any, meter_provider: Any) -> None:
    if library == "openinference":
        from openinference.instrumentation.google_genai import GoogleGenAIInstrumentor

        GoogleGenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif library == "otel":
        from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor

        extra = {"meter_provider": meter_provider} if meter_provider is not None else {}
        GoogleGenAiSdkInstrumentor().instrument(
            tracer_provider=tracer_provider, logger_provider=logger_provider, **extra
        )


def _run(name: str, client: Any) -> None:
    from google.genai import errors, types

    system = types.GenerateContentConfig(system_instruction=SYSTEM)
    if name == "chat":
        client.models.generate_content(model=MODEL, contents=QUESTION, config=system)
    elif name == "stream":
        for _ in client.models.generate_content_stream(model=MODEL, contents=QUESTION, config=system):
            pass
    elif name == "tools":
        weather = types.FunctionDeclaration(
            name="get_weather",
            description="Current weather for a city.",
            parameters=types.Schema(type="OBJECT", properties={"location": types.Schema(type="STRING")}),
        )
        config = types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[weather])],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        client.models.generate_content(model=MODEL, contents=WEATHER, config=config)
    elif name == "thinking":
        thinking = types.ThinkingConfig(thinking_budget=64, include_thoughts=True)
        config = types.GenerateContentConfig(thinking_config=thinking)
        client.models.generate_content(model=MODEL, contents=QUESTION, config=config)
    elif name == "error":
        try:
            client.models.generate_content(model="fail-429", contents=QUESTION)
        except errors.ClientError as e:
            assert e.code == 429, e
        else:
            raise AssertionError("fail-429 did not fail")


def main() -> None:
    parser = runner_parser("library", PACKAGES, "the fake server's base URL")
    parser.add_argument("--metrics", action="store_true", help="export the library's metrics too")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, in SCENARIOS")
    args = parser.parse_args()

    resource = {"service.name": f"it-gemini-{args.library}", "spanlake.project": args.project}
    tracer_provider, logger_provider = providers(args.otlp, args.protocol, resource)
    meters = meter_provider(args.otlp, args.protocol, resource) if args.metrics else None
    _instrument(args.library, tracer_provider, logger_provider, meters)
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=args.url, retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key="fake-gemini-key", http_options=options)
    tracer = tracer_provider.get_tracer("spanlake.tests")
    traces: dict[str, str] = {}
    for name in args.scenarios.split(","):
        with scenario(tracer, name) as traces[name]:
            _run(name, client)
        if meters is not None and not meters.force_flush():
            raise SystemExit(f"metric export failed after {name}")
    packages = [*PACKAGES[args.library], "google-genai", "opentelemetry-sdk"]
    report(packages, traces, meters, tracer_provider, logger_provider)


if __name__ == "__main__":
    main()
