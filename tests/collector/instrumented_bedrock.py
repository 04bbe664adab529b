"""Run a real Bedrock client, instrumented, against the fake Bedrock Runtime; export to a collector.

Run in its own process (instrumentors patch botocore and anthropic globally):

    python -m tests.collector.instrumented_bedrock LIBRARY --url URL --otlp ENDPOINT \
        --protocol grpc|http --project NAME

LIBRARY is `openinference` (openinference-instrumentation-bedrock) or `openllmetry`
(opentelemetry-instrumentation-bedrock), both over boto3's `bedrock-runtime` client (Converse,
ConverseStream, InvokeModel and its stream with an Anthropic body, errors); or the anthropic
client's `AnthropicBedrock` (same fake, `/invoke`) tracing itself (`anthropic_sdk`), also under
openinference-instrumentation-anthropic (`anthropic_openinference`) or
opentelemetry-instrumentation-anthropic (`anthropic_openllmetry`). The tracer provider is the
global one, as an app's OTel setup makes it. Each scenario runs under a parent span
`scenario <name>`; stdout gets one JSON object: library versions and, per scenario, the trace id.
"""

from __future__ import annotations

import json
from typing import Any

from tests.collector.instrumented_process import providers, report, runner_parser, scenario

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"  # a cross-region inference profile
BASE_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"  # a model id in one region
GLOBAL_MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"  # a global inference profile (cheaper)
SYSTEM = "You are terse and you answer in one line only."  # 10 words, cached
QUESTION = "What is OpenTelemetry in one line?"  # 6 words
WEATHER = "What is the weather in Paris today?"  # 7 words
MAX_TOKENS = 64
CUT_TOKENS = 4
ANTHROPIC_VERSION = "bedrock-2023-05-31"
WEATHER_SPEC = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "inputSchema": {"json": {"type": "object", "properties": {"location": {"type": "string"}}}},
}
BOTO3_SCENARIOS = (
    "converse",
    "converse_base_id",
    "converse_global",
    "converse_stream",
    "converse_tools",
    "converse_max_tokens",
    "invoke",
    "invoke_stream",
    "invoke_global",
    "error_throttled",
    "error_invalid",
)
ANTHROPIC_SCENARIOS = ("messages", "messages_stream", "error_throttled")
PACKAGES = {
    "openinference": "openinference-instrumentation-bedrock",
    "openllmetry": "opentelemetry-instrumentation-bedrock",
    "anthropic_sdk": None,
    "anthropic_openinference": "openinference-instrumentation-anthropic",
    "anthropic_openllmetry": "opentelemetry-instrumentation-anthropic",
}
SCENARIOS = {lib: ANTHROPIC_SCENARIOS if lib.startswith("anthropic") else BOTO3_SCENARIOS for lib in PACKAGES}


def _instrument(library: str, tracer_provider: Any) -> None:
    if library == "openinference":
        from openinference.instrumentation.bedrock import BedrockInstrumentor

        BedrockInstrumentor().instrument(tracer_provider=tracer_provider)
    elif library == "openllmetry":
        from opentelemetry.instrumentation.bedrock import BedrockInstrumentor as Traceloop

        Traceloop().instrument(tracer_provider=tracer_provider)
    elif library == "anthropic_openinference":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tracer_provider)
    elif library == "anthropic_openllmetry":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as Traceloop

        Traceloop().instrument(tracer_provider=tracer_provider)


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def _anthropic_body() -> dict[str, Any]:
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    messages = [{"role": "user", "content": QUESTION}]
    return {"anthropic_version": ANTHROPIC_VERSION, "max_tokens": MAX_TOKENS, "system": system, "messages": messages}


def _run_boto3(name: str, client: Any) -> None:
    from botocore.exceptions import ClientError

    cached = {"system": [{"text": SYSTEM}, {"cachePoint": {"type": "default"}}], "messages": _user(QUESTION)}
    limit = {"inferenceConfig": {"maxTokens": MAX_TOKENS}}
    if name == "converse":
        client.converse(modelId=MODEL, **cached, **limit)
    elif name == "converse_base_id":
        client.converse(modelId=BASE_MODEL, **cached, **limit)
    elif name == "converse_global":
        client.converse(modelId=GLOBAL_MODEL, **cached, **limit)
    elif name == "converse_stream":
        for _ in client.converse_stream(modelId=MODEL, **cached, **limit)["stream"]:
            pass
    elif name == "converse_tools":
        tools = {"tools": [{"toolSpec": WEATHER_SPEC}]}
        client.converse(modelId=MODEL, messages=_user(WEATHER), toolConfig=tools, **limit)
    elif name == "converse_max_tokens":
        client.converse(modelId=MODEL, messages=_user(QUESTION), inferenceConfig={"maxTokens": CUT_TOKENS})
    elif name == "invoke":
        response = client.invoke_model(modelId=MODEL, body=json.dumps(_anthropic_body()))
        json.loads(response["body"].read())
    elif name == "invoke_global":
        response = client.invoke_model(modelId=GLOBAL_MODEL, body=json.dumps(_anthropic_body()))
        json.loads(response["body"].read())
    elif name == "invoke_stream":
        response = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(_anthropic_body()))
        for _ in response["body"]:
            pass
    elif name in ("error_throttled", "error_invalid"):
        code = {"error_throttled": "ThrottlingException", "error_invalid": "ValidationException"}[name]
        try:
            if name == "error_throttled":
                client.converse(modelId="fail-429", messages=_user(QUESTION))
            else:
                client.invoke_model(modelId="fail-400", body=json.dumps(_anthropic_body()))
        except ClientError as e:
            assert e.response["Error"]["Code"] == code, e
        else:
            raise AssertionError(f"{name} did not fail")


def _run_anthropic(name: str, client: Any) -> None:
    import anthropic

    body = _anthropic_body()
    kwargs = {"max_tokens": MAX_TOKENS, "system": body["system"], "messages": body["messages"]}
    if name == "messages":
        client.messages.create(model=MODEL, **kwargs)
    elif name == "messages_stream":
        for _ in client.messages.create(model=MODEL, stream=True, **kwargs):
            pass
    elif name == "error_throttled":
        try:
            client.messages.create(model="fail-429", **kwargs)
        except anthropic.RateLimitError:
            pass
        else:
            raise AssertionError("fail-429 did not fail")


def _client(library: str, url: str) -> Any:
    credentials = {"aws_access_key": "AKIDFAKE", "aws_secret_key": "fake-secret", "aws_region": "us-east-1"}
    if library.startswith("anthropic"):
        import anthropic

        return anthropic.AnthropicBedrock(base_url=url, max_retries=0, **credentials)
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        region_name=credentials["aws_region"],
        endpoint_url=url,
        aws_access_key_id=credentials["aws_access_key"],
        aws_secret_access_key=credentials["aws_secret_key"],
        config=Config(retries={"total_max_attempts": 1}),  # one attempt: the error scenarios fail at once
    )


def main() -> None:
    args = runner_parser("library", PACKAGES, "the fake server's URL").parse_args()

    from opentelemetry import trace

    tracer_provider, logger_provider = providers(
        args.otlp, args.protocol, {"service.name": f"it-bedrock-{args.library}", "spanlake.project": args.project}
    )
    trace.set_tracer_provider(tracer_provider)
    _instrument(args.library, tracer_provider)
    client = _client(args.library, args.url)
    run = _run_anthropic if args.library.startswith("anthropic") else _run_boto3
    tracer = tracer_provider.get_tracer("spanlake.tests")
    traces: dict[str, str] = {}
    for name in SCENARIOS[args.library]:
        with scenario(tracer, name) as traces[name]:
            run(name, client)
    client_package = "anthropic" if args.library.startswith("anthropic") else "boto3"
    packages = [p for p in (PACKAGES[args.library], client_package, "opentelemetry-sdk") if p]
    report(packages, traces, tracer_provider, logger_provider)


if __name__ == "__main__":
    main()
