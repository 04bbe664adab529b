"""spanlake.analytics: reports over the lake (latency, cost, tasks, validation, retrieval)."""
