"""LLM judges against the real fake OpenAI server on a free loopback port: verdicts, refused
answers, retries, timeouts, the concurrency and spend caps, cost, and the judge's own spans
reaching a real collector in project `<project>-evaluators`."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spanlake.demo.fake_openai import FakeOpenAI
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.judge import JudgeClient, parse_answer, render
from spanlake.evaluators.result import EvaluationError
from spanlake.evaluators.spend import SpendLedger, spend_key
from spanlake.evaluators.target import Target
from spanlake.storage.label_schema import LabelSchema, LabelSchemas
from tests.conftest import start_collector

TEMPLATE = "Question: {input}\nDocuments:\n{documents}\nAnswer: {output}"
# The fake's judge-pass answer, as the fake writes it: 12 whitespace-separated words; the fake
# adds one "reasoning" token per input message (system + user = 2).
PASS_ANSWER = '{"verdict": "pass", "score": 1.0, "failure_mode": null, "reason": "the answer meets the rubric"}'
PASS_OUTPUT_TOKENS = 12 + 2
TARGET = Target(
    project="shop",
    trace_id="ab" * 16,
    input="What is the capital of France?",
    output="Paris is the capital of France.",
    documents=[{"id": "d1", "content": "Paris is the capital of France."}, {"id": "d2", "content": None}],
)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()


def judge(base_url: str, model: str = "judge-pass", version: int = 1, **params: Any) -> Evaluator:
    return Evaluator(
        name="groundedness",
        kind="llm_judge",
        project="shop",
        version=version,
        params={"base_url": base_url, "model": model, "template": TEMPLATE, **params},
    )


def prompt_words(client: JudgeClient, target: Target = TARGET) -> int:
    """The fake's prompt tokens: whitespace-separated words over the request's messages."""
    body = client.request_body(target, client.schema())
    return sum(len(m["content"].split()) for m in body["messages"])


# --- render ------------------------------------------------------------------------------------


def test_render_fills_every_variable_from_the_target() -> None:
    target = Target(
        project="p",
        trace_id="t",
        input="hi",
        output=None,
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "yo"}]},
        ],
        documents=[{"content": "first"}, {"content": "second"}],
        tool_calls=[{"name": "search", "arguments": {"q": "x"}}, {"name": "now", "arguments": ""}],
        model="m1",
    )
    template = (
        "{input}|{output}|{conversation}|{documents}|{tool_calls}|{expected_output}|{model}|"
        "{prompt_name}|{prompt_version}|{task_name}|{{literal}}"
    )
    assert render(template, target) == (
        'hi||user: hi\nassistant: yo|[1] first\n[2] second|search({"q":"x"})\nnow()||m1||||{literal}'
    )


@pytest.mark.parametrize("template", ["{question}", "{input.__class__}", "{}", "{input"])
def test_render_refuses_what_is_not_a_template_variable(template: str) -> None:
    with pytest.raises(EvaluationError) as e:
        render(template, TARGET)
    assert not e.value.transient
    assert "template" in str(e.value)


# --- answers -------------------------------------------------------------------------------------


def test_pass_verdict_with_tokens_and_cost_from_the_evaluators_rates(fake: FakeOpenAI) -> None:
    with JudgeClient(judge(fake.base_url, input_usd_per_mtok=1000.0, output_usd_per_mtok=3000.0)) as client:
        result = client.evaluate(TARGET)
        words_in = prompt_words(client)
    assert (result.verdict, result.score, result.failure_mode) == ("pass", 1.0, None)
    assert result.comment == "the answer meets the rubric"
    meta = dict(result.metadata)
    assert meta["judge_model"] == "judge-pass-2025-01-01"
    assert (meta["input_tokens"], meta["output_tokens"]) == (words_in, PASS_OUTPUT_TOKENS)
    assert meta["cost_usd"] == pytest.approx((words_in * 1000.0 + PASS_OUTPUT_TOKENS * 3000.0) / 1e6)
    assert meta["judge_trace_id"] is None  # no traces endpoint
    assert meta["latency_ms"] > 0


def test_the_request_states_rubric_format_failure_modes_and_range(fake: FakeOpenAI, tmp_path: Path) -> None:
    LabelSchemas(tmp_path).save(
        "shop", LabelSchema(failure_modes=["off_topic", "unsupported_claim"], score_min=0, score_max=10)
    )
    ev = judge(fake.base_url, rubric="Fail any answer not backed by a document.", temperature=0.2, max_tokens=64)
    with JudgeClient(ev, data_dir=tmp_path) as client:
        body = client.request_body(TARGET, client.schema())
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert "Fail any answer not backed by a document." in system["content"]
    assert '"off_topic", "unsupported_claim"' in system["content"]
    assert "a number from 0 to 10" in system["content"] and "JSON" in system["content"]
    assert user["content"] == (
        "Question: What is the capital of France?\nDocuments:\n[1] Paris is the capital of France.\n[2] \n"
        "Answer: Paris is the capital of France."
    )
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("judge-pass", 0.2, 64)
    assert body["response_format"] == {"type": "json_object"}


def test_fail_verdict_keeps_the_judges_failure_mode(fake: FakeOpenAI) -> None:
    with JudgeClient(judge(fake.base_url, "judge-fail")) as client:
        result = client.evaluate(TARGET)
    assert (result.verdict, result.score, result.failure_mode) == ("fail", 0.0, "hallucination")


def test_grounded_judge_scores_the_share_of_supported_words(fake: FakeOpenAI) -> None:
    # Documents' words: paris is the capital of france 1 2; answer "Paris is in Germany, not France":
    # paris, is, france supported; in, germany, not not → 3/6 = 0.5 → pass (>= 0.5).
    half = Target(
        project="shop", trace_id="c" * 32, output="Paris is in Germany, not France", documents=TARGET.documents
    )
    # "Lyon is big, truly": only "is" of its 4 words is in the documents → 0.25 → fail.
    none = Target(project="shop", trace_id="d" * 32, output="Lyon is big, truly", documents=TARGET.documents)
    with JudgeClient(judge(fake.base_url, "judge-grounded")) as client:
        full, mid, low = (client.evaluate(t) for t in (TARGET, half, none))
    assert (full.verdict, full.score) == ("pass", 1.0)
    assert (mid.verdict, mid.score, mid.failure_mode) == ("pass", 0.5, None)
    assert (low.verdict, low.score, low.failure_mode) == ("fail", 0.25, "hallucination")


def test_hash_judge_follows_the_parity_of_the_prompt(fake: FakeOpenAI) -> None:
    targets = [Target(project="shop", trace_id=f"{i:032x}", input=f"question {i}", output="x") for i in range(8)]
    with JudgeClient(judge(fake.base_url, "judge-hash")) as client:
        verdicts = [client.evaluate(t).verdict for t in targets]
    want = [
        "pass" if int(hashlib.sha256(render(TEMPLATE, t).encode()).hexdigest()[:8], 16) % 2 == 0 else "fail"
        for t in targets
    ]
    assert verdicts == want
    assert {"pass", "fail"} <= set(verdicts)  # the designed set has both


def test_malformed_answer_is_refused_with_a_quote_of_it(fake: FakeOpenAI) -> None:
    with JudgeClient(judge(fake.base_url, "judge-malformed")) as client, pytest.raises(EvaluationError) as e:
        client.evaluate(TARGET)
    assert not e.value.transient
    assert str(e.value) == "the judge's answer is not JSON: 'I think the answer is fine.'"


def test_failure_mode_outside_the_projects_list_is_refused(fake: FakeOpenAI, tmp_path: Path) -> None:
    with JudgeClient(judge(fake.base_url, "judge-badmode")) as client, pytest.raises(EvaluationError) as e:
        client.evaluate(TARGET)
    assert not e.value.transient and "'not_a_failure_mode' is not in the project's list" in str(e.value)
    # A project whose schema lacks "hallucination" refuses the fail judge's answer too.
    LabelSchemas(tmp_path).save("shop", LabelSchema(failure_modes=["off_topic"]))
    with (
        JudgeClient(judge(fake.base_url, "judge-fail"), data_dir=tmp_path) as client,
        pytest.raises(EvaluationError) as e,
    ):
        client.evaluate(TARGET)
    assert "'hallucination' is not in the project's list (off_topic)" in str(e.value)


def test_score_outside_the_evaluators_range_is_refused(fake: FakeOpenAI) -> None:
    with JudgeClient(judge(fake.base_url, score_min=2, score_max=5)) as client, pytest.raises(EvaluationError) as e:
        client.evaluate(TARGET)  # judge-pass says 1.0
    assert not e.value.transient and "score 1 is outside the range [2, 5]" in str(e.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "not a JSON object"),
        ('{"verdict": "maybe"}', 'verdict must be "pass" or "fail"'),
        ('{"verdict": "pass", "score": "high"}', "score must be a number or null"),
        ('{"verdict": "pass", "score": true}', "score must be a number or null"),
        ('{"verdict": "fail", "failure_mode": 3}', "failure_mode 3 is not in the project's list"),
        ('{"verdict": "pass", "score": 7}', "score 7 is outside the range [0, 5]"),
    ],
)
def test_parse_answer_refuses(text: str, problem: str) -> None:
    with pytest.raises(EvaluationError) as e:
        parse_answer(text, LabelSchema(), (0, 5))
    assert problem in str(e.value) and not e.value.transient


def test_parse_answer_accepts_a_fenced_object_and_drops_a_failure_mode_on_pass() -> None:
    text = '```json\n{"verdict": "PASS", "score": 4, "failure_mode": "hallucination", "reason": "ok"}\n```'
    result = parse_answer(text, LabelSchema(), (0, 5))
    assert (result.verdict, result.score, result.failure_mode, result.comment) == ("pass", 4.0, None, "ok")


# --- failures and retries -----------------------------------------------------------------------


def test_429_then_success_after_retries_honouring_retry_after(fake: FakeOpenAI) -> None:
    fake.outage("429", requests=2, retry_after_s=0.3)
    with JudgeClient(judge(fake.base_url), backoff_s=0.01) as client:
        started = time.monotonic()
        result = client.evaluate(TARGET)
        elapsed = time.monotonic() - started
    assert result.verdict == "pass"
    assert (client.attempts, client.retried, fake.requests) == (3, 2, 3)
    assert elapsed >= 2 * 0.3  # each retry waited what Retry-After asked, not the 10 ms backoff


def test_503_for_longer_than_the_retries_is_a_transient_error(fake: FakeOpenAI) -> None:
    fake.outage("503")
    with JudgeClient(judge(fake.base_url, retries=2), backoff_s=0.01) as client, pytest.raises(EvaluationError) as e:
        client.evaluate(TARGET)
    assert e.value.transient
    assert "HTTP 503" in str(e.value) and "after 3 attempts" in str(e.value)
    assert fake.requests == 3
    fake.restore()
    with JudgeClient(judge(fake.base_url, retries=2), backoff_s=0.01) as client:
        assert client.evaluate(TARGET).verdict == "pass"  # the endpoint is back


def test_a_retry_after_beyond_the_limit_stops_retrying_at_once(fake: FakeOpenAI) -> None:
    fake.outage("429", retry_after_s=3600)
    with JudgeClient(judge(fake.base_url), backoff_s=0.01) as client, pytest.raises(EvaluationError) as e:
        client.evaluate(TARGET)
    assert e.value.transient and "asks to wait 3600 s" in str(e.value)
    assert fake.requests == 1


def test_other_4xx_is_not_transient(fake: FakeOpenAI) -> None:
    with JudgeClient(judge(fake.base_url, "judge-unknown")) as client, pytest.raises(EvaluationError) as e:
        client.evaluate(TARGET)
    assert not e.value.transient and "HTTP 400: unknown judge model 'judge-unknown'" in str(e.value)
    assert client.attempts == 1


def test_a_hung_endpoint_times_out_into_a_transient_error(fake: FakeOpenAI) -> None:
    fake.outage("hang")
    ev = judge(fake.base_url, timeout_s=0.3, retries=1)
    with JudgeClient(ev, backoff_s=0.01) as client, pytest.raises(EvaluationError) as e:
        started = time.monotonic()
        client.evaluate(TARGET)
    elapsed = time.monotonic() - started
    assert e.value.transient and "no answer within 0.3 s (after 2 attempts)" in str(e.value)
    assert 0.6 <= elapsed < 5
    fake.restore()


def test_an_unreachable_endpoint_is_a_transient_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ev = judge(f"http://127.0.0.1:{port}/v1", retries=1)
    with JudgeClient(ev, backoff_s=0.01) as client, pytest.raises(EvaluationError) as e:
        client.evaluate(TARGET)
    assert e.value.transient and "cannot reach it" in str(e.value)


def test_the_api_key_is_sent_from_the_environment(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    ev = judge(fake.base_url, api_key_env="SPANLAKE_TEST_JUDGE_KEY")
    monkeypatch.delenv("SPANLAKE_TEST_JUDGE_KEY", raising=False)
    with JudgeClient(ev) as client, pytest.raises(EvaluationError) as e:
        client.evaluate(TARGET)
    assert "SPANLAKE_TEST_JUDGE_KEY" in str(e.value) and fake.requests == 0
    monkeypatch.setenv("SPANLAKE_TEST_JUDGE_KEY", "sk-test")
    with JudgeClient(ev) as client:
        assert client._headers() == {"Authorization": "Bearer sk-test"}
        assert client.evaluate(TARGET).verdict == "pass"


# --- caps ------------------------------------------------------------------------------------------


def test_concurrency_cap_is_honoured(fake: FakeOpenAI) -> None:
    fake.delay_s = 0.2
    results: list[str | None] = []
    with JudgeClient(judge(fake.base_url, concurrency=3)) as client:
        threads = [threading.Thread(target=lambda: results.append(client.evaluate(TARGET).verdict)) for _ in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert results == ["pass"] * 9
    assert fake.requests == 9
    assert fake.max_in_flight == 3  # never more than the cap, and the cap was reached


def test_daily_spend_cap_refuses_calls_and_survives_a_new_client(fake: FakeOpenAI, tmp_path: Path) -> None:
    rates = {"input_usd_per_mtok": 1000.0, "output_usd_per_mtok": 3000.0}
    with JudgeClient(judge(fake.base_url, **rates), data_dir=tmp_path) as probe:
        cost = (prompt_words(probe) * 1000.0 + PASS_OUTPUT_TOKENS * 3000.0) / 1e6  # one call's cost
    ev = judge(fake.base_url, daily_spend_usd=round(1.5 * cost, 6), **rates)
    with JudgeClient(ev, data_dir=tmp_path) as client:
        client.evaluate(TARGET)  # spent 0 → allowed
        client.evaluate(TARGET)  # spent 1 call < 1.5 → allowed
        with pytest.raises(EvaluationError) as e:
            client.evaluate(TARGET)  # spent 2 calls >= 1.5 → refused
    cap = f"{round(1.5 * cost, 6):g}"
    assert e.value.transient and str(e.value) == f"daily spend cap of ${cap} reached; resumes at 00:00 UTC"
    assert fake.requests == 2
    key = spend_key("shop", "groundedness", 1)
    assert SpendLedger(tmp_path).spent(key) == pytest.approx(2 * cost)
    with JudgeClient(ev, data_dir=tmp_path) as again, pytest.raises(EvaluationError):
        again.evaluate(TARGET)  # a restart does not reset the cap
    assert fake.requests == 2
    with JudgeClient(judge(fake.base_url, version=2, daily_spend_usd=1.5 * cost, **rates), data_dir=tmp_path) as v2:
        assert v2.evaluate(TARGET).verdict == "pass"  # each version has its own spend


def test_cost_from_the_price_book_with_cached_and_reasoning_tokens(fake: FakeOpenAI, tmp_path: Path) -> None:
    (tmp_path / "prices.toml").write_text(
        '[[price]]\nmodel = "judge-pass*"\ninput_mtok = 3.0\noutput_mtok = 15.0\ncache_read_mtok = 0.3\n'
    )
    with JudgeClient(judge(fake.base_url), data_dir=tmp_path) as client:
        meta = client.evaluate(TARGET).metadata
        n = prompt_words(client)
    # The fake reports cached = prompt // 2 and reasoning = 2 (one per message), billed at the
    # output rate (no reasoning rate given): (n - n//2)·3 + (n//2)·0.3 + 14·15, per million.
    assert meta["cost_usd"] == pytest.approx(((n - n // 2) * 3.0 + (n // 2) * 0.3 + PASS_OUTPUT_TOKENS * 15.0) / 1e6)
    with JudgeClient(judge(fake.base_url)) as unpriced:  # genai-prices has no "judge-pass"
        assert unpriced.evaluate(TARGET).metadata["cost_usd"] is None


# --- tracing -------------------------------------------------------------------------------------


def test_judge_calls_are_traced_into_the_evaluators_project(fake: FakeOpenAI, tmp_path: Path) -> None:
    running, stop = start_collector(tmp_path / "data")
    try:
        endpoint = f"{running.http}/v1/traces"
        with JudgeClient(judge(fake.base_url), traces_endpoint=endpoint) as client:
            result = client.evaluate(TARGET)
            assert client.flush()
        bad = judge(fake.base_url, "judge-malformed")
        with JudgeClient(bad, traces_endpoint=endpoint) as client, pytest.raises(EvaluationError):
            client.evaluate(TARGET)
        deadline = time.monotonic() + 20
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(rows) < 2:
            running.flush()
            rows = running.query(
                "SELECT project, service_name, trace_id, parent_span_id, category, provider, request_model, "
                "response_model, input_tokens, output_tokens, status_code, attributes FROM spans ORDER BY start_time"
            )
            time.sleep(0.1)
    finally:
        stop()
    assert len(rows) == 2, rows
    ok, refused = rows
    meta = result.metadata
    assert {r["project"] for r in rows} == {"shop-evaluators"}  # never the app's project "shop"
    assert ok["service_name"] == "spanlake-evaluators" and ok["parent_span_id"] is None
    assert ok["trace_id"] == meta["judge_trace_id"]
    assert (ok["category"], ok["provider"]) == ("llm", "openai")
    assert (ok["request_model"], ok["response_model"]) == ("judge-pass", "judge-pass-2025-01-01")
    assert (ok["input_tokens"], ok["output_tokens"]) == (meta["input_tokens"], PASS_OUTPUT_TOKENS)
    attrs = json.loads(ok["attributes"])
    assert attrs["spanlake.evaluator.name"] == "groundedness" and attrs["spanlake.evaluator.version"] == 1
    assert attrs["spanlake.evaluator.target.trace_id"] == TARGET.trace_id
    assert ok["status_code"] != "ERROR"
    assert refused["status_code"] == "ERROR" and json.loads(refused["attributes"])["error.type"] == "refused"
