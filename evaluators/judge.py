"""LLM judges: a prompt from the target, an OpenAI-compatible call, a parsed verdict.

    client = JudgeClient(evaluator, data_dir=..., traces_endpoint=...)   # one per evaluator version
    result = client.evaluate(target)   # thread-safe; blocks; at most `concurrency` calls at once
    client.close()

A call is `POST {base_url}/chat/completions` with a system message (the rubric and the answer
format, evaluators.judge_prompt) and the rendered template as the user message, asking for
a JSON object (`response_format`), at `temperature` with `max_tokens`; `Authorization:
Bearer $<api_key_env>` when the evaluator names a key variable.

Failures: connection errors, timeouts (`timeout_s` per attempt), 408, 429 and 5xx are tried
again up to `retries` times, after an exponential backoff with jitter (at least what a
`Retry-After` header asks, unless it asks for more than MAX_RETRY_AFTER_S); then
EvaluationError(transient=True). Other 4xx, an unreadable response and a refused answer
(judge_prompt.parse_answer) are not transient. With `daily_spend_usd`, a call is refused
(transient: it resumes at 00:00 UTC) once the evaluator version's spend today
(evaluators.spend) reached it.

Result.metadata: judge_model (the model that answered), input_tokens, output_tokens,
cost_usd (from `input_usd_per_mtok`/`output_usd_per_mtok` when given, else the genai-prices
database and the data dir's price overrides through analytics.pricing; None when unpriced),
latency_ms (the whole call, retries included) and judge_trace_id (the call's trace in
project `<project>-evaluators`, evaluators.judge_tracing; None without tracing).
"""

from __future__ import annotations

import dataclasses
import os
import random
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from spanlake.analytics.pricing import PriceBook, call_cost
from spanlake.analytics.runner import default_prices_path
from spanlake.evaluators.definition import Evaluator, EvaluatorError
from spanlake.evaluators.judge_prompt import ScoreRange, parse_answer, render, system_message
from spanlake.evaluators.judge_tracing import JudgeTracer
from spanlake.evaluators.result import EvaluationError, Result
from spanlake.evaluators.spend import SpendLedger, spend_key
from spanlake.evaluators.target import Target
from spanlake.storage.label_schema import LabelSchema, LabelSchemas
from spanlake.storage.layout import DataDir

__all__ = ["JudgeClient", "SpendLedger", "parse_answer", "render", "system_message"]

TIMEOUT_S = 30.0
RETRIES = 3
CONCURRENCY = 4
TEMPERATURE = 0.0
MAX_TOKENS = 512
BACKOFF_S = 0.5  # the first retry waits about this long, each next one twice as long
MAX_BACKOFF_S = 30.0
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After ends the retries at once (transient error)
PROVIDER = "openai"  # what an OpenAI-compatible endpoint is priced and traced as
RETRY_STATUSES = frozenset({408, 429})


@dataclasses.dataclass
class _Call:
    """What one evaluate() call's attempts came to (for its span)."""

    attempts: int = 0
    error_type: str | None = None  # the last retried failure: timeout, connection, 429, 503, ...


class _Retry(Exception):
    """One attempt failed in a way worth trying again; `wait_s`: the server's Retry-After."""

    def __init__(self, message: str, wait_s: float | None = None, kind: str = "error") -> None:
        super().__init__(message)
        self.wait_s = wait_s
        self.kind = kind


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _error_text(response: httpx.Response) -> str:
    """The error message of an OpenAI-style error body, else the body's start."""
    try:
        body = response.json()
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return str(message or response.text[:200] or response.reason_phrase)


def _usage(body: Mapping[str, Any]) -> dict[str, int]:
    """Token counts of an OpenAI-style usage block (OTel meaning: cached ⊂ input, reasoning ⊂ output)."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return {}
    out: dict[str, int] = {}
    for field, keys in (
        ("input_tokens", ("prompt_tokens", "input_tokens")),
        ("output_tokens", ("completion_tokens", "output_tokens")),
    ):
        value = next((usage[k] for k in keys if isinstance(usage.get(k), int)), None)
        if value is not None:
            out[field] = value
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        out["cache_read_tokens"] = details["cached_tokens"]
    details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        out["reasoning_tokens"] = details["reasoning_tokens"]
    return out


def _answer_text(body: Any) -> str:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise EvaluationError("the judge endpoint's response has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise EvaluationError("the judge endpoint answered without text (choices[0].message.content)")
    return content


def _number(params: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvaluatorError(f"{key} must be a number, not {value!r}")
    return float(value)


class JudgeClient:
    """Calls one llm_judge evaluator version's endpoint; thread-safe (see the module docstring).

    `data_dir`: where the spend ledger, the price overrides and the label schemas live (None:
    spend kept in memory, genai-prices only, the default label schema). `traces_endpoint`: an
    OTLP/HTTP traces URL to trace the calls to (None: not traced); `traces_headers` its
    headers (an API key). `project_schemas`: the label schemas to check failure modes and the
    score range against (default: the data dir's).
    """

    def __init__(
        self,
        evaluator: Evaluator,
        *,
        data_dir: DataDir | str | Path | None = None,
        traces_endpoint: str | None = None,
        project_schemas: LabelSchemas | None = None,
        traces_headers: Mapping[str, str] | None = None,
        prices: PriceBook | None = None,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        p = evaluator.params
        if not evaluator.is_judge:
            raise EvaluatorError(f"evaluator {evaluator.name!r} is a {evaluator.kind}, not an llm_judge")
        for key in ("base_url", "model", "template"):
            if not isinstance(p.get(key), str) or not p[key]:
                raise EvaluatorError(f"llm_judge {evaluator.name!r} needs {key} (a string)")
        self.evaluator = evaluator
        self.base_url = str(p["base_url"]).rstrip("/")
        self.model = str(p["model"])
        self.template = str(p["template"])
        self.rubric = p.get("rubric")
        self.api_key_env = p.get("api_key_env")
        self.timeout_s = _number(p, "timeout_s", TIMEOUT_S) or TIMEOUT_S
        self.retries = int(p.get("retries", RETRIES))
        self.concurrency = max(1, int(p.get("concurrency", CONCURRENCY)))
        self.temperature = _number(p, "temperature", TEMPERATURE)
        self.max_tokens = int(p.get("max_tokens", MAX_TOKENS))
        self.daily_spend_usd = _number(p, "daily_spend_usd", None)
        self.rates = (_number(p, "input_usd_per_mtok", None), _number(p, "output_usd_per_mtok", None))
        self.score_bounds: ScoreRange = (_number(p, "score_min", None), _number(p, "score_max", None))
        self.provider = str(p.get("provider") or PROVIDER)
        self.backoff_s = backoff_s
        dd = None if data_dir is None else data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)
        self._schemas = project_schemas or (LabelSchemas(dd) if dd is not None else None)
        self._prices = prices or (PriceBook.from_file(default_prices_path(dd)) if dd is not None else PriceBook())
        self.ledger = SpendLedger(dd)
        self.spend_key = spend_key(evaluator.project, evaluator.name, evaluator.version)
        self._tracer = JudgeTracer(traces_endpoint, evaluator.project, traces_headers) if traces_endpoint else None
        self._slots = threading.BoundedSemaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._http = httpx.Client(timeout=httpx.Timeout(self.timeout_s), limits=limits)
        self._lock = threading.Lock()
        self.attempts = 0  # HTTP requests sent, retries included
        self.retried = 0  # of which retries

    # --- the call ---------------------------------------------------------------------------

    def schema(self) -> LabelSchema:
        """The project's current label schema (the default when no data dir was given)."""
        return self._schemas.get(self.evaluator.project) if self._schemas is not None else LabelSchema()

    def score_range(self, schema: LabelSchema) -> ScoreRange:
        """The evaluator's score_min/score_max, else the project's."""
        lo, hi = self.score_bounds
        return (schema.score_min if lo is None else lo, schema.score_max if hi is None else hi)

    def request_body(self, target: Target, schema: LabelSchema) -> dict[str, Any]:
        """The chat completion request for `target`."""
        system = system_message(self.rubric, list(schema.failure_modes), self.score_range(schema))
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": render(self.template, target)},
            ],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "response_format": {"type": "json_object"},
        }

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(str(self.api_key_env))
        if not key:
            raise EvaluationError(f"the environment variable {self.api_key_env} (the judge's api_key_env) is not set")
        return {"Authorization": f"Bearer {key}"}

    def evaluate(self, target: Target) -> Result:
        """Judge `target`; EvaluationError when it cannot (transient: worth trying later)."""
        self._check_spend()
        schema = self.schema()
        body = self.request_body(target, schema)
        headers = self._headers()
        span = None
        if self._tracer is not None:
            request = {"temperature": self.temperature or 0.0, "max_tokens": self.max_tokens}
            span = self._tracer.start(
                name=self.evaluator.name,
                version=self.evaluator.version,
                model=self.model,
                base_url=self.base_url,
                target=target,
                provider=self.provider,
                **request,
            )
        started = time.perf_counter()
        response: dict[str, Any] | None = None
        usage: dict[str, int] = {}
        call = _Call()
        try:
            response = self._post(body, headers, call)
            usage = _usage(response)
            cost = self._cost(response, usage)
            self.ledger.add(self.spend_key, cost or 0.0)
            result = parse_answer(_answer_text(response), schema, self.score_range(schema))
        except EvaluationError as e:
            if span is not None:
                kind = (call.error_type or "transient") if e.transient else "refused"
                self._tracer.finish(
                    span, response=response, usage=usage, attempts=call.attempts, error=str(e), error_type=kind
                )  # type: ignore[union-attr]
            raise
        if span is not None:
            self._tracer.finish(span, response=response, usage=usage, attempts=call.attempts)  # type: ignore[union-attr]
        if result.verdict == "fail" and result.failure_mode is None and self.evaluator.params.get("failure_mode"):
            result = dataclasses.replace(result, failure_mode=str(self.evaluator.params["failure_mode"]))
        trace_id = format(span.get_span_context().trace_id, "032x") if span is not None else None
        meta = {
            "judge_model": response.get("model") if isinstance(response.get("model"), str) else self.model,
            "input_tokens": usage.get("input_tokens"),
            "output_tokens": usage.get("output_tokens"),
            "cost_usd": cost,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "judge_trace_id": trace_id,
        }
        return dataclasses.replace(result, metadata=meta)

    def _check_spend(self) -> None:
        cap = self.daily_spend_usd
        if cap is not None and self.ledger.spent(self.spend_key) >= cap:
            raise EvaluationError(f"daily spend cap of ${cap:g} reached; resumes at 00:00 UTC", transient=True)

    def _post(self, body: dict[str, Any], headers: dict[str, str], call: _Call) -> dict[str, Any]:
        """The endpoint's JSON response, retrying what is worth it; counts attempts in `call`."""
        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                with self._lock:
                    self.retried += 1
            call.attempts = attempt + 1
            try:
                return self._attempt(url, body, headers)
            except _Retry as e:
                last, call.error_type = str(e), e.kind
                if attempt == self.retries:
                    break
                if e.wait_s is not None and e.wait_s > MAX_RETRY_AFTER_S:
                    last += f" (it asks to wait {e.wait_s:g} s)"
                    break
                delay = min(MAX_BACKOFF_S, self.backoff_s * 2**attempt)
                time.sleep(max(delay / 2 + random.uniform(0, delay / 2), e.wait_s or 0.0))
        n = call.attempts
        raise EvaluationError(
            f"judge endpoint {self.base_url}: {last} (after {n} attempt{'s' * (n > 1)})", transient=True
        )

    def _attempt(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        with self._slots:
            with self._lock:
                self.attempts += 1
            try:
                response = self._http.post(url, json=body, headers=headers)
            except httpx.TimeoutException:
                raise _Retry(f"no answer within {self.timeout_s:g} s", kind="timeout") from None
            except httpx.TransportError as e:
                raise _Retry(f"cannot reach it: {e or type(e).__name__}", kind="connection") from None
        status = response.status_code
        if status in RETRY_STATUSES or status >= 500:
            wait = _retry_after(response.headers.get("retry-after"))
            raise _Retry(f"HTTP {status}: {_error_text(response)}", wait_s=wait, kind=str(status))
        if status >= 400:
            raise EvaluationError(
                f"judge endpoint {self.base_url} refused the request: HTTP {status}: {_error_text(response)}"
            )
        try:
            parsed = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise EvaluationError(
                f"judge endpoint {self.base_url} answered with no JSON: {response.text[:120]!r}"
            ) from None
        if not isinstance(parsed, dict):
            raise EvaluationError(f"judge endpoint {self.base_url} answered with JSON that is not an object")
        return parsed

    def _cost(self, response: Mapping[str, Any], usage: Mapping[str, int]) -> float | None:
        """USD of the call: the evaluator's own rates when given, else the price book; None unpriced."""
        tokens_in, tokens_out = usage.get("input_tokens", 0), usage.get("output_tokens", 0)
        rate_in, rate_out = self.rates
        if rate_in is not None or rate_out is not None:
            return (tokens_in * (rate_in or 0.0) + tokens_out * (rate_out or 0.0)) / 1e6
        answered = response.get("model")
        now = datetime.now(UTC)
        for model in dict.fromkeys(m for m in (answered, self.model) if isinstance(m, str)):
            cost = call_cost(
                self._prices,
                self.provider,
                model,
                now,
                tokens_in,
                tokens_out,
                usage.get("cache_read_tokens", 0),
                usage.get("reasoning_tokens", 0),
            )
            if cost is not None:
                return cost
        return None

    # --- lifecycle --------------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write the spend not written yet, export the judge spans ended so far (True without tracing)."""
        self.ledger.flush()
        return self._tracer.flush(timeout_s) if self._tracer is not None else True

    def close(self) -> None:
        """Close the HTTP connections, write the spend, export the remaining spans."""
        self._http.close()
        self.ledger.flush()
        if self._tracer is not None:
            self._tracer.close()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
