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
import io
import os
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
from spanlake.storage.layout import DataDir
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


def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="flush-cpu-"))
    seg_dir = tmp / "wal"
    seg_dir.mkdir()
    seg = seg_dir / "0000000000000000001-bench.wal"
    bodies, n = build_segment(seg, args.spans)
    size = seg.stat().st_size
    times: dict[str, list[float]] = {}

    def record(stage: str, seconds: float) -> None:
        times.setdefault(stage, []).append(seconds * 1e6 / n)

    for r in range(args.rounds):
        t, recs = cpu(lambda: list(read_segment(seg)))
        record("read", t)
        t, traces = cpu(lambda: [wire.traces_from_bytes(rec.body) for rec in recs])
        record("wire", t)
        t, batches = cpu(lambda: [decode_spans(rec.body, rec.ingested_at_ns, rec.project) for rec in recs])
        record("decode_spans", t)

        spans = [s for tr in traces for _, scopes in tr for *_, ss in scopes for s in ss]
        evs = [
            [{"time_unix_nano": e[0], "name": e[1], "attributes": e[2]} for e in s[wire.SPAN_FIELDS.index("events")]]
            for s in spans
        ]
        ai, si, ci = (wire.SPAN_FIELDS.index(f) for f in ("attributes", "start_time_unix_nano", "status_code"))
        t, _ = cpu(lambda: [normalize(s[ai], e, s[si], STATUS_CODES[s[ci]]) for s, e in zip(spans, evs, strict=True)])
        record("  normalize", t)
        t, splits = cpu(lambda: [split_content(s[ai]) for s in spans])
        record("  split content", t)
        t, _ = cpu(lambda: [(to_json(f), to_json_or_none(c)) for f, c in splits])
        record("  json", t)

        cols: dict[str, list[Any]] = {name: [] for name in SPANS.names}
        for batch in batches:
            for part in batch.values():
                for name, values in part.items():
                    cols[name].extend(values)
        t, table = cpu(lambda: columns_to_table(SPANS, cols).sort_by([("start_time", "ascending")]))
        record("arrow", t)

        def parquet() -> int:
            buf = io.BytesIO()
            pq.write_table(table, buf, compression=COMPRESSION, row_group_size=ROW_GROUP_SIZE)
            return buf.tell()

        t, nbytes = cpu(parquet)
        record("parquet", t)

        dd = tmp / f"data{r}"
        t, _ = cpu(lambda: publish_segment(str(seg), str(dd), "default", False, str(dd / "lake")))  # noqa: B023
        record("publish_segment", t)
        del recs, traces, batches, spans, evs, splits, cols, table

    rest = [
        d - w - nz - sp - js
        for d, w, nz, sp, js in zip(
            times["decode_spans"],
            times["wire"],
            times["  normalize"],
            times["  split content"],
            times["  json"],
            strict=True,
        )
    ]
    times["  rest (rows, events, ids)"] = rest
    order = [
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
    ]
    print(f"segment: {n} spans, {len(bodies)} requests, {size / n:,.0f} B per span in the WAL")
    print(f"accelerator: {'C (_otlp)' if wire.ACCELERATED else 'none (pure Python)'}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':28s} {'µs/span':>8s}   (median of {args.rounds}, CPU time)")
    for stage in order:
        print(f"{stage:28s} {statistics.median(times[stage]):8.2f}")
    per = statistics.median(times["publish_segment"])
    print(f"Parquet {nbytes / n:.0f} B/span; one core at this rate: {1e6 / per:,.0f} spans/s")
    print(f"command: python bench/flush_cpu.py --spans {args.spans} --rounds {args.rounds}")


if __name__ == "__main__":
    main()
