"""Turn closed write-ahead-log segments into Parquet files, then delete the segments.

Output file names derive from the segment name and a part number, and a segment is
always cut into parts at the same records, so replaying a segment after a crash replaces
the same files instead of adding copies: each acknowledged span lands exactly once.
When all its files are published, a marker `lake/_flushed/<segment>` says so (compaction
merges a segment's files only after that, whichever collector wrote them), and only then
is the segment deleted (and the deletion fsynced). A replayed segment whose marker exists
was published whole before the crash: it is deleted without writing anything again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path, PurePath

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from spanlake.collector.decode import Batch, decode_dataset_events, decode_labels, decode_logs, decode_spans
from spanlake.collector.decode_metrics import decode_metrics
from spanlake.collector.wal import (
    FAILED_SUFFIX,
    KIND_DATASETS,
    KIND_LABELS,
    KIND_LOGS,
    KIND_METRICS,
    KIND_TRACES,
    WriteAheadLog,
    read_segment,
    segment_instance,
)
from spanlake.storage.layout import DEFAULT_PROJECT, DataDir
from spanlake.storage.maintenance import exclusive, recover_interrupted
from spanlake.storage.objectstore import parquet_bytes
from spanlake.storage.schema import DATASET_EVENTS, LABELS, LOGS, METRICS, SPANS, TABLES, Table
from spanlake.storage.writer import LakeWriter, columns_to_table, fsync_dir

log = logging.getLogger(__name__)

PART_ROWS = 10_000  # rows per output file part: bounds each flush worker's memory
RETRY_DELAY_S = 2.0
MAX_RETRY_DELAY_S = 30.0
PARENT_POLL_S = 0.5  # how often a flush worker checks that its collector is still there


def _decode_logs(body: bytes, ingested_at_ns: int, project: str | None, default_project: str) -> Batch:
    return decode_logs(ExportLogsServiceRequest.FromString(body), ingested_at_ns, project, default_project)


# WAL record kind -> (lake table, decoder of the record body). A kind not listed here is an
# undecodable record: logged and counted, never silently dropped.
DECODERS: dict[int, tuple[Table, Callable[[bytes, int, str | None, str], Batch]]] = {
    KIND_TRACES: (SPANS, decode_spans),
    KIND_LOGS: (LOGS, _decode_logs),
    KIND_LABELS: (LABELS, decode_labels),
    KIND_DATASETS: (DATASET_EVENTS, decode_dataset_events),
    KIND_METRICS: (METRICS, decode_metrics),
}


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
    """Background thread: WAL segments → lake files.

    A disk error (OSError) is retried with backoff until it succeeds, the segment staying
    in the WAL meanwhile. Any other error is a bug that a retry cannot fix: the segment is
    renamed to `.failed` (kept, never deleted) so the rest of the log keeps flowing.
    """

    def __init__(
        self, wal: WriteAheadLog, writer: LakeWriter, default_project: str = DEFAULT_PROJECT, workers: int = 0
    ) -> None:
        """`workers` > 0 decodes and writes segments in that many worker processes (one
        segment each at a time); 0 does it in this process's flusher thread."""
        self.wal = wal
        self.writer = writer
        self.default_project = default_project
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self.segments_flushed = 0
        self.segments_failed = 0
        self.records_skipped = 0
        self.files_written = 0  # Parquet files published
        self.flush_seconds = 0.0  # time spent publishing the segments flushed (segments_flushed of them)
        self._outstanding = 0
        self._in_flight: set[Path] = set()  # submitted, not yet in the lake
        self._idle = threading.Condition()

    @property
    def alive(self) -> bool:
        """Whether every flusher thread is running and not shutting down."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads) and not self._closing.is_set()

    def submit(self, segment: Path) -> None:
        with self._idle:
            self._outstanding += 1
            self._in_flight.add(segment)
        self._queue.put(segment)

    def start(self) -> None:
        # A compaction killed between publishing its merged file and deleting the sources
        # leaves rows stored twice; finish it before anything else touches the lake.
        # (On object storage only the designated compactor does this, on its next run.)
        try:
            if not self.writer.data_dir.is_remote:
                with exclusive(self.writer.data_dir) as acquired:
                    if acquired:
                        recover_interrupted(self.writer.data_dir)
        except Exception:
            log.exception("could not finish an interrupted compaction; the next compaction will")
        if self.workers > 0:
            self._pool = self._new_pool()
            self._warm_up(self._pool)
        for i in range(max(1, self.workers)):
            t = threading.Thread(target=self._run, name=f"spanlake-flusher-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        """Flush everything submitted so far, then stop.

        A segment that still cannot be written (disk full) is left in the WAL for the next
        start instead of blocking shutdown.
        """
        self._closing.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        if self._pool is not None:
            self._pool.shutdown()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: forking a process that runs gRPC threads is unsafe.
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),))

    def _warm_up(self, pool: ProcessPoolExecutor) -> None:
        """Start every worker now, importing the decoder and Arrow, so the first segments
        do not wait for that (and a benchmark does not bill it to them). Not awaited."""
        for _ in range(self.workers):
            pool.submit(_worker_ready)

    def _restart_pool(self) -> None:
        with self._idle:
            old, self._pool = self._pool, self._new_pool()
            self._warm_up(self._pool)
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

    def wait_submitted(self, timeout: float | None = None) -> bool:
        """Wait until every segment submitted so far is in the lake (not those submitted
        meanwhile: under steady ingest the flusher is never idle)."""
        with self._idle:
            waiting = set(self._in_flight)
            return self._idle.wait_for(lambda: not waiting & self._in_flight, timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted segment is in the lake."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def _run(self) -> None:
        while True:
            segment = self._queue.get()
            if segment is None:
                return
            try:
                self._flush_with_retry(segment)
            finally:
                with self._idle:
                    self._outstanding -= 1
                    self._in_flight.discard(segment)
                    self._idle.notify_all()

    def _flush_with_retry(self, segment: Path) -> None:
        delay = RETRY_DELAY_S
        while True:
            try:
                self.flush_segment(segment)
                return
            except OSError as e:
                if self._closing.is_set():
                    log.error("flushing %s failed (%s); it stays in the WAL for the next start", segment.name, e)
                    return
                log.error("flushing %s failed (%s); retrying in %.0fs", segment.name, e, delay)
                self._closing.wait(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
            except Exception:
                log.exception("cannot flush %s; keeping it as %s for inspection", segment.name, FAILED_SUFFIX)
                self._quarantine(segment)
                return

    def _quarantine(self, segment: Path) -> None:
        try:
            size = segment.stat().st_size
            os.replace(segment, segment.with_suffix(FAILED_SUFFIX))
            fsync_dir(segment.parent)
        except OSError:
            log.exception("cannot rename %s", segment.name)
            return
        self.wal.segment_flushed(size)
        self.segments_failed += 1

    def flush_segment(self, segment: Path) -> None:
        """Publish one segment's records into the lake, then delete the segment.

        Idempotent: flushing the same segment again (after a crash) rewrites the same
        files. A segment already gone was flushed before, and is skipped. The decoding
        and writing run in a worker process when the flusher has a pool.
        """
        try:
            size = segment.stat().st_size
        except FileNotFoundError:
            log.warning("WAL segment %s is gone: already flushed", segment.name)
            return
        replay = segment_instance(segment) != self.wal.instance
        dd = self.writer.data_dir
        args = (str(segment), str(dd.root), self.default_project, replay, dd.lake_location)
        started = time.monotonic()
        if self._pool is None:
            skipped, files = publish_segment(*args)
        else:
            try:
                skipped, files = self._pool.submit(publish_segment, *args).result()
            except BrokenProcessPool:
                self._restart_pool()
                raise OSError(f"a flush worker died while writing {segment.name}") from None  # retried
        self.records_skipped += skipped
        os.unlink(segment)
        fsync_dir(segment.parent)
        self.wal.segment_flushed(size)
        self.segments_flushed += 1
        self.files_written += files
        self.flush_seconds += time.monotonic() - started


def exit_with_parent(parent: int) -> None:
    """A worker process's initializer: end the worker once the process that started it is gone.

    Used by the flush workers and by the API's query workers (server.query_workers). A pool's
    workers hold both ends of the pool's pipes themselves, so after a SIGKILL of the collector
    (or an OOM kill) they would wait on them for ever. A watcher thread checks the
    parent pid instead (portable; Linux's PR_SET_PDEATHSIG follows the spawning thread, not
    the process). Whatever segment a flush worker was writing stays in the WAL and is replayed.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="spanlake-parent-watch", daemon=True).start()


def _init_worker(parent: int) -> None:
    """A flush worker's initializer: exit with the collector, and load what a flush loads."""
    exit_with_parent(parent)
    _load_writer()


def _load_writer() -> None:
    """Load now what writing the first segment would: importing this module is not all of it.
    Arrow imports pandas the first time it builds a time-zone-aware timestamp column, and its
    compute functions and Parquet writer on first use (about 350 modules, 0.25 s of CPU per
    worker, that the first segment after a start would otherwise wait for). Building, sorting
    and encoding an empty table of each lake table loads them."""
    for table in TABLES.values():
        data = columns_to_table(table, {name: [] for name in table.names})
        parquet_bytes(data.sort_by([(table.order_by[0], "ascending")]))


def _worker_ready() -> bool:
    """A flush worker's first task: once it runs, the worker's initializer (its imports) is done."""
    return True


def publish_segment(
    segment_path: str, data_dir: str, default_project: str, replay: bool, lake: str | None = None
) -> tuple[int, int]:
    """Decode one WAL segment, write its rows into the lake and mark it flushed there;
    returns (records skipped, Parquet files written).

    A plain function of paths, so it can run in a worker process. On `replay` (a segment
    left by an earlier process) a segment already marked flushed is not written again, and
    files an earlier attempt wrote that this one does not are removed.
    """
    segment = Path(segment_path)
    writer = LakeWriter(DataDir(data_dir, lake))
    stem = segment.stem
    if replay and writer.is_flushed(stem):
        log.info("WAL segment %s was published before the restart; not writing it again", segment.name)
        return 0, 0
    with _gc_paused():
        return _publish(segment, writer, default_project, replay)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a segment is decoded.

    Decoding makes no reference cycles, only many short-lived containers that the collector
    would otherwise scan again and again (about a tenth of the worker's CPU). Anything cyclic
    made meanwhile is collected after the segment, as usual, once the collector is back on.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _publish(segment: Path, writer: LakeWriter, default_project: str, replay: bool) -> tuple[int, int]:
    stem = segment.stem
    written: set[PurePath] = set()
    pending: dict[str, Batch] = {}  # table name -> rows not yet written
    rows = dict.fromkeys(TABLES, 0)
    parts = dict.fromkeys(TABLES, 0)
    skipped = 0

    def write(table: Table) -> None:
        written.update(writer.write_batch(table, pending.pop(table.name), f"{stem}-{parts[table.name]:04d}"))
        rows[table.name] = 0
        parts[table.name] += 1

    for rec in read_segment(segment):
        try:
            table, decode = DECODERS[rec.kind]
            batch = decode(rec.body, rec.ingested_at_ns, rec.project, default_project)
        except Exception:
            # Validated before it was acknowledged, so this is a bug: keep the rest of the segment.
            skipped += 1
            log.exception("skipping an undecodable record (kind %s) in %s", rec.kind, segment.name)
            continue
        rows[table.name] += _merge(pending.setdefault(table.name, {}), batch)
        if rows[table.name] >= PART_ROWS:
            write(table)
    for name in list(pending):
        write(TABLES[name])
    if replay:
        # Files an earlier attempt wrote that this one did not exist only if decoding changed
        # between the two runs (an upgrade moved rows to another partition or part).
        for rel in writer.remove_strays(stem, written, list(TABLES.values())):
            log.warning("replay of %s: removed stale %s", stem, rel)
    writer.mark_flushed(stem)
    return skipped, len(written)
