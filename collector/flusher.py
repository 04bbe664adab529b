"""Turn closed write-ahead-log segments into Parquet files, then delete the segments.

Output file names derive from the segment name and a part number, and a segment is
always cut into parts at the same records, so replaying a segment after a crash replaces
the same files instead of adding copies: each acknowledged span lands exactly once.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanlake.collector.decode import Batch, decode_logs, decode_spans
from spanlake.collector.wal import KIND_LOGS, KIND_TRACES, WriteAheadLog, read_segment
from spanlake.storage.layout import DEFAULT_PROJECT
from spanlake.storage.schema import LOGS, SPANS
from spanlake.storage.writer import LakeWriter, fsync_dir

log = logging.getLogger(__name__)

PART_ROWS = 50_000  # rows per output file part: bounds the flusher's memory
RETRY_DELAY_S = 2.0


def _merge(into: Batch, batch: Batch) -> int:
    n = 0
    for key, cols in batch.items():
        acc = into.get(key)
        if acc is None:
            into[key] = cols
        else:
            for name, values in cols.items():
                acc[name].extend(values)
        n += len(next(iter(cols.values())))
    return n


class Flusher:
    """Background thread: WAL segments → lake files."""

    def __init__(self, wal: WriteAheadLog, writer: LakeWriter, default_project: str = DEFAULT_PROJECT) -> None:
        self.wal = wal
        self.writer = writer
        self.default_project = default_project
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.segments_flushed = 0
        self.records_skipped = 0
        self._outstanding = 0
        self._idle = threading.Condition()

    def submit(self, segment: Path) -> None:
        with self._idle:
            self._outstanding += 1
        self._queue.put(segment)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spanlake-flusher", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Flush everything submitted so far, then stop."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted segment is in the lake."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def _run(self) -> None:
        while True:
            segment = self._queue.get()
            if segment is None:
                return
            while True:
                try:
                    self.flush_segment(segment)
                    break
                except OSError as e:
                    log.error("flushing %s failed (%s); retrying in %.0fs", segment.name, e, RETRY_DELAY_S)
                    time.sleep(RETRY_DELAY_S)
            with self._idle:
                self._outstanding -= 1
                self._idle.notify_all()

    def flush_segment(self, segment: Path) -> None:
        """Publish one segment's records into the lake, then delete the segment."""
        size = segment.stat().st_size
        stem = segment.stem
        spans: Batch = {}
        logs: Batch = {}
        span_rows = log_rows = 0
        span_part = log_part = 0
        for rec in read_segment(segment):
            try:
                if rec.kind == KIND_TRACES:
                    req: Any = ExportTraceServiceRequest.FromString(rec.body)
                    span_rows += _merge(spans, decode_spans(req, rec.ingested_at_ns, rec.project, self.default_project))
                elif rec.kind == KIND_LOGS:
                    req = ExportLogsServiceRequest.FromString(rec.body)
                    log_rows += _merge(logs, decode_logs(req, rec.ingested_at_ns, rec.project, self.default_project))
            except Exception:
                # Validated before it was acknowledged, so this is a bug: keep the rest of the segment.
                self.records_skipped += 1
                log.exception("skipping an undecodable record in %s", segment.name)
                continue
            if span_rows >= PART_ROWS:
                self.writer.write_batch(SPANS, spans, f"{stem}-{span_part:04d}")
                spans, span_rows, span_part = {}, 0, span_part + 1
            if log_rows >= PART_ROWS:
                self.writer.write_batch(LOGS, logs, f"{stem}-{log_part:04d}")
                logs, log_rows, log_part = {}, 0, log_part + 1
        if spans:
            self.writer.write_batch(SPANS, spans, f"{stem}-{span_part:04d}")
        if logs:
            self.writer.write_batch(LOGS, logs, f"{stem}-{log_part:04d}")
        os.unlink(segment)
        fsync_dir(segment.parent)
        self.wal.segment_flushed(size)
        self.segments_flushed += 1
