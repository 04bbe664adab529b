"""A small support bot: spanlake SDK markers around real OpenAI calls, traced by one real instrumentation.

Run in its own process (instrumentors patch the openai module globally):

    python tests/analytics/traces/agent_app.py CONFIG --openai-url URL --otlp http://HOST:PORT \
        --project NAME [--session-prefix S]

CONFIG names an instrumentation and its settings (CONFIGS). The SDK exports spans over
OTLP/HTTP; a LoggerProvider exports the libraries' log events to the same collector. Each
scenario is one task (the trace's root); stdout gets one JSON object {scenario: trace_id}.

Scenarios (their inputs are the constants below, which tests import):
  tool_roundtrip  retrieval (2 scored docs) → chat with a tool → tool run → chat with the tool
                  result → validation passed, policy allow → task success (session A)
  fallback        chat whose question holds markup → validation failed → fallback chat →
                  escalation → task failure (session A, second turn)
  error           chat with model fail-500 → the task raises (ERROR), session B
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

SYSTEM = "You are a support bot."
WEATHER = "What is the weather in Paris today?"
TOOL_RESULT = '{"temp_c": 21, "sky": "clear"}'
MARKUP = "Ignore this <script>alert('x')</script> and <b>bold</b> please"
ERROR_QUESTION = "Will this fail?"
DOCS = [
    {"id": "kb-1", "score": 0.92, "content": "Paris weather is mild in June."},
    {"id": "kb-2", "score": 0.41, "content": "Refund policy: 30 days."},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
LATEST = {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}
# config → (library, environment)
CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    "openai_v2": ("openai_v2", {CAPTURE: "true"}),
    "openai_v2_latest": ("openai_v2", {**LATEST, CAPTURE: "span_only"}),
    "openai_v2_latest_events": ("openai_v2", {**LATEST, CAPTURE: "event_only"}),
    "openinference": ("openinference", {}),
    "traceloop": ("traceloop", {}),
    "traceloop_events": ("traceloop_events", {}),
}
SCENARIOS = ("tool_roundtrip", "fallback", "error")


def _instrument(library: str, tracer_provider: Any, logger_provider: Any) -> None:
    if library == "openai_v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
    elif library == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor as OI

        OI().instrument(tracer_provider=tracer_provider)
    else:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as Traceloop

        Traceloop(use_attributes=library == "traceloop").instrument(
            tracer_provider=tracer_provider, logger_provider=logger_provider
        )


def _trace_id(handle: Any) -> str:
    return format(handle.span.get_span_context().trace_id, "032x")


def _tool_roundtrip(sl: Any, client: Any) -> str:
    with sl.task("answer_ticket") as task, sl.prompt("support", "v2"):
        with sl.retrieval(WEATHER, data_source="kb") as r:
            r.set_documents(DOCS)
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": WEATHER}]
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
        call = first.choices[0].message.tool_calls[0]
        with sl.tool_call("get_weather", call.function.arguments, call_id=call.id) as tool:
            tool.set_result(json.loads(TOOL_RESULT))
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.arguments},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call.id, "content": TOOL_RESULT})
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        with sl.validation("no_pii") as v:
            v.passed()
        with sl.policy("content_filter", "allow"):
            pass
        task.succeed()
    return _trace_id(task)


def _fallback(sl: Any, client: Any) -> str:
    with sl.task("answer_ticket") as task, sl.prompt("support", "v2"):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": MARKUP}]
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, response_format={"type": "json_object"})
        with sl.validation("json_schema:Reply") as v:
            v.failed(["field 'answer' missing"])
        with sl.fallback("invalid json", to="gpt-4o"):
            client.chat.completions.create(model="gpt-4o", messages=messages)
        with sl.escalation("still invalid", to="human"):
            pass
        task.fail("escalated to a human")
    return _trace_id(task)


def _error(sl: Any, client: Any) -> str:
    import openai

    seen: list[str] = []
    try:
        with sl.task("answer_ticket") as task:
            seen.append(_trace_id(task))
            client.chat.completions.create(model="fail-500", messages=[{"role": "user", "content": ERROR_QUESTION}])
    except openai.InternalServerError:
        pass
    return seen[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", choices=sorted(CONFIGS))
    parser.add_argument("--openai-url", required=True)
    parser.add_argument("--otlp", required=True, help="collector OTLP/HTTP base URL")
    parser.add_argument("--project", required=True)
    parser.add_argument("--session-prefix", default="")
    args = parser.parse_args()
    library, env = CONFIGS[args.config]
    for k in [k for k in os.environ if k.startswith(("OTEL_", "TRACELOOP_"))]:
        del os.environ[k]
    os.environ.update(env)

    import openai
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    import spanlake.sdk as sl

    service = f"bot-{args.config}"
    handle = sl.setup(endpoint=args.otlp, service_name=service, project=args.project, capture_content=True)
    resource = Resource.create({"service.name": service, "spanlake.project": args.project})
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{args.otlp}/v1/logs")))
    _instrument(library, handle.provider, logger_provider)

    client = openai.OpenAI(base_url=args.openai_url, api_key="sk-fake", max_retries=0)
    traces: dict[str, str] = {}
    sessions = {"tool_roundtrip": "A", "fallback": "A", "error": "B"}
    for name, run in (("tool_roundtrip", _tool_roundtrip), ("fallback", _fallback), ("error", _error)):
        with sl.session(f"{args.session_prefix}{args.config}-{sessions[name]}", user_id="u-1"):
            traces[name] = run(sl, client)
    ok = handle.flush(10)
    logger_provider.shutdown()
    handle.shutdown()
    if not ok:
        raise SystemExit("spans were not exported in time")
    print(json.dumps(traces))


if __name__ == "__main__":
    main()
