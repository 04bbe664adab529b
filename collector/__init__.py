"""spanlake.collector: OTLP receivers, decoding, normalization and the write-ahead log."""
