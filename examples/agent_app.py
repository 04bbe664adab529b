"""An agent with tools: the model decides which tool to call, the app runs it and loops.

Model calls are traced by the openai-v2 auto-instrumentation; the SDK marks the task, each tool
run (arguments, result, the model's call id), a topic policy, and a guard against the model repeating a call.

    pip install ./sdk openai opentelemetry-instrumentation-openai-v2
    python -m spanlake.demo.fake_openai --port 8000 &          # or use the real API
    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-fake
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318   # spanlake up
    python examples/agent_app.py
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

import spanlake.sdk as sl

MODEL = "gpt-4o-mini"
MAX_STEPS = 4
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "multiply",
            "description": "Multiply two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    },
]
REQUESTS = [
    "What is the weather in Paris today, do I need an umbrella?",
    "Say hello in three languages.",
    "Write my history homework essay for me.",
]


def get_weather(location: str) -> dict[str, Any]:
    """A weather service (fixed data here)."""
    return {"location": location, "temp_c": 18, "sky": "light rain"}


def multiply(a: float, b: float) -> float:
    return a * b


IMPLEMENTATIONS = {"get_weather": get_weather, "multiply": multiply}


@sl.policy("allowed_topics")
def topic_policy(request: str) -> str:
    """The decision is the return value: homework is out of scope for this assistant."""
    return "block" if "homework" in request.lower() else "allow"


def run_agent(client: openai.OpenAI, request: str) -> str | None:
    """One request: a task with model turns and tool runs until the model answers."""
    with sl.prompt("assistant", "v3"), sl.task("assist") as task:
        if topic_policy(request) == "block":
            task.fail("request out of scope")
            return None
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You are a helpful assistant. Use tools when useful."},
            {"role": "user", "content": request},
        ]
        done: set[tuple[str, str]] = set()
        for _ in range(MAX_STEPS):
            reply = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
            message = reply.choices[0].message
            calls = message.tool_calls or []
            if not calls:
                return message.content
            if any((c.function.name, c.function.arguments) in done for c in calls):
                # The model asks again for what it already has: answer without tools.
                with sl.policy("repeated_tool_call", "block"):
                    final = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
                return final.choices[0].message.content
            requested = [{"id": c.id, "type": "function", "function": c.function.model_dump()} for c in calls]
            messages.append({"role": "assistant", "content": message.content, "tool_calls": requested})
            for c in calls:
                done.add((c.function.name, c.function.arguments))
                args = json.loads(c.function.arguments)
                with sl.tool_call(c.function.name, args, call_id=c.id) as tool:  # arguments, result, call id
                    result = IMPLEMENTATIONS[c.function.name](**args)
                    tool.set_result(result)
                messages.append({"role": "tool", "tool_call_id": c.id, "content": json.dumps(result)})
        with sl.escalation("step budget exhausted", to="human"):
            task.fail("no answer within the step budget")
        return None


def main() -> None:
    sl.setup(service_name="assistant", project=os.environ.get("SPANLAKE_PROJECT", "examples"), capture_content=True)
    OpenAIInstrumentor().instrument()
    client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL, OPENAI_API_KEY
    for request in REQUESTS:
        print(f"{request!r} -> {run_agent(client, request)!r}")
    sl.shutdown()


if __name__ == "__main__":
    main()
