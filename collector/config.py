"""Collector settings: defaults as named constants, checked once at start-up."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from spanlake.collector import connection_limits as limits
from spanlake.collector.connection_limits import ConnectionLimits
from spanlake.collector.grpc_receiver import DEFAULT_MAX_MESSAGE_BYTES
from spanlake.collector.http_receiver import DEFAULT_MAX_BODY_BYTES
from spanlake.collector.validate import DEFAULT_MAX_FUTURE_S, DEFAULT_MAX_PAST_S
from spanlake.storage.layout import ALL_PROJECTS, COMPACT_MIN_AGE_S, DEFAULT_PROJECT, valid_project

AuthMode = Literal["auto", "on", "off"]

DEFAULT_DATA_DIR = "./spanlake-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_GRPC_PORT = 4317
DEFAULT_HTTP_PORT = 4318
DEFAULT_SEGMENT_MAX_AGE_S = 1.0
DEFAULT_SEGMENT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_PENDING_BYTES = 128 * 1024 * 1024
DEFAULT_MAX_BACKLOG_BYTES = 2 * 1024 * 1024 * 1024
DEFAULT_COMPACT_INTERVAL_S = 300.0
DEFAULT_RETENTION_INTERVAL_S = 3600.0
MAX_FUTURE_ENV = "SPANLAKE_MAX_FUTURE_S"
MAX_PAST_ENV = "SPANLAKE_MAX_PAST_S"


def env_float(name: str, default: float) -> float:
    """A tuning knob from the environment (deployments set these; `spanlake up` has no flag for them)."""
    value = os.environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


# Decode and write in worker processes so ingest uses every core (bench/ingest_throughput.py).
DEFAULT_FLUSH_WORKERS = min(4, os.cpu_count() or 1)


_LIMIT_SECONDS = (
    "http_header_timeout_s",
    "http_body_timeout_s",
    "http_keep_alive_s",
    "grpc_max_connection_idle_s",
    "grpc_max_connection_age_s",
    "grpc_max_connection_age_grace_s",
    "grpc_keepalive_s",
)


@dataclass(frozen=True)
class CollectorConfig:
    """Everything `spanlake up` can be told. Port 0 picks a free port.

    `lake`: where the Parquet lake is when not `<data_dir>/lake` (a folder, or
    `s3://bucket/prefix`); the WAL always stays in `data_dir`. `compaction`: whether this
    process compacts and applies `retention` ({project or '*': days}); on a lake shared by
    several collectors on object storage, enable it in exactly one process. `auth`: bearer
    keys required ("on"), not ("off", loopback only) or "auto" (off on loopback, else on);
    `keys_file` defaults to storage.keys.keys_path(data_dir).
    """

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    lake: str | None = None
    host: str = DEFAULT_HOST
    grpc_port: int = DEFAULT_GRPC_PORT
    http_port: int = DEFAULT_HTTP_PORT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    segment_max_age_s: float = DEFAULT_SEGMENT_MAX_AGE_S
    segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    max_backlog_bytes: int = DEFAULT_MAX_BACKLOG_BYTES
    # The accepted time window (collector.validate): spans starting later than now + max_future_s,
    # or earlier than now - max_past_s (0: no limit), are rejected.
    max_future_s: int = field(default_factory=lambda: int(env_float(MAX_FUTURE_ENV, DEFAULT_MAX_FUTURE_S)))
    max_past_s: int = field(default_factory=lambda: int(env_float(MAX_PAST_ENV, DEFAULT_MAX_PAST_S)))
    default_project: str = DEFAULT_PROJECT
    compact_interval_s: float = field(
        default_factory=lambda: env_float("SPANLAKE_COMPACT_INTERVAL_S", DEFAULT_COMPACT_INTERVAL_S)
    )
    compact_min_age_s: float = field(default_factory=lambda: env_float("SPANLAKE_COMPACT_MIN_AGE_S", COMPACT_MIN_AGE_S))
    flush_workers: int = field(default_factory=lambda: int(env_float("SPANLAKE_FLUSH_WORKERS", DEFAULT_FLUSH_WORKERS)))
    compaction: bool = True
    retention: Mapping[str, int] = field(default_factory=dict)
    retention_interval_s: float = field(
        default_factory=lambda: env_float("SPANLAKE_RETENTION_INTERVAL_S", DEFAULT_RETENTION_INTERVAL_S)
    )
    auth: AuthMode = "auto"
    keys_file: Path | None = None
    # Slow and greedy clients (collector/connection_limits.py; docs/security.md#slow-clients).
    http_header_timeout_s: float = field(
        default_factory=lambda: env_float("SPANLAKE_HTTP_HEADER_TIMEOUT_S", limits.DEFAULT_HEADER_TIMEOUT_S)
    )
    http_body_timeout_s: float = field(
        default_factory=lambda: env_float("SPANLAKE_HTTP_BODY_TIMEOUT_S", limits.DEFAULT_BODY_TIMEOUT_S)
    )
    http_keep_alive_s: float = field(
        default_factory=lambda: env_float("SPANLAKE_HTTP_KEEP_ALIVE_S", limits.DEFAULT_KEEP_ALIVE_S)
    )
    max_connections_per_client: int = field(
        default_factory=lambda: int(
            env_float("SPANLAKE_MAX_CONNECTIONS_PER_CLIENT", limits.DEFAULT_MAX_CONNECTIONS_PER_CLIENT)
        )
    )
    grpc_max_connection_idle_s: float = field(
        default_factory=lambda: env_float(
            "SPANLAKE_GRPC_MAX_CONNECTION_IDLE_S", limits.DEFAULT_GRPC_MAX_CONNECTION_IDLE_S
        )
    )
    grpc_max_connection_age_s: float = field(
        default_factory=lambda: env_float(
            "SPANLAKE_GRPC_MAX_CONNECTION_AGE_S", limits.DEFAULT_GRPC_MAX_CONNECTION_AGE_S
        )
    )
    grpc_max_connection_age_grace_s: float = field(
        default_factory=lambda: env_float(
            "SPANLAKE_GRPC_MAX_CONNECTION_AGE_GRACE_S", limits.DEFAULT_GRPC_MAX_CONNECTION_AGE_GRACE_S
        )
    )
    grpc_keepalive_s: float = field(
        default_factory=lambda: env_float("SPANLAKE_GRPC_KEEPALIVE_S", limits.DEFAULT_GRPC_KEEPALIVE_S)
    )
    # A secret `spanlake up` hands to the dashboard it starts: that trusted process writes labels
    # and dataset changes for any project (it enforces its signed-in users' roles itself).
    internal_token: str | None = field(default=None, repr=False)

    def validate(self) -> CollectorConfig:
        """Raise ValueError naming the first bad setting."""
        for name in ("grpc_port", "http_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ValueError(f"{name} must be between 0 and 65535, got {port}")
        if self.grpc_port and self.grpc_port == self.http_port:
            raise ValueError("grpc_port and http_port must differ")
        if self.host != "localhost":
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                raise ValueError(f"host must be an IP address or 'localhost', got {self.host!r}") from None
        for name in ("max_body_bytes", "max_message_bytes", "segment_max_bytes", "max_pending_bytes"):
            if getattr(self, name) < 1024:
                raise ValueError(f"{name} must be at least 1024 bytes")
        if self.max_pending_bytes < max(self.max_body_bytes, self.max_message_bytes):
            raise ValueError("max_pending_bytes must be at least max_body_bytes and max_message_bytes")
        if not 0 <= self.flush_workers <= 64:
            raise ValueError("flush_workers must be between 0 (flush in-process) and 64")
        if not 0 <= self.max_future_s <= 366 * 86_400 or self.max_past_s < 0:
            raise ValueError("max_future_s must be between 0 and 366 days, max_past_s 0 (no limit) or more")
        if self.segment_max_age_s <= 0:
            raise ValueError("segment_max_age_s must be positive")
        if not valid_project(self.default_project):
            raise ValueError(f"default_project {self.default_project!r} is not a valid project name")
        for project, days in self.retention.items():
            if project != ALL_PROJECTS and not valid_project(project):
                raise ValueError(f"retention: {project!r} is not a valid project name")
            if days < 1:
                raise ValueError(f"retention for {project!r} must be at least 1 day")
        if self.lake is not None and "://" in self.lake and not self.lake.startswith(("s3://", "file://")):
            raise ValueError(f"lake must be a folder, file:// or s3:// URL, got {self.lake!r}")
        if self.compact_interval_s <= 0 or self.retention_interval_s <= 0:
            raise ValueError("compact_interval_s and retention_interval_s must be positive")
        for name in _LIMIT_SECONDS:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.max_connections_per_client < 0:
            raise ValueError("max_connections_per_client must be 0 (no cap) or more")
        if self.auth not in ("auto", "on", "off"):
            raise ValueError(f"auth must be on, off or auto, got {self.auth!r}")
        if self.auth == "off" and not self.is_loopback:
            raise ValueError(
                f"authentication is off but {self.host} is not a loopback address: anyone who can reach it could "
                "read and write every project. Use --auth on and create keys with `spanlake keys create`, "
                "or listen on 127.0.0.1"
            )
        return self

    def connection_limits(self) -> ConnectionLimits:
        """The limits on slow and greedy clients, for both receivers."""
        return ConnectionLimits(
            header_timeout_s=self.http_header_timeout_s,
            body_timeout_s=self.http_body_timeout_s,
            keep_alive_s=self.http_keep_alive_s,
            max_connections_per_client=self.max_connections_per_client,
            grpc_max_connection_idle_s=self.grpc_max_connection_idle_s,
            grpc_max_connection_age_s=self.grpc_max_connection_age_s,
            grpc_max_connection_age_grace_s=self.grpc_max_connection_age_grace_s,
            grpc_keepalive_s=self.grpc_keepalive_s,
        )

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need a key: always unless off or auto on a loopback address."""
        return self.auth == "on" or (self.auth == "auto" and not self.is_loopback)

    @property
    def is_loopback(self) -> bool:
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
