"""Run the decoder fuzz target for a bounded time (SPANLAKE_FUZZ_SECONDS, default 30)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format

from tests.collector.test_decode_properties import to_otlp_json
from tests.factories import make_logs_request, make_metrics_request, make_request, make_span, make_sum

pytest.importorskip("atheris")
TARGET = Path(__file__).with_name("fuzz_decoders.py")


def seed_corpus(directory: Path) -> None:
    """Valid requests of each kind, so the fuzzer starts from deep inside the format."""
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

    spans = [
        make_span("chat", attributes={"gen_ai.usage.input_tokens": 10, "l": [1, "a", 2.5], "m": {"k": b"x"}}),
        make_span("tool", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}),
    ]
    spans[0].events.add(name="exception", time_unix_nano=spans[0].start_time_unix_nano)
    spans[1].links.add(trace_id=spans[0].trace_id, span_id=spans[0].span_id)
    traces = make_request(spans)
    logs = make_logs_request([LogRecord(time_unix_nano=1, trace_id=spans[0].trace_id, event_name="gen_ai.choice")])
    (directory / "traces-pb").write_bytes(b"\x00" + traces.SerializeToString())
    (directory / "traces-json").write_bytes(b"\x01" + to_otlp_json(traces))
    (directory / "logs-pb").write_bytes(b"\x02" + logs.SerializeToString())
    metric = make_sum("gen_ai.client.token.usage", [(1, 2, 5, {"gen_ai.token.type": "input"})])
    metric.sum.data_points[0].exemplars.add(as_int=1, trace_id=spans[0].trace_id, span_id=spans[0].span_id)
    hist = make_sum("h", [])
    hist.histogram.aggregation_temporality = 2
    hist.histogram.data_points.add(time_unix_nano=2, count=1, bucket_counts=[1, 0], explicit_bounds=[1.0])
    metrics = make_metrics_request([metric, hist])
    (directory / "metrics-pb").write_bytes(b"\x03" + metrics.SerializeToString())
    (directory / "metrics-json").write_bytes(b"\x04" + to_otlp_json(metrics))
    assert json_format.MessageToDict(traces)


def test_fuzz_decoders_for_a_bounded_time(tmp_path: Path) -> None:
    seconds = int(os.environ.get("SPANLAKE_FUZZ_SECONDS", "30"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seed_corpus(corpus)
    result = subprocess.run(
        [sys.executable, str(TARGET), str(corpus), f"-max_total_time={seconds}", "-rss_limit_mb=2048", "-timeout=20"],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        cwd=tmp_path,  # crash-* files land here, not in the repo
    )
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, f"fuzzer found a failing input:\n{tail}"
    assert "Done" in tail or "DONE" in tail or "pulse" in tail or "INITED" in tail, tail
