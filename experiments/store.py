"""Experiments on disk: one folder per experiment, its record and its per-item results.

    <data-dir>/experiments/<project>/<id>/experiment.json   the record (replaced atomically)
    <data-dir>/experiments/<project>/<id>/results.jsonl     one line per finished item, appended + fsynced
    <data-dir>/experiments/<project>/<id>/figures.json      per-item cost/duration/outcome from the lake
    <data-dir>/experiments/<project>/<id>/run.lock          flock held by the one process running it

`<project>` is the dataset's project. Ids sort by creation time (`exp-20261205-153012-ab12`).

Exactly once: a result line is written (and fsynced) only after its item finished and its spans
were handed to spanlake (experiments.run), by the one process holding `run.lock`, and a resumed
run skips every item that has a line. An item in flight when the process died has no line, so
it runs again, once. A line torn by a crash in the
middle of a write (no final newline) is ignored by readers and cut off before the next append.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from spanlake.storage.json_file import write_atomically
from spanlake.storage.layout import valid_project
from spanlake.storage.writer import fsync_dir, makedirs_durable

EXPERIMENTS_DIR = "experiments"
RECORD = "experiment.json"
RESULTS = "results.jsonl"
FIGURES = "figures.json"
LOCK = "run.lock"
ID_RE = re.compile(r"^exp-\d{8}-\d{6}-[0-9a-f]{4}$")
STATUSES = ("running", "finished", "failed")  # "interrupted": running, but no process holds the lock
MAX_LINE = 8 * 1024 * 1024  # a result line longer than this is refused (outputs are cut before)
MAX_OUTPUT_CHARS = 1_000_000


class ExperimentError(Exception):
    """A clear, user-facing problem with an experiment (unknown id, busy, damaged file)."""


class NoSuchExperiment(ExperimentError):
    """No experiment has this id (in the project asked about)."""


def new_id(now: datetime | None = None) -> str:
    """`exp-YYYYMMDD-HHMMSS-xxxx` (UTC, 4 random hex digits): sorts by creation time."""
    now = now or datetime.now(UTC)
    return f"exp-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def check_id(experiment_id: str) -> str:
    if not ID_RE.match(experiment_id):
        raise ExperimentError(f"{experiment_id!r} is not an experiment id (like exp-20261205-153012-ab12)")
    return experiment_id


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_NAIVE_UTC | orjson.OPT_SORT_KEYS, default=str)


@dataclass
class Experiment:
    """An experiment's record (experiment.json) and where it lives."""

    folder: Path
    record: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def project(self) -> str:
        return str(self.record["project"])

    @property
    def results_path(self) -> Path:
        return self.folder / RESULTS

    @property
    def status(self) -> str:
        """running, interrupted (running, but its process is gone), finished or failed."""
        status = str(self.record.get("status", "running"))
        if status == "running" and not _pid_alive(self.record.get("pid")):
            return "interrupted"
        return status

    def results(self) -> dict[str, dict[str, Any]]:
        """Finished items by item id, in the order they finished (the first line of an id wins)."""
        return read_results(self.results_path)

    def figures(self) -> dict[str, dict[str, Any]]:
        """Per-item figures from the lake (cost_usd, duration_ms, outcome, ...), by item id."""
        raw = _read(self.folder / FIGURES)
        return {} if raw is None else dict(orjson.loads(raw).get("items", {}))

    def figures_info(self) -> dict[str, Any]:
        raw = _read(self.folder / FIGURES)
        return {} if raw is None else {k: v for k, v in orjson.loads(raw).items() if k != "items"}


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """Parse results.jsonl: complete lines only (a torn last line is skipped)."""
    out: dict[str, dict[str, Any]] = {}
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; iterating lines keeps memory bounded
    except FileNotFoundError:
        return out
    with f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break  # torn by a crash mid-write: the item runs again on resume
            if len(line) > MAX_LINE:
                raise ExperimentError(f"{path}:{number}: result line longer than {MAX_LINE} bytes")
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise ExperimentError(f"{path}:{number}: damaged result line ({e})") from None
            if not isinstance(row, dict) or not isinstance(row.get("item_id"), str):
                raise ExperimentError(f"{path}:{number}: a result line without an item_id")
            out.setdefault(row["item_id"], row)
    return out


class Store:
    """The experiments of one data directory."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir).expanduser().resolve() / EXPERIMENTS_DIR

    def folder(self, project: str, experiment_id: str) -> Path:
        if not valid_project(project):
            raise ExperimentError(f"invalid project name {project!r}")
        return self.root / project / check_id(experiment_id)

    def create(self, project: str, record: Mapping[str, Any], now: datetime | None = None) -> Experiment:
        """A new experiment (status running, this process's pid) with a fresh id."""
        now = now or datetime.now(UTC)
        for _ in range(20):
            experiment_id = new_id(now)
            folder = self.folder(project, experiment_id)
            makedirs_durable(folder.parent)
            try:
                folder.mkdir()
            except FileExistsError:
                continue  # same second, same random suffix: draw again
            fsync_dir(folder.parent)
            full = dict(record) | {
                "id": experiment_id,
                "project": project,
                "created_at": now.isoformat(),
                "status": "running",
                "pid": os.getpid(),
            }
            exp = Experiment(folder, full)
            self.save(exp)
            return exp
        raise ExperimentError("could not pick a free experiment id")  # pragma: no cover - 20 collisions

    def save(self, exp: Experiment) -> None:
        write_atomically(exp.folder / RECORD, _json(exp.record), mode=0o644)

    def update(self, exp: Experiment, **changes: Any) -> None:
        exp.record.update(changes)
        self.save(exp)

    def get(self, experiment_id: str, project: str | None = None) -> Experiment:
        """The experiment with this id (in `project`, or in whichever project holds it)."""
        check_id(experiment_id)
        if project is not None:
            candidates = [self.folder(project, experiment_id)]
        else:
            candidates = sorted(self.root.glob(f"*/{experiment_id}")) if self.root.is_dir() else []
        for folder in candidates:
            raw = _read(folder / RECORD)
            if raw is not None:
                try:
                    return Experiment(folder, orjson.loads(raw))
                except orjson.JSONDecodeError as e:
                    raise ExperimentError(f"{folder / RECORD}: damaged ({e})") from None
        where = f"project {project!r}" if project else str(self.root)
        raise NoSuchExperiment(f"no experiment {experiment_id} in {where} (`spanlake experiment list` shows them)")

    def list(self, project: str | None = None) -> list[Experiment]:
        """Every experiment (of `project`), newest first."""
        if not self.root.is_dir():
            return []
        pattern = f"{project}/exp-*" if project else "*/exp-*"
        out = []
        for folder in self.root.glob(pattern):
            raw = _read(folder / RECORD)
            if raw is None or not ID_RE.match(folder.name):
                continue
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(Experiment(folder, orjson.loads(raw)))
        return sorted(out, key=lambda e: e.id, reverse=True)

    def write_figures(self, exp: Experiment, items: Mapping[str, Mapping[str, Any]], **info: Any) -> None:
        """Replace the per-item lake figures (atomically)."""
        write_atomically(exp.folder / FIGURES, _json(info | {"items": dict(items)}), mode=0o644)

    @contextlib.contextmanager
    def running(self, exp: Experiment) -> Iterator[ResultWriter]:
        """Hold the experiment's run lock (ExperimentError if another process holds it) and
        yield the writer of its results."""
        fd = os.open(exp.folder / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = exp.record.get("pid")
                raise ExperimentError(f"experiment {exp.id} is being run by another process (pid {pid})") from None
            writer = ResultWriter(exp.results_path)
            try:
                yield writer
            finally:
                writer.close()
        finally:
            os.close(fd)  # releases the lock


class ResultWriter:
    """Appends result lines, fsynced before `append` returns. Opening it cuts off a torn last
    line left by a crash, so the next line starts on a line of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        existed = path.exists()
        self._f = open(path, "ab")  # noqa: SIM115 - a long-lived handle, closed by close()
        if existed:
            _cut_torn_tail(self._f)
        else:
            fsync_dir(path.parent)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write `rows`, one line each, and fsync once (safe to call from several threads)."""
        lines = []
        for row in rows:
            line = _json(dict(row)) + b"\n"
            if len(line) > MAX_LINE:
                raise ExperimentError(f"result of item {row.get('item_id')!r} is larger than {MAX_LINE} bytes")
            lines.append(line)
        with self._lock:
            self._f.write(b"".join(lines))
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def _cut_torn_tail(f: Any) -> None:
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        return
    with open(f.name, "rb") as r:
        r.seek(max(0, size - MAX_LINE - 1))
        tail = r.read()
    if tail.endswith(b"\n"):
        return
    keep = size - len(tail) + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
    os.ftruncate(f.fileno(), keep)
    os.fsync(f.fileno())


def cut_output(text: str | None) -> str | None:
    """Outputs are stored up to MAX_OUTPUT_CHARS (longer ones are cut, with a marker)."""
    if text is None or len(text) <= MAX_OUTPUT_CHARS:
        return text
    return text[:MAX_OUTPUT_CHARS] + f"… [cut: {len(text)} characters]"
