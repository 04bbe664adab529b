"""Run real LiteLLM, instrumented, against the fake OpenAI server; export to a collector.

Run in its own process (instrumentors patch litellm globally):

    python -m tests.collector.instrumented_litellm LIBRARY --url URL --otlp ENDPOINT \
        --protocol grpc|http --project NAME

LIBRARY is `openinference` (openinference-instrumentation-litellm), `openinference_openai` (the
same plus openinference-instrumentation-openai on the openai client LiteLLM calls), or `otel`
(LiteLLM's own callback, `litellm.callbacks = ["otel"]`, on the app's global tracer provider;
USE_OTEL_LITELLM_REQUEST_SPAN=true in the environment gives it a span of its own). LiteLLM logs
from a background thread after the call returns: with `otel`, each scenario waits inside its span
for a callback registered after LiteLLM's (it runs once LiteLLM's has). Each scenario runs under a
parent span `scenario <name>`; stdout gets one JSON object: library versions and, per scenario,
the trace id.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from tests.collector.instrumented_client import WEATHER, WEATHER_TOOL
from tests.collector.instrumented_process import providers, report, runner_parser, scenario

MODEL = "openai/gpt-4o-mini"  # LiteLLM's provider/model
SYSTEM = "You are terse."
QUESTION = "What is OpenTelemetry in one line?"
SCENARIOS = ("chat", "stream", "tools", "error", "async_chat")
PACKAGES = {
    "openinference": ("openinference-instrumentation-litellm",),
    "openinference_openai": ("openinference-instrumentation-litellm", "openinference-instrumentation-openai"),
    "otel": (),
}
CALLBACK_WAIT_S = 10.0


class _Logged:
    """A LiteLLM callback that tells when LiteLLM has logged a call (success or failure)."""

    def __init__(self) -> None:
        self.done = threading.Event()

    def callback(self) -> Any:
        from litellm.integrations.custom_logger import CustomLogger

        done = self.done

        class Logged(CustomLogger):  # LiteLLM passes these four by keyword
            def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
                done.set()

            def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
                done.set()

            async def async_log_success_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                done.set()

            async def async_log_failure_event(
                self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
            ) -> None:
                done.set()

        return Logged()

    async def wait_async(self) -> bool:
        """Wait in the event loop (async logging runs on it)."""
        for _ in range(int(CALLBACK_WAIT_S / 0.02)):
            if self.done.is_set():
                return True
            await asyncio.sleep(0.02)
        return False


def _instrument(library: str, tracer_provider: Any) -> None:
    if library.startswith("openinference"):
        from openinference.instrumentation.litellm import LiteLLMInstrumentor

        LiteLLMInstrumentor().instrument(tracer_provider=tracer_provider)
    if library == "openinference_openai":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)


def _run(name: str, url: str, logged: _Logged | None) -> None:
    import litellm

    common: dict[str, Any] = {"api_base": url, "api_key": "sk-fake"}
    user = [{"role": "user", "content": QUESTION}]
    if name == "chat":
        litellm.completion(model=MODEL, messages=[{"role": "system", "content": SYSTEM}, *user], **common)
    elif name == "stream":
        stream = litellm.completion(
            model=MODEL, messages=user, stream=True, stream_options={"include_usage": True}, **common
        )
        for _ in stream:
            pass
    elif name == "tools":
        weather = [{"role": "user", "content": WEATHER}]
        litellm.completion(model=MODEL, messages=weather, tools=[WEATHER_TOOL], **common)
    elif name == "error":
        try:
            litellm.completion(model="openai/fail-500", messages=user, max_retries=0, **common)
        except litellm.InternalServerError:
            pass
        else:
            raise AssertionError("fail-500 did not fail")
    elif name == "async_chat":  # acompletion, same request as chat

        async def call() -> None:
            await litellm.acompletion(model=MODEL, messages=[{"role": "system", "content": SYSTEM}, *user], **common)
            if logged is not None and not await logged.wait_async():
                raise AssertionError("LiteLLM did not log the async call")

        asyncio.run(call())
        return
    if logged is not None and not logged.done.wait(CALLBACK_WAIT_S):
        raise AssertionError(f"LiteLLM did not log the {name} call")


def main() -> None:
    args = runner_parser("library", PACKAGES).parse_args()

    # LiteLLM fetches its model price map from the internet at import unless told to use its copy.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    from opentelemetry import trace

    resource = {"service.name": f"it-litellm-{args.library}", "spanlake.project": args.project}
    tracer_provider, logger_provider = providers(args.otlp, args.protocol, resource)
    trace.set_tracer_provider(tracer_provider)
    _instrument(args.library, tracer_provider)
    import litellm

    litellm.suppress_debug_info = True  # else it prints a help banner to stdout on every error
    logged = None
    if args.library == "otel":
        logged = _Logged()
        litellm.callbacks = ["otel", logged.callback()]
    tracer = tracer_provider.get_tracer("spanlake.tests")
    traces: dict[str, str] = {}
    for name in SCENARIOS:
        if logged is not None:
            logged.done.clear()
        with scenario(tracer, name) as traces[name]:
            _run(name, args.url, logged)
    packages = [*PACKAGES[args.library], "litellm", "openai", "opentelemetry-sdk"]
    report(packages, traces, tracer_provider, logger_provider)


if __name__ == "__main__":
    main()
