"""Context scopes: attributes every span started inside inherits, whoever creates it (the
app's markers, auto-instrumentations, plain OpenTelemetry). The span processor installed
by setup() copies them onto each span in `on_start`; the scope also stamps the enclosing
task() once (first prompt wins), so a task can be grouped by prompt version.

Usable like markers: `with prompt("answer", "v3"):`, `@prompt("answer", "v3")`, async too.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context

from spanlake.sdk import attributes as A
from spanlake.sdk._scope import Active, Scope
from spanlake.sdk._state import ACTIVE_KEY, SCOPE_ATTRS_KEY, STATE, internal_error


class ContextScope(Scope):
    """Adds attributes to every span started while it is active (nesting merges, inner wins)."""

    def __init__(self, attributes: dict[str, Any]) -> None:
        self._attrs = attributes

    def _open(self) -> Active:
        active = Active()
        STATE.scopes_used = True
        try:
            cur = context.get_current()
            parent = cur.get(ACTIVE_KEY)
            if parent is not None:
                active._task = parent._task  # type: ignore[attr-defined]
                active._marked = parent._marked  # type: ignore[attr-defined]
            inherited = cur.get(SCOPE_ATTRS_KEY)
            merged = {**inherited, **self._attrs} if inherited else self._attrs  # type: ignore[dict-item]
            active._ctx = context.set_value(ACTIVE_KEY, active, context.set_value(SCOPE_ATTRS_KEY, merged, cur))
            if active._task is not None:
                active._task._stamp(self._attrs)
        except Exception:
            internal_error("scope")
        return active


def prompt(name: str, version: str | None = None) -> ContextScope:
    """The prompt template (and version) used inside: `gen_ai.prompt.name`/`gen_ai.prompt.version`
    on every span started within, and on the enclosing task if it has none yet."""
    attrs = {A.GEN_AI_PROMPT_NAME: name}
    if version is not None:
        attrs[A.GEN_AI_PROMPT_VERSION] = str(version)
    return ContextScope(attrs)


def session(session_id: str | None = None, user_id: str | None = None) -> ContextScope:
    """The session and end user (`session.id`, `user.id`) for every span started within."""
    attrs = {}
    if session_id is not None:
        attrs[A.SESSION_ID] = str(session_id)
    if user_id is not None:
        attrs[A.USER_ID] = str(user_id)
    return ContextScope(attrs)
