"""The app an experiment runs: a Python function (`module:function`) or an HTTP endpoint.

`module:function` (the module is imported with the current directory on sys.path):

    def answer(input: str) -> str: ...                      # or
    async def answer(input: str, item: DatasetItem) -> Any: ...

It gets the item's input text (and, when it takes a second argument, the `DatasetItem`) and
returns the output: a str is the output as is, anything else is stored as its JSON. It may mark
the task's outcome with `spanlake.sdk.current_task().fail(reason)` / `.succeed()`. A sync
function runs on a thread of its own (a daemon: one that never returns is left behind at the
timeout and cannot keep the process alive); an async one runs on the runner's event loop.

`http://...` / `https://...`: each item is POSTed as JSON (`DatasetItem.payload()`: id, input,
messages, variables, context, expected_output, metadata) with a W3C `traceparent` header, so an
instrumented service's spans join the item's trace. A 2xx response's body is the output (a
JSON string body, `"..."`, is unwrapped); any other status is an error.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from opentelemetry import propagate

from spanlake.experiments.items import DatasetItem

MAX_ERROR_BODY = 300


class AppLoadError(ValueError):
    """`--app` names nothing that can be run."""


class AppError(Exception):
    """The app answered, but not with an output (an HTTP error status)."""


class App:
    """An app: `ref` as given, `await app(item, timeout_s)` for one item's raw output."""

    ref: str

    async def __call__(self, item: DatasetItem, timeout_s: float) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the app holds (an HTTP client)."""


class FunctionApp(App):
    """A Python callable, sync or async, taking (input) or (input, item)."""

    def __init__(self, ref: str, fn: Callable[..., Any]) -> None:
        self.ref = ref
        self.fn = fn
        call = fn if inspect.isroutine(fn) else type(fn).__call__  # a callable object: its __call__
        self.is_async = inspect.iscoroutinefunction(call)
        self.takes_item = _positional_count(fn) >= 2

    def _args(self, item: DatasetItem) -> tuple[Any, ...]:
        return (item.input, item) if self.takes_item else (item.input,)

    async def __call__(self, item: DatasetItem, timeout_s: float) -> Any:
        if self.is_async:
            return await asyncio.wait_for(self.fn(*self._args(item)), timeout_s)
        result = await asyncio.wait_for(_on_daemon_thread(self.fn, *self._args(item)), timeout_s)
        if inspect.isawaitable(result):  # a sync function handing back a coroutine
            result = await asyncio.wait_for(result, timeout_s)
        return result


class HttpApp(App):
    """An HTTP endpoint receiving each item as JSON."""

    def __init__(self, url: str) -> None:
        self.ref = url
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, item: DatasetItem, timeout_s: float) -> Any:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        headers = {"Content-Type": "application/json"}
        propagate.inject(headers)  # traceparent of the item's task span
        body = orjson.dumps(item.payload(), default=str)
        r = await asyncio.wait_for(
            self._client.post(self.ref, content=body, headers=headers, timeout=timeout_s), timeout_s
        )
        if not 200 <= r.status_code < 300:
            raise AppError(f"HTTP {r.status_code}: {r.text[:MAX_ERROR_BODY]}")
        if r.headers.get("content-type", "").startswith("application/json"):
            try:
                doc = orjson.loads(r.content)
            except orjson.JSONDecodeError:
                return r.text
            if isinstance(doc, str):
                return doc
        return r.text

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _positional_count(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _on_daemon_thread(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """Run fn(*args) on a new daemon thread, in a copy of this context (so the SDK's current
    task is the item's); the awaitable can be abandoned (timeout) while the thread runs on."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    ctx = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def target() -> None:
        try:
            value, error = ctx.run(fn, *args), None
        except BaseException as e:
            value, error = None, e
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # the loop has closed: the run gave up on this item long ago

    threading.Thread(target=target, name="spanlake-experiment-app", daemon=True).start()
    return future


def load_app(ref: str) -> App:
    """`module:function` or an http(s) URL; AppLoadError saying what is wrong."""
    ref = ref.strip()
    if ref.startswith(("http://", "https://")):
        return HttpApp(ref)
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"--app {ref!r}: use module:function (e.g. myapp.bot:answer) or an http(s):// URL")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules next to where you run it
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # the app's own import errors, too
        raise AppLoadError(f"--app {ref!r}: cannot import {module_name!r} ({type(e).__name__}: {e})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AppLoadError(f"--app {ref!r}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AppLoadError(f"--app {ref!r}: {attr!r} is not callable")
    if _positional_count(obj) < 1:
        raise AppLoadError(f"--app {ref!r}: {attr!r} must take the input (and optionally the item)")
    return FunctionApp(ref, obj)
