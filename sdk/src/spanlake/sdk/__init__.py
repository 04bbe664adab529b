"""spanlake-sdk: mark what an LLM application's spans mean, on top of OpenTelemetry."""

from spanlake.sdk import attributes

__all__ = ["attributes"]
