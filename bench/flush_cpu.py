"""CPU time per span of each stage of a flush worker, on a fixed WAL segment.

Builds one write-ahead-log segment of realistic GenAI spans (the requests of
bench/loadgen.py, 498 spans per request), then times, in this process, with
`time.process_time` (CPU, so far less sensitive to a loaded machine than wall clock):

- `read`: reading and checking the segment's frames (`wal.read_segment`);
- `wire`: OTLP bytes → Python values (`wire.traces_from_bytes`, C accelerator if built);
- `decode_spans`: the whole decode to lake columns (wire included), and its parts timed
  apart on the already wire-decoded spans: `normalize`, `split content`, `json`;
- `arrow`: column lists → Arrow table, sorted by start time (`writer.columns_to_table`);
- `parquet`: Arrow → zstd Parquet bytes in memory;
- `publish_segment`: the worker's whole job (all of the above plus files, fsync, marker).

Every figure is the median over `--rounds` rounds, in µs per span.

    python bench/flush_cpu.py --spans 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import SPANS_PER_TRACE, build_request

from spanlake.collector import wire
from spanlake.collector.content import split_content
from spanlake.collector.decode import decode_spans
from spanlake.collector.flusher import publish_segment
from spanlake.collector.normalize import normalize
from spanlake.collector.values import to_json, to_json_or_none
from spanlake.collector.wal import KIND_TRACES, Record, encode_record, read_segment
from spanlake.storage.objectstore import COMPRESSION, ROW_GROUP_SIZE
from spanlake.storage.schema import SPANS, STATUS_CODES
from spanlake.storage.writer import columns_to_table

TRACES_PER_REQUEST = 83  # 498 spans, as in bench/ingest_throughput.py


def build_segment(path: Path, spans: int) -> tuple[list[bytes], int]:
    """Write a closed WAL segment of about `spans` spans; return the request bodies and the span count."""
    bodies: list[bytes] = []
    n = 0
    trace = 0
    while n < spans:
        bodies.append(build_request(trace, TRACES_PER_REQUEST, seed=7).SerializeToString())
        trace += TRACES_PER_REQUEST
        n += TRACES_PER_REQUEST * SPANS_PER_TRACE
    now = time.time_ns()
    with open(path, "wb") as f:
        for body in bodies:
            f.write(encode_record(Record(KIND_TRACES, now, None, body)))
    return bodies, n


def one_round(seg: Path, data_dir: Path, n: int) -> tuple[dict[str, float], int]:
    """Time every stage once; returns µs per span by stage and the Parquet size."""
    us: dict[str, float] = {}

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        t0 = time.process_time()
        out = fn()
        us[stage] = (time.process_time() - t0) * 1e6 / n
        return out

    recs = timed("read", lambda: list(read_segment(seg)))
    traces = timed("wire", lambda: [wire.traces_from_bytes(rec.body) for rec in recs])
    batches = timed("decode_spans", lambda: [decode_spans(rec.body, rec.ingested_at_ns, rec.project) for rec in recs])

    # The parts of decode_spans, on the wire-decoded spans; the cyclic GC is off here so that
    # the inputs kept alive for these loops do not bill their collection to the stage.
    spans = [s for tr in traces for _, scopes in tr for *_, ss in scopes for s in ss]
    fields = ("attributes", "start_time_unix_nano", "status_code", "events")
    ai, si, ci, ei = (wire.SPAN_FIELDS.index(f) for f in fields)
    evs = [[{"time_unix_nano": e[0], "name": e[1], "attributes": e[2]} for e in s[ei]] for s in spans]
    gc.disable()
    try:
        timed(
            "  normalize",
            lambda: [normalize(s[ai], e, s[si], STATUS_CODES[s[ci]]) for s, e in zip(spans, evs, strict=True)],
        )
        splits = timed("  split content", lambda: [split_content(s[ai]) for s in spans])
        timed("  json", lambda: [(to_json(f), to_json_or_none(c)) for f, c in splits])
    finally:
        gc.enable()
    us["  rest (rows, events, ids)"] = us["decode_spans"] - sum(
        us[k] for k in ("wire", "  normalize", "  split content", "  json")
    )

    cols: dict[str, list[Any]] = {name: [] for name in SPANS.names}
    for batch in batches:
        for part in batch.values():
            for name, values in part.items():
                cols[name].extend(values)
    table = timed("arrow", lambda: columns_to_table(SPANS, cols).sort_by([("start_time", "ascending")]))

    def parquet() -> int:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression=COMPRESSION, row_group_size=ROW_GROUP_SIZE)
        return buf.tell()

    nbytes = timed("parquet", parquet)
    timed("publish_segment", lambda: publish_segment(str(seg), str(data_dir), "default", False))
    return us, nbytes


STAGES = (
    "read",
    "wire",
    "decode_spans",
    "  normalize",
    "  split content",
    "  json",
    "  rest (rows, events, ids)",
    "arrow",
    "parquet",
    "publish_segment",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="flush-cpu-"))
    (tmp / "wal").mkdir()
    seg = tmp / "wal" / "0000000000000000001-bench.wal"
    bodies, n = build_segment(seg, args.spans)
    size = seg.stat().st_size
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    try:
        for r in range(args.rounds):
            us, nbytes = one_round(seg, tmp / f"data{r}", n)
            for stage, v in us.items():
                times[stage].append(v)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    accel = "C (_otlp)" if wire.ACCELERATED else "none (pure Python)"
    print(f"segment: {n} spans, {len(bodies)} requests, {size / n:,.0f} B per span in the WAL")
    print(f"accelerator: {accel}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':28s} {'µs/span':>8s}   (median of {args.rounds}, CPU time)")
    for stage in STAGES:
        print(f"{stage:28s} {statistics.median(times[stage]):8.2f}")
    per = statistics.median(times["publish_segment"])
    print(f"Parquet {nbytes / n:.0f} B/span; one core at this rate: {1e6 / per:,.0f} spans/s")
    print(f"command: python bench/flush_cpu.py --spans {args.spans} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
