"""The demo app: a customer-support assistant built on spanlake-sdk and the openai client.

Model calls are traced by the real `opentelemetry-instrumentation-openai-v2`; the SDK adds what
they mean. Per ticket (one task, one trace), inside `session()` and `prompt("support_answer", v1|v2)`:

1. policies: `prompt_injection` (block → task fails), `pii_redaction` (an email is redacted);
2. retrieval over the help center (`kb.py`, keyword search);
3. tools: `lookup_order` for an order id; for delivery questions an agent step where the model
   calls `get_weather` (which sometimes cannot reach its service: the exception fails the task);
4. refunds over $150: policy `refund_limit` → review → escalation to the billing team, with a
   hand-off summary streamed from a self-hosted model (marked with `llm_call`, TTFT recorded);
5. a structured JSON answer from gpt-4o-mini (v1: json_object, 14 tokens; v2: json_schema, 200),
   validated (`json_schema:Reply`); invalid JSON or a provider error → fallback to gpt-4o;
6. `grounded` (an article matched) and `no_pii` (no phone number in the reply) validations;
   a failure escalates to a human and fails the task.

The task records the ticket's text, redacted, as its input (`gen_ai.task.input`, content), so
a dataset built from the demo's traces holds the tickets (demo/experiment_app.py runs them again).
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai

import spanlake.sdk as sl
from spanlake.demo import kb
from spanlake.demo.tickets import PROMPT_NAME, Ticket

PRIMARY, BIGGER = "gpt-4o-mini", "gpt-4o"
SUMMARIZER, SUMMARIZER_PROVIDER = "llama-3.1-8b-instruct", "vllm"
REFUND_LIMIT = 150
TASK_INPUT = "gen_ai.task.input"  # content: kept only when the SDK captures content
SYSTEM = {
    "v1": "You are Acme's support assistant. Reply in JSON with an 'answer' field.",
    "v2": "You are Acme's support assistant. Answer only from the articles below, in one or two "
    "sentences, as JSON matching the Reply schema. Never repeat phone numbers or emails.",
}
SETTINGS: dict[str, dict[str, Any]] = {
    "v1": {"max_tokens": 14, "response_format": {"type": "json_object"}},
    "v2": {
        "max_tokens": 200,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "Reply",
                "schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
            },
        },
    },
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather and courier disruption for a city.",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Status of an order by id.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    },
]
INJECTION = re.compile(r"ignore (all )?previous instructions|system prompt", re.I)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
PHONE = re.compile(r"\+?\d[\d -]{6,}\d")
ORDER = re.compile(r"\bA\d{5}\b")


@dataclass
class Result:
    """What happened to one ticket, as the app saw it (the runner compares it with the lake)."""

    ticket: Ticket
    trace_id: str | None = None
    outcome: str = "success"  # success, failure, error (an exception escaped the task)
    reason: str | None = None
    answer: str | None = None
    documents: list[str] = field(default_factory=list)
    failed_validations: list[str] = field(default_factory=list)
    fallbacks: int = 0
    escalations: int = 0


class Stop(Exception):
    """Internal: the flow ends without an answer (blocked, or handed to people)."""

    def __init__(self, reason: str, escalated: bool = True) -> None:
        super().__init__(reason)
        self.escalated = escalated


class SupportAssistant:
    """Answers tickets with `client` (an openai.OpenAI pointed at the fake server)."""

    def __init__(self, client: openai.OpenAI, summarizer_url: str, time_scale: float = 1.0) -> None:
        self.client = client
        self.summarizer_url = summarizer_url
        self.time_scale = time_scale

    def answer(self, ticket: Ticket) -> Result:
        """Handle one ticket as one task; never raises (an escaping exception is the result)."""
        result = Result(ticket)
        rng = random.Random(ticket.seed)
        attrs = {"ticket.intent": ticket.intent, "ticket.turn": ticket.turn}
        try:
            with (
                sl.session(ticket.session_id, user_id=ticket.user_id),
                sl.prompt(PROMPT_NAME, ticket.prompt_version),
                sl.task("answer_ticket", attributes=attrs) as task,
            ):
                result.trace_id = sl.current_trace_id()
                if task.capture_content:  # the ticket, redacted: what a dataset item's input is
                    task.set_attribute(TASK_INPUT, EMAIL.sub("[email]", ticket.text))
                try:
                    result.answer = self._handle(ticket, rng, result)
                    task.succeed()
                except Stop as e:
                    result.escalations += e.escalated
                    result.outcome, result.reason = "failure", str(e)
                    task.fail(str(e))
        except Exception as e:
            result.outcome, result.reason = "error", f"{type(e).__name__}: {e}"
        return result

    # -- the flow ---------------------------------------------------------------------------

    def _handle(self, ticket: Ticket, rng: random.Random, result: Result) -> str:
        if screen_injection(ticket.text) == "block":
            raise Stop("blocked by policy prompt_injection", escalated=False)
        text = redact_pii(ticket.text)
        docs = self._retrieve(text, rng)
        result.documents = [d["id"] for d in docs]
        facts: list[dict[str, Any]] = []
        if (m := ORDER.search(text)) and ticket.intent != "delivery_weather":
            with sl.tool_call("lookup_order", {"order_id": m.group()}) as tool:
                time.sleep(0.06 * rng.lognormvariate(0, 0.4) * self.time_scale)  # the order system's latency
                facts.append(lookup_order(m.group(), ticket.amount))
                tool.set_result(facts[-1])
        if ticket.intent == "refund":
            self._refund(ticket, facts, result)
        messages = [
            {"role": "system", "content": SYSTEM[ticket.prompt_version] + "\n\n" + _articles(docs)},
            {"role": "user", "content": text},
        ]
        if facts:
            messages.insert(1, {"role": "system", "content": "Order facts: " + json.dumps(facts)})
        if ticket.intent == "delivery_weather":
            self._agent_step(messages, rng)
        answer = self._structured_answer(messages, ticket.prompt_version, result)
        with sl.validation("grounded") as v:
            v.set_result(bool(docs), None if docs else ["no help-center article matched the question"])
        if not docs:
            result.failed_validations.append("grounded")
            self._escalate("no grounded answer", "human-agent", text, result)
        if not check_no_pii(answer):
            result.failed_validations.append("no_pii")
            self._escalate("reply would leak personal data", "human-agent", text, result)
        return answer

    def _retrieve(self, query: str, rng: random.Random) -> list[dict[str, Any]]:
        with sl.retrieval(query, kb.DATA_SOURCE) as r:
            time.sleep(0.03 * rng.lognormvariate(0, 0.5) * self.time_scale)  # the search service
            docs = kb.search(query)
            r.set_documents(docs)
        return docs

    def _refund(self, ticket: Ticket, facts: list[dict[str, Any]], result: Result) -> None:
        with sl.policy("refund_limit") as p:
            decision = "allow" if ticket.amount <= REFUND_LIMIT else "review"
            p.decide(decision)
            p.set_attribute("refund.amount_usd", ticket.amount)
        if decision == "review":
            self._escalate(f"refund over ${REFUND_LIMIT}", "billing-team", ticket.text, result)
        facts.append({"refund": "approved", "amount_usd": ticket.amount})

    def _agent_step(self, messages: list[dict[str, Any]], rng: random.Random) -> None:
        """Let the bigger model call tools, run them, and add their results to the conversation."""
        first = self.client.chat.completions.create(model=BIGGER, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
        msg = first.choices[0].message
        for call in msg.tool_calls or []:
            args = json.loads(call.function.arguments)
            with sl.tool_call(call.function.name, args, call_id=call.id) as tool:
                time.sleep(rng.uniform(0.08, 0.3) * self.time_scale)
                if rng.random() < 0.3:
                    raise ConnectionError("weather service unreachable")
                output = {"location": args.get("location"), "sky": rng.choice(("clear", "storm")), "delay_days": 0}
                tool.set_result(output)
            tool_call = {"id": call.id, "type": "function", "function": call.function.model_dump()}
            messages.append({"role": "assistant", "content": None, "tool_calls": [tool_call]})
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(output)})

    def _structured_answer(self, messages: list[dict[str, Any]], version: str, result: Result) -> str:
        """The JSON reply from the primary model; on a provider error or invalid JSON, from the bigger one."""
        reason = None
        try:
            reply = self.client.chat.completions.create(model=PRIMARY, messages=messages, **SETTINGS[version])  # type: ignore[call-overload]
            answer, _ = validate_reply(reply.choices[0].message.content, reply.choices[0].finish_reason)
            if answer is not None:
                return answer
            result.failed_validations.append("json_schema:Reply")
            reason = f"invalid JSON from {PRIMARY}"
        except openai.APIError as e:
            reason = f"{type(e).__name__} from {PRIMARY}"
        result.fallbacks += 1
        with sl.fallback(reason, to=BIGGER):
            reply = self.client.chat.completions.create(
                model=BIGGER, messages=messages, max_tokens=400, response_format={"type": "json_object"}
            )
            answer, _ = validate_reply(reply.choices[0].message.content, reply.choices[0].finish_reason)
        if answer is None:
            result.failed_validations.append("json_schema:Reply")
            raise Stop("no valid reply after fallback", escalated=False)
        return answer

    def _escalate(self, reason: str, to: str, text: str, result: Result) -> None:
        with sl.escalation(reason, to=to):
            self._handoff_summary(text)
        raise Stop(f"escalated to {to}: {reason}")

    def _handoff_summary(self, text: str) -> str:
        """A short summary for the people taking over, streamed from a self-hosted model (no
        auto-instrumentation there, so the SDK's llm_call marks it, with time to first token)."""
        messages = [{"role": "system", "content": "Summarize for a support agent."}, {"role": "user", "content": text}]
        body = {"model": f"slow-{int(250 * self.time_scale) + 1}", "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        with (
            sl.prompt("handoff_summary", "v1"),
            sl.llm_call(SUMMARIZER, SUMMARIZER_PROVIDER, messages=messages) as call,
            httpx.stream("POST", f"{self.summarizer_url}/chat/completions", json=body, timeout=10) as response,
        ):
            parts: list[str] = []
            for chunk in call.stream(_sse(response.iter_lines())):
                for choice in chunk.get("choices", []):
                    parts.append(choice.get("delta", {}).get("content") or "")
                    if choice.get("finish_reason"):
                        call.set_response(SUMMARIZER, chunk.get("id"), [choice["finish_reason"]])
                if usage := chunk.get("usage"):
                    call.set_usage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"])
            summary = "".join(parts)
            call.set_output(summary, "stop")
        return summary


# -- steps written as decorated functions ---------------------------------------------------


@sl.policy("prompt_injection")
def screen_injection(text: str) -> str:
    """block when the message tries to override the instructions (the return value is the decision)."""
    return "block" if INJECTION.search(text) else "allow"


def redact_pii(text: str) -> str:
    """Replace email addresses before they reach a model or the trace."""
    with sl.policy("pii_redaction") as p:
        redacted = EMAIL.sub("[email]", text)
        p.decide("redact" if redacted != text else "allow")
    return redacted


def lookup_order(order_id: str, amount: int) -> dict[str, Any]:
    """The order system (fake, deterministic by order id)."""
    status = ("processing", "shipped", "in transit", "delivered")[int(order_id[1:]) % 4]
    return {"order_id": order_id, "status": status, "total_usd": amount}


def validate_reply(content: str | None, finish_reason: str | None) -> tuple[str | None, list[str]]:
    """Check the model's reply against the Reply schema: (the answer or None, errors)."""
    with sl.validation("json_schema:Reply") as v:
        errors: list[str] = []
        answer = None
        try:
            doc = json.loads(content or "")
            if not isinstance(doc, dict) or not isinstance(doc.get("answer"), str) or not doc["answer"].strip():
                errors.append("field 'answer' missing or empty")
            else:
                answer = doc["answer"]
        except json.JSONDecodeError as e:
            errors.append(f"invalid JSON: {e.msg} at char {e.pos}")
        if finish_reason == "length":
            errors.append("reply cut off by max_tokens")
        v.set_result(not errors, errors)
    return (answer if not errors else None), errors


@sl.validation("no_pii")
def check_no_pii(answer: str) -> bool:
    """False when the reply would repeat a phone number (the return value is the verdict)."""
    found = PHONE.search(answer)
    check = sl.current()
    if found and isinstance(check, sl.Validation):
        check.failed([f"phone number in reply: '{found.group()}'"])  # the verdict, with why
    return found is None


def _articles(docs: list[dict[str, Any]]) -> str:
    return "\n".join(f"[{d['id']}] {d['content']}" for d in docs) or "(no matching article)"


def _sse(lines: Any) -> Any:
    """JSON chunks of a server-sent event stream."""
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])
