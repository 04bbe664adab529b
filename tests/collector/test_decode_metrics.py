"""Property tests over the metrics path: whatever arrives, the collector refuses it with
InvalidRequest or stores every data point it accepted (one row each), OTLP/JSON and protobuf
read the same, and a point's id is stable (a re-sent point counts once)."""

from __future__ import annotations

import time

from google.protobuf import json_format
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from spanlake.collector.decode_metrics import decode_metrics
from spanlake.collector.errors import InvalidRequest
from spanlake.collector.ingest import METRICS, parse_request
from spanlake.collector.validate_metrics import point_count, validate_metrics
from spanlake.storage.schema import METRICS as METRICS_TABLE
from spanlake.storage.writer import columns_to_table
from tests.collector.strategies import metric_requests
from tests.collector.test_decode_properties import to_otlp_json
from tests.factories import make_metrics_request

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _huge_summary() -> ExportMetricsServiceRequest:
    m = Metric(name="s")
    m.summary.data_points.add(time_unix_nano=time.time_ns(), count=2**64 - 1)
    return make_metrics_request([m])


@SETTINGS
@given(metric_requests())
@example(_huge_summary())
def test_every_accepted_point_decodes_and_converts(request) -> None:
    sent = point_count(request)
    parsed = parse_request(request.SerializeToString(), "protobuf", METRICS)
    verdict = validate_metrics(parsed)
    assert verdict.accepted + verdict.rejected == sent
    assert point_count(parsed) == verdict.accepted
    now = time.time_ns()
    batch = decode_metrics(parsed.SerializeToString(), now)
    ids = [i for cols in batch.values() for i in cols["point_id"]]
    assert sum(columns_to_table(METRICS_TABLE, cols).num_rows for cols in batch.values()) == verdict.accepted
    again = decode_metrics(parsed, now + 1)  # the same points, later: the same ids
    assert sorted(i for cols in again.values() for i in cols["point_id"]) == sorted(ids)
    if verdict.rejected:
        assert verdict.message.startswith(f"rejected {verdict.rejected} of {sent}")


@SETTINGS
@given(metric_requests())
def test_json_and_protobuf_read_the_same(request) -> None:
    from_json = parse_request(to_otlp_json(request), "json", METRICS)
    assert json_format.MessageToDict(from_json) == json_format.MessageToDict(request)


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(["protobuf", "json"]))
def test_garbage_is_refused_or_stored_whole(body: bytes, encoding: str) -> None:
    try:
        parsed = parse_request(body, encoding, METRICS)  # type: ignore[arg-type]
    except InvalidRequest:
        return
    verdict = validate_metrics(parsed)
    rows = sum(len(cols["point_id"]) for cols in decode_metrics(parsed, time.time_ns()).values())
    assert rows == verdict.accepted
