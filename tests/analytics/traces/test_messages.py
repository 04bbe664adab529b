"""Message normalization on each dialect's shapes (as documented and as observed in docs/instrumentations.md)."""

from __future__ import annotations

import json

from spanlake.analytics.traces.messages import merge_conversation, message, span_messages


def brief(msgs: list[dict]) -> list[tuple]:
    return [(m["role"], m["content"], [(c["id"], c["name"], c["arguments"]) for c in m["tool_calls"]],
             m["tool_call_id"], m["direction"]) for m in msgs]  # fmt: skip


def test_otel_parts_with_tool_call_and_response() -> None:
    content = {
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be terse."}]),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "w", "arguments": {"q": 1}}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"t": 21}}]},
            ]
        ),
        "gen_ai.output.messages": [
            {"role": "assistant", "parts": [{"type": "text", "content": "21C"}], "finish_reason": "stop"}
        ],
    }
    msgs = span_messages(content)
    assert brief(msgs) == [
        ("system", "Be terse.", [], None, "input"),
        ("user", "Weather?", [], None, "input"),
        ("assistant", None, [("c1", "w", '{"q":1}')], None, "input"),
        ("tool", '{"t":21}', [], "c1", "input"),
        ("assistant", "21C", [], None, "output"),
    ]
    assert msgs[-1]["finish_reason"] == "stop"


def test_otel_non_text_parts_are_described_not_dropped() -> None:
    parts = [{"type": "text", "content": "see"}, {"type": "uri", "mime_type": "image/png", "uri": "s3://x.png"}]
    msgs = span_messages({"gen_ai.input.messages": json.dumps([{"role": "user", "parts": parts}])})
    assert msgs[0]["content"] == "see\n[uri image/png s3://x.png]"


def test_openinference_flattened_messages_and_contents() -> None:
    content = {
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "sys",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "part one",
        "llm.input_messages.1.message.contents.1.message_content.text": "part two",
        "llm.input_messages.10.message.role": "tool",  # numeric, not lexical, order
        "llm.input_messages.10.message.tool_call_id": "c9",
        "llm.input_messages.10.message.content": "ok",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": "c1",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "f",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"a": 1}',
        "input.value": "ignored when messages exist",
    }
    assert brief(span_messages(content)) == [
        ("system", "sys", [], None, "input"),
        ("user", "part one\npart two", [], None, "input"),
        ("tool", "ok", [], "c9", "input"),
        ("assistant", None, [("c1", "f", '{"a": 1}')], None, "output"),
    ]


def test_openllmetry_indexed_prompt_and_completion() -> None:
    content = {
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hi",
        "gen_ai.prompt.1.role": "tool",
        "gen_ai.prompt.1.content": "42",
        "gen_ai.prompt.1.tool_call_id": "t1",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "t2",
        "gen_ai.completion.0.tool_calls.0.name": "lookup",
        "gen_ai.completion.0.tool_calls.0.arguments": "{}",
    }
    msgs = span_messages(content)
    assert brief(msgs) == [
        ("user", "hi", [], None, "input"),
        ("tool", "42", [], "t1", "input"),
        ("assistant", None, [("t2", "lookup", "{}")], None, "output"),
    ]
    assert msgs[-1]["finish_reason"] == "tool_calls"


def test_log_events_openai_v2_and_openllmetry_shapes() -> None:
    call = [{"id": "d", "function": {"name": "g", "arguments": "1"}}]
    logs = [
        {"event_name": "gen_ai.system.message", "body": '{"content": "sys"}'},
        {"event_name": "gen_ai.user.message", "body": '{"content": "q"}'},
        {"event_name": "gen_ai.assistant.message",
         "body": {"tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}},
        {"event_name": "gen_ai.tool.message", "body": {"content": "r", "id": "c"}},
        # OpenLLMetry puts tool_calls next to message, openai-v2 inside it
        {"event_name": "gen_ai.choice", "body": {"index": 0, "message": {"content": None}, "tool_calls": call}},
    ]  # fmt: skip
    assert brief(span_messages({}, logs)) == [
        ("system", "sys", [], None, "input"),
        ("user", "q", [], None, "input"),
        ("assistant", None, [("c", "f", "{}")], None, "input"),
        ("tool", "r", [], "c", "input"),
        ("assistant", None, [("d", "g", "1")], None, "output"),
    ]


def test_operation_details_event_carries_structured_messages() -> None:
    attrs = {
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "q"}]}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "a"}]}],
    }
    logs = [{"event_name": "gen_ai.client.inference.operation.details", "body": None, "attributes": json.dumps(attrs)}]
    expected = [("user", "q", [], None, "input"), ("assistant", "a", [], None, "output")]
    assert brief(span_messages(None, logs)) == expected


def test_single_string_prompt_and_completion() -> None:
    msgs = span_messages({"gen_ai.prompt": "p", "gen_ai.completion": "c"})
    assert brief(msgs) == [("user", "p", [], None, "input"), ("assistant", "c", [], None, "output")]


def test_span_content_wins_over_log_events() -> None:
    content = {"gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "a"}]}])}
    logs = [{"event_name": "gen_ai.user.message", "body": {"content": "b"}}]
    assert [m["content"] for m in span_messages(content, logs)] == ["a"]


def test_merge_keeps_repeated_turns_and_drops_repeated_history() -> None:
    sys_, yes = message("system", "s"), message("user", "yes")
    a1 = message("assistant", "sure?", direction="output")
    a2 = message("assistant", "done", direction="output")
    call1 = [sys_, yes, a1]
    call2 = [sys_, yes, {**a1, "direction": "input", "finish_reason": None}, yes, a2]
    merged = merge_conversation([call1, call2])
    assert [(m["role"], m["content"]) for m in merged] == [
        ("system", "s"),
        ("user", "yes"),
        ("assistant", "sure?"),
        ("user", "yes"),
        ("assistant", "done"),
    ]


def test_garbage_never_raises() -> None:
    for content in ({"gen_ai.input.messages": "not json"}, {"gen_ai.input.messages": "[1, null, {}]"},
                    {"llm.input_messages.x.message.role": "user"}):  # fmt: skip
        span_messages(content, [{"event_name": "gen_ai.choice", "body": "plain text"}])


def test_vercel_ai_sdk_prompt_and_response() -> None:
    """AI SDK 5+ parts (`input`, `output: {type, value}`) and AI SDK 4's (`args`, `result`)."""
    call1 = {"type": "tool-call", "toolCallId": "c1", "toolName": "w", "input": {"q": 1}}
    call2 = {"type": "tool-call", "toolCallId": "c2", "toolName": "w", "args": {"q": 2}}
    result1 = {"type": "tool-result", "toolCallId": "c1", "output": {"type": "text", "value": "21C"}}
    result2 = {"type": "tool-result", "toolCallId": "c2", "result": {"t": 22}}
    prompt = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "file", "mediaType": "image/png"}]},
        {"role": "assistant", "content": [call1]},
        {"role": "tool", "content": [result1]},
        {"role": "assistant", "content": [call2]},
        {"role": "tool", "content": [result2]},
    ]
    content = {"ai.prompt.messages": json.dumps(prompt), "ai.response.text": "21C and 22C"}
    assert brief(span_messages(content)) == [
        ("system", "Be terse.", [], None, "input"),
        ("user", "Weather?\n[file]", [], None, "input"),
        ("assistant", None, [("c1", "w", '{"q":1}')], None, "input"),
        ("tool", "21C", [], "c1", "input"),
        ("assistant", None, [("c2", "w", '{"q":2}')], None, "input"),
        ("tool", '{"t":22}', [], "c2", "input"),
        ("assistant", "21C and 22C", [], None, "output"),
    ]
    calls = json.dumps([{"toolCallId": "c3", "toolName": "w", "input": '{"q": 3}'}])
    answer = {"ai.prompt.messages": json.dumps(prompt[:2]), "ai.response.toolCalls": calls}
    assert brief(span_messages(answer))[-1] == ("assistant", None, [("c3", "w", '{"q": 3}')], None, "output")
    # The span around the calls has its caller's arguments, not messages: no conversation from it.
    assert span_messages({"ai.prompt": '{"prompt": "Weather?"}', "ai.response.text": "21C"}) == []
