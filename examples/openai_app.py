"""A plain OpenAI app, traced by the official auto-instrumentation, sent to spanlake in one call.

    pip install ./sdk openai opentelemetry-instrumentation-openai-v2
    python -m spanlake.demo.fake_openai --port 8000 &          # or use the real API
    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-fake
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318   # spanlake up
    python examples/openai_app.py

The instrumentation records every model call (model, tokens, latency, errors); the SDK adds
only the meaning: each translation is a task with an outcome, under a prompt name and version.
"""

from __future__ import annotations

import os

# Optional: record prompts and replies on the model-call spans (off by default, as in OTel).
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")

import openai
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

import spanlake.sdk as sl

PHRASES = [
    "Where is the train station?",
    "Thank you very much for your help today.",
    "Could you please tell me whether this shop is open on Sundays and public holidays as well?",
]


def translate(client: openai.OpenAI, phrase: str) -> str | None:
    """Translate one phrase to French; the task fails if the reply was cut off."""
    with sl.prompt("translate_fr", "v1"), sl.task("translate") as task:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Translate the user's message to French."},
                {"role": "user", "content": phrase},
            ],
            max_tokens=12,
        )
        choice = reply.choices[0]
        if choice.finish_reason == "length":
            task.fail("reply cut off by max_tokens")
            return None
        return choice.message.content


def main() -> None:
    # Endpoint from OTEL_EXPORTER_OTLP_ENDPOINT, project from SPANLAKE_PROJECT (else "examples").
    sl.setup(service_name="translator", project=os.environ.get("SPANLAKE_PROJECT", "examples"))
    OpenAIInstrumentor().instrument()  # uses the provider setup() installed
    client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL, OPENAI_API_KEY
    for phrase in PHRASES:
        print(f"{phrase!r} -> {translate(client, phrase)!r}")
    sl.shutdown()  # flush (bounded) before exiting


if __name__ == "__main__":
    main()
