"""A small RAG app without any auto-instrumentation: the SDK marks retrieval, the model call
(`llm_call`, with usage), validations and the task's outcome; users leave feedback afterwards.

    pip install ./sdk openai
    python -m spanlake.demo.fake_openai --port 8000 &          # or use the real API
    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-fake
    export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318   # spanlake up
    python examples/rag_app.py
"""

from __future__ import annotations

import json
import os
import re

import openai

import spanlake.sdk as sl

DOCS = {
    "faq-returns": "Items can be returned within 30 days for a full refund.",
    "faq-shipping": "Standard shipping takes 3 to 5 business days; express takes 1 day.",
    "faq-warranty": "Electronics carry a two year warranty covering manufacturing defects.",
}
QUESTIONS = [
    "How many days do I have to return items?",
    "How long does express shipping take?",
    "Can I pay with a cheque?",
]
MODEL = "gpt-4o-mini"


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3}


@sl.retrieval(data_source="faq")
def search(question: str) -> list[dict[str, object]]:
    """Keyword search; the returned list is recorded as the retrieved documents."""
    q = words(question)
    hits = [(len(q & words(text)) / max(1, len(q)), doc_id, text) for doc_id, text in DOCS.items()]
    return [{"id": d, "score": round(s, 3), "content": t} for s, d, t in sorted(hits, reverse=True) if s > 0][:2]


def ask(client: openai.OpenAI, question: str, docs: list[dict[str, object]]) -> str | None:
    """One model call, marked by hand: model, messages, usage and output."""
    context = "\n".join(f"[{d['id']}] {d['content']}" for d in docs)
    messages = [
        {"role": "system", "content": f"Answer from these sources only, as JSON {{'answer': ...}}:\n{context}"},
        {"role": "user", "content": question},
    ]
    with sl.llm_call(MODEL, "openai", messages=messages) as call:
        reply = client.chat.completions.create(model=MODEL, messages=messages, response_format={"type": "json_object"})  # type: ignore[arg-type]
        choice = reply.choices[0]
        call.set_response(reply.model, reply.id, [choice.finish_reason])
        if reply.usage is not None:
            call.set_usage(input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens)
        call.set_output(choice.message.content, choice.finish_reason)
    return choice.message.content


def answer(client: openai.OpenAI, question: str) -> str | None:
    """Retrieve, check there are sources, ask, check the answer's shape; fail the task otherwise."""
    docs = search(question)
    with sl.validation("has_sources") as v:
        v.set_result(bool(docs), None if docs else ["no document matched"])
    if not docs:
        sl.current_task().fail("no source for this question")
        return None
    content = ask(client, question, docs)
    with sl.validation("json_schema:Answer") as v:
        try:
            text = json.loads(content or "")["answer"]
            v.passed()
        except (ValueError, KeyError, TypeError) as e:
            v.failed([f"not an answer object: {e}"])
            sl.current_task().fail("invalid answer")
            return None
    return text


def main() -> None:
    sl.setup(service_name="faq-bot", project=os.environ.get("SPANLAKE_PROJECT", "examples"), capture_content=True)
    client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL, OPENAI_API_KEY
    for i, question in enumerate(QUESTIONS):
        with (
            sl.session("faq-session-1", user_id="user-1"),
            sl.prompt("faq_answer", "v2"),
            sl.task("answer_question"),
        ):
            trace_id = sl.current_trace_id()  # the UI keeps it, to attach the user's feedback
            result = answer(client, question)
        print(f"{question!r} -> {result!r} (trace {trace_id})")
        # Later, the user clicks thumbs up or down under the answer:
        sl.feedback(trace_id, value="up" if result else "down", user_id="user-1", comment=f"question {i + 1}")
    sl.shutdown()


if __name__ == "__main__":
    main()
