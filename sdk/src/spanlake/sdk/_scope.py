"""The machinery shared by every marker: one object that is a context manager (sync and
async) and a decorator for functions, coroutines, generators and async generators.

A scope is *opened* once per use (each `with`, each call of a decorated function, each
iteration of a decorated generator). The opened `Active` carries the OTel context to
attach while the app's code runs inside it. For generators the context is attached only
while the generator body runs, never while the consumer holds a yielded item.

Nothing here lets an SDK failure reach the app, and nothing here catches the app's own
exceptions: they are observed, recorded and re-raised unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import context

from spanlake.sdk._state import internal_error

MISSING: Any = object()  # "the function returned nothing we saw" (the `with` form, generators)
F = TypeVar("F", bound=Callable[..., Any])


class Active:
    """One opened scope: the context to attach, plus the innermost task and marked span."""

    __slots__ = ("_ctx", "_marked", "_task", "_token")

    def __init__(self) -> None:
        self._ctx: context.Context | None = None
        self._token: object | None = None
        self._task: Any = None  # innermost Task handle, for current_task()
        self._marked: Any = None  # innermost marked-span handle, for current()

    def _on_item(self, item: Any) -> None:
        """A decorated generator yielded `item`."""

    def _close(self, exc: BaseException | None, result: Any = MISSING) -> None:
        """The scope ends; `exc` is the app's exception, if any. Must never raise."""


def attach(active: Active) -> object | None:
    try:
        return context.attach(active._ctx) if active._ctx is not None else None
    except Exception:
        internal_error("attach")
        return None


def detach(token: object | None) -> None:
    if token is not None:
        try:
            context.detach(token)  # type: ignore[arg-type]
        except Exception:
            internal_error("detach")


class Scope:
    """Base class: subclasses implement `_open()`, which must never raise."""

    _actives: list[Active] | None = None

    def _open(self) -> Active:
        raise NotImplementedError

    def _open_call(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Active:
        """Open for one call of a decorated function (subclasses may look at the arguments)."""
        return self._open()

    # --- context manager -------------------------------------------------------------
    def __enter__(self) -> Any:
        active = self._open()
        active._token = attach(active)
        if self._actives is None:
            self._actives = [active]
        else:
            self._actives.append(active)
        return active

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        active = self._pop()
        if active is not None:
            detach(active._token)
            active._close(exc)
        return None  # never suppress the app's exception

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        return self.__exit__(exc_type, exc, tb)

    def _pop(self) -> Active | None:
        """The Active this thread/task entered last: the one whose context is current (one
        scope object may be entered by several threads or tasks at once)."""
        try:
            actives = self._actives
            if not actives:
                return None
            current = context.get_current()
            if actives[-1]._ctx is current:
                return actives.pop()
            for active in reversed(actives):
                if active._ctx is current:
                    actives.remove(active)
                    return active
            return actives.pop()  # its open failed (nothing attached), or the app leaked a context
        except Exception:
            internal_error("exit")
            return None

    # --- decorator -------------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        if inspect.isasyncgenfunction(fn):
            return _wrap_async_gen(self, fn)  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn):
            return _wrap_gen(self, fn)  # type: ignore[return-value]
        if inspect.iscoroutinefunction(fn):
            return _wrap_async(self, fn)  # type: ignore[return-value]
        return _wrap_sync(self, fn)  # type: ignore[return-value]


def _wrap_sync(scope: Scope, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        active = scope._open_call(fn, args, kwargs)
        token = attach(active)
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            detach(token)
            active._close(e)
            raise
        detach(token)
        active._close(None, result)
        return result

    return wrapper


def _wrap_async(scope: Scope, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        active = scope._open_call(fn, args, kwargs)
        token = attach(active)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as e:
            detach(token)
            active._close(e)
            raise
        detach(token)
        active._close(None, result)
        return result

    return wrapper


def _observe(active: Active, item: Any) -> None:
    try:
        active._on_item(item)
    except Exception:
        internal_error("generator item")


def _wrap_gen(scope: Scope, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        gen = fn(*args, **kwargs)
        active = scope._open_call(fn, args, kwargs)
        error: BaseException | None = None
        try:
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                token = attach(active)
                try:
                    item = gen.send(sent) if thrown is None else gen.throw(thrown)
                except StopIteration as stop:
                    return stop.value
                finally:
                    thrown = None
                    detach(token)
                _observe(active, item)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = attach(active)
                    try:
                        gen.close()
                    finally:
                        detach(token)
                    raise
                except BaseException as e:  # thrown in by the consumer: pass it to the body
                    thrown = e
        except BaseException as e:
            error = e
            raise
        finally:
            active._close(error)

    return wrapper


def _wrap_async_gen(scope: Scope, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        agen = fn(*args, **kwargs)
        active = scope._open_call(fn, args, kwargs)
        error: BaseException | None = None
        try:
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                token = attach(active)
                try:
                    item = await (agen.asend(sent) if thrown is None else agen.athrow(thrown))
                except StopAsyncIteration:
                    return
                finally:
                    thrown = None
                    detach(token)
                _observe(active, item)
                try:
                    sent = yield item
                except GeneratorExit:
                    token = attach(active)
                    try:
                        await agen.aclose()
                    finally:
                        detach(token)
                    raise
                except BaseException as e:
                    thrown = e
        except BaseException as e:
            error = e
            raise
        finally:
            active._close(error)

    return wrapper
