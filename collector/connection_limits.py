"""Limits on slow and greedy clients, for both receivers (docs/security.md, "Slow clients").

uvicorn closes a keep-alive connection that stays idle between requests, but has no timeout
for reading a request's headers or body: a client sending one byte now and then keeps a
connection (and a task) for ever. `http_server_options` therefore gives uvicorn an h11
protocol with three additions:

- the headers of a request must be complete within `header_timeout_s` of its first byte
  (or of the connection opening), else 408 and the connection is closed;
- its body must be complete within `body_timeout_s` of the headers, else 408 (or a plain
  close once the response has started);
- one client address may hold at most `max_connections_per_client` connections; the next
  ones get 503 with Retry-After and are closed at once.

gRPC connections are handled by grpc's C core, which offers the matching limits as channel
arguments (`grpc_server_options`): a handshake timeout (up to the client's first HTTP/2
SETTINGS frame), an idle limit (no call in progress), and an age limit after which the
server sends GOAWAY and, a grace period later, closes the connection whatever it is doing:
the bound on a call whose message arrives slowly. grpcio has no hook to count connections
per address; put a proxy in front for that.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0  # OTLP exporters give up on a request after 10 s by default
DEFAULT_KEEP_ALIVE_S = 5.0  # uvicorn's own default
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 128
DEFAULT_GRPC_MAX_CONNECTION_IDLE_S = 15.0
DEFAULT_GRPC_MAX_CONNECTION_AGE_S = 20.0  # + grace: a half-sent call lasts about as long as an HTTP body may
DEFAULT_GRPC_MAX_CONNECTION_AGE_GRACE_S = 10.0  # OTLP exporters give up on a call after 10 s anyway
DEFAULT_GRPC_KEEPALIVE_S = 60.0
GRPC_KEEPALIVE_TIMEOUT_S = 20.0  # a peer that does not answer a ping within this is gone
REFUSED_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits of one collector (CollectorConfig.connection_limits builds them)."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT  # 0: no cap
    grpc_max_connection_idle_s: float = DEFAULT_GRPC_MAX_CONNECTION_IDLE_S
    grpc_max_connection_age_s: float = DEFAULT_GRPC_MAX_CONNECTION_AGE_S
    grpc_max_connection_age_grace_s: float = DEFAULT_GRPC_MAX_CONNECTION_AGE_GRACE_S
    grpc_keepalive_s: float = DEFAULT_GRPC_KEEPALIVE_S


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def grpc_server_options(limits: ConnectionLimits) -> list[tuple[str, int]]:
    """Channel arguments for grpc.aio.server that bound every connection's lifetime."""
    return [
        ("grpc.server_handshake_timeout_ms", _ms(limits.header_timeout_s)),
        ("grpc.max_connection_idle_ms", _ms(limits.grpc_max_connection_idle_s)),
        ("grpc.max_connection_age_ms", _ms(limits.grpc_max_connection_age_s)),
        ("grpc.max_connection_age_grace_ms", _ms(limits.grpc_max_connection_age_grace_s)),
        ("grpc.keepalive_time_ms", _ms(limits.grpc_keepalive_s)),
        ("grpc.keepalive_timeout_ms", _ms(GRPC_KEEPALIVE_TIMEOUT_S)),
    ]


def http_server_options(limits: ConnectionLimits) -> dict[str, Any]:
    """Keyword arguments for uvicorn.Config: the limited protocol and the keep-alive timeout.

    Each call makes a protocol class of its own, so each server counts its own connections."""
    protocol = type("LimitedH11Protocol", (LimitedH11Protocol,), {"limits": limits, "per_client": Counter()})
    return {"http": protocol, "timeout_keep_alive": limits.keep_alive_s}


Phase = Literal["headers", "body"]


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body read deadlines and a per-address cap."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    per_client: ClassVar[Counter[str]] = Counter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: Phase | None = None
        self._counted: str | None = None  # the address this connection counts against

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        host = self.client[0] if self.client else ""
        cap = self.limits.max_connections_per_client
        if cap and self.per_client[host] >= cap:
            log.debug("refusing a connection from %s: %d already open", host, cap)
            self._refuse(503, "Service Unavailable", f"too many connections from {host} (at most {cap})")
            return
        self.per_client[host] += 1
        self._counted = host
        self._arm("headers")  # a connection that never sends anything is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted is not None:
            self.per_client[self._counted] -= 1
            if self.per_client[self._counted] <= 0:
                del self.per_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the websocket protocol takes the transport over
        super().handle_websocket_upgrade(event)

    def _track(self) -> None:
        """Arm the deadline that fits where the request is: its headers, its body, or none."""
        if self.transport is None or self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # Between requests the keep-alive timer closes an idle connection; once bytes of
            # the next request are here, its headers have header_timeout_s to arrive.
            if self._phase != "headers" and self.conn.trailing_data[0]:
                self._arm("headers")
            elif self._phase == "body":
                self._disarm()
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body")
        else:
            self._disarm()

    def _arm(self, phase: Phase) -> None:
        self._disarm()
        timeout = self.limits.header_timeout_s if phase == "headers" else self.limits.body_timeout_s
        self._phase = phase
        self._deadline = self.loop.call_later(timeout, self._expired, phase, timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._phase = None

    def _expired(self, phase: Phase, timeout: float) -> None:
        self._deadline = None
        self._phase = None
        if self.transport.is_closing():
            return
        host = self.client[0] if self.client else "?"
        log.debug("closing a connection from %s: request %s not received within %.3g s", host, phase, timeout)
        if self.cycle is not None and self.cycle.response_started:
            self._drop_cycle()
            self.transport.close()
        else:
            self._refuse(408, "Request Timeout", f"request {phase} not received within {timeout:g} s")

    def _drop_cycle(self) -> None:
        """Tell the application the client is gone (its reads end, its writes are dropped)."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer `status` outside the h11 state machine, then close the connection."""
        self._drop_cycle()
        body = message.encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n"
        )
        if status == 503:
            head += f"retry-after: {REFUSED_RETRY_AFTER_S}\r\n"
        self.transport.write(head.encode() + b"\r\n" + body)
        self.transport.close()
