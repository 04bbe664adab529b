"""Coverage-guided fuzz target (atheris/libFuzzer) over everything a request body reaches.

The first byte picks the path (OTLP protobuf traces, OTLP/JSON traces, protobuf logs,
protobuf metrics, OTLP/JSON metrics); the rest is the body. Properties checked on every input:
  - parsing either succeeds or raises InvalidRequest (nothing else);
  - every span, log record or metric data point that passes validation decodes and converts
    to the lake's Arrow schema (an acknowledged item must never be lost in the flusher);
  - the C accelerator and the pure-Python reference agree, or the accelerator declines.

Run: python tests/fuzz/fuzz_decoders.py CORPUS_DIR -max_total_time=60
(tests/fuzz/test_fuzz.py runs it for a bounded time in CI.)
"""

from __future__ import annotations

import sys
import time

import atheris

with atheris.instrument_imports():
    from spanlake.collector import wire
    from spanlake.collector.decode import decode_logs, decode_spans
    from spanlake.collector.decode_metrics import decode_metrics
    from spanlake.collector.errors import InvalidRequest
    from spanlake.collector.ingest import LOGS, METRICS, TRACES, parse_request
    from spanlake.collector.validate import validate_logs, validate_traces
    from spanlake.collector.validate_metrics import validate_metrics
    from spanlake.storage.schema import LOGS as LOGS_TABLE
    from spanlake.storage.schema import METRICS as METRICS_TABLE
    from spanlake.storage.schema import SPANS
    from spanlake.storage.writer import columns_to_table

NOW = time.time_ns()


def check_traces(body: bytes, encoding: str) -> None:
    try:
        request = parse_request(body, encoding, TRACES)  # type: ignore[arg-type]
    except InvalidRequest:
        return
    verdict = validate_traces(request, now_ns=NOW)
    accepted = request.SerializeToString()
    rows = sum(columns_to_table(SPANS, c).num_rows for c in decode_spans(accepted, NOW).values())
    assert rows == verdict.accepted, (rows, verdict.accepted)
    if wire.ACCELERATED:
        try:
            fast = wire._otlp.decode_traces(body)
        except (wire._otlp.DecodeError, UnicodeDecodeError):
            return
        if encoding == "protobuf":
            reference = wire.traces_from_message(TRACES.request_type.FromString(body))
            assert repr(fast) == repr(reference)


def check_logs(body: bytes) -> None:
    try:
        request = parse_request(body, "protobuf", LOGS)
    except InvalidRequest:
        return
    verdict = validate_logs(request, now_ns=NOW)
    rows = sum(columns_to_table(LOGS_TABLE, c).num_rows for c in decode_logs(request, NOW).values())
    assert rows == verdict.accepted


def check_metrics(body: bytes, encoding: str) -> None:
    try:
        request = parse_request(body, encoding, METRICS)  # type: ignore[arg-type]
    except InvalidRequest:
        return
    verdict = validate_metrics(request, now_ns=NOW)
    accepted = request.SerializeToString()
    rows = sum(columns_to_table(METRICS_TABLE, c).num_rows for c in decode_metrics(accepted, NOW).values())
    assert rows == verdict.accepted, (rows, verdict.accepted)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, body = data[0] % 5, data[1:]
    if mode == 0:
        check_traces(body, "protobuf")
    elif mode == 1:
        check_traces(body, "json")
    elif mode == 2:
        check_logs(body)
    else:
        check_metrics(body, "protobuf" if mode == 3 else "json")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
