"""Where a lake's files live: a local folder or S3-compatible object storage.

Everything in the lake is addressed by a path relative to the lake root, with `/`
separators (`spans/project=a/date=2024-05-01/hour=13/<file>.parquet`). A `LakeStore` turns
those into files or objects, with one promise that the rest of spanlake relies on: a
published file is whole or absent.

- `LocalStore`: staging file, fsync, rename, fsync of the directory (storage.durable).
- `S3Store`: one PUT per object (a multipart upload above the part size, which S3 also
  publishes atomically on completion). The Parquet bytes are produced in memory before the
  upload starts, so a failure while encoding never publishes a partial object.

Lake URLs: a path or `file:///path` (local), or `s3://bucket/prefix`. S3 settings come from
the usual AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_PROFILE`, instance/pod roles) and an endpoint
override for S3-compatible stores (MinIO, Ceph, R2, moto): `AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL`, or `?endpoint_override=http://host:9000` on the URL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from spanlake.storage.durable import COMPRESSION, ROW_GROUP_SIZE, fsync_dir, makedirs_durable, write_parquet


@dataclass(frozen=True)
class FileEntry:
    """A file of the lake: path relative to the lake root, size, and modification time (epoch s)."""

    rel: str
    size: int
    mtime: float

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    @property
    def parent(self) -> str:
        return self.rel.rsplit("/", 1)[0] if "/" in self.rel else ""


def is_remote_url(url: str | Path | None) -> bool:
    return isinstance(url, str) and url.startswith("s3://")


def parquet_bytes(data: pa.Table) -> pa.Buffer:
    """Encode a table as Parquet in memory (spanlake's compression and row groups)."""
    sink = pa.BufferOutputStream()
    pq.write_table(data, sink, compression=COMPRESSION, row_group_size=ROW_GROUP_SIZE)
    return sink.getvalue()


class LakeStore:
    """Files of one lake by relative path. Subclasses: LocalStore, S3Store."""

    url: str
    local: bool
    filesystem: pafs.FileSystem
    base: str  # the lake root as a path of `filesystem`

    def full(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def publish(self, rel: str, data: pa.Table) -> None:
        """Write `data` as Parquet to `rel`, whole or not at all, replacing any earlier file."""
        raise NotImplementedError

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Write a small file (journal, marker, lease) whole."""
        raise NotImplementedError

    def delete(self, rels: Iterable[str]) -> None:
        """Delete files; missing ones are fine."""
        raise NotImplementedError

    def list_files(self, prefix: str, suffix: str = "") -> list[FileEntry]:
        """Every file under `prefix` (recursive) whose name ends with `suffix`, sorted by path."""
        sel = pafs.FileSelector(self.full(prefix), recursive=True, allow_not_found=True)
        out = []
        start = len(self.base) + 1
        for info in self.filesystem.get_file_info(sel):
            if info.type != pafs.FileType.File or not info.path.endswith(suffix):
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
            out.append(FileEntry(info.path[start:], info.size or 0, mtime))
        return sorted(out, key=lambda e: e.rel)

    def get_bytes(self, rel: str) -> bytes | None:
        try:
            with self.filesystem.open_input_stream(self.full(rel)) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def exists(self, rel: str) -> bool:
        return self.filesystem.get_file_info(self.full(rel)).type == pafs.FileType.File

    def read_parquet(self, rel: str) -> pa.Table:
        return pq.read_table(self.full(rel), filesystem=self.filesystem)


class LocalStore(LakeStore):
    """A lake in a local folder; writes are fsynced, renames published, directories fsynced."""

    local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self.filesystem = pafs.LocalFileSystem()
        self.base = str(root)

    @property
    def staging(self) -> Path:
        return self.root / "_staging"

    def path(self, rel: str) -> Path:
        return self.root / rel

    def publish(self, rel: str, data: pa.Table) -> None:
        write_parquet(data, self.path(rel), self.staging)

    def put_bytes(self, rel: str, data: bytes) -> None:
        dest = self.path(rel)
        makedirs_durable(dest.parent)
        tmp = dest.with_name(dest.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)

    def delete(self, rels: Iterable[str]) -> None:
        dirs = set()
        for rel in rels:
            p = self.path(rel)
            p.unlink(missing_ok=True)
            dirs.add(p.parent)
        for d in dirs:
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(d)

    def list_files(self, prefix: str, suffix: str = "") -> list[FileEntry]:
        root = self.path(prefix)
        if not root.is_dir():
            return []
        out = []
        for p in root.rglob(f"*{suffix}"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            if p.is_file():
                out.append(FileEntry(p.relative_to(self.root).as_posix(), st.st_size, st.st_mtime))
        return sorted(out, key=lambda e: e.rel)

    def exists(self, rel: str) -> bool:
        return self.path(rel).is_file()


class S3Store(LakeStore):
    """A lake under `s3://bucket/prefix` (any S3-compatible store)."""

    local = False

    def __init__(self, url: str, filesystem: pafs.FileSystem | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an S3 URL: {url!r} (use s3://bucket/prefix)")
        self.url = url.split("?", 1)[0].rstrip("/")
        self.base = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        self.filesystem = filesystem or s3_filesystem(parse_qs(parsed.query))

    def publish(self, rel: str, data: pa.Table) -> None:
        self.put_bytes(rel, parquet_bytes(data))

    def put_bytes(self, rel: str, data: bytes | pa.Buffer) -> None:
        with self.filesystem.open_output_stream(self.full(rel)) as out:
            out.write(data)

    def delete(self, rels: Iterable[str]) -> None:
        for rel in rels:
            with contextlib.suppress(FileNotFoundError):
                self.filesystem.delete_file(self.full(rel))


def s3_filesystem(query: dict[str, list[str]] | None = None) -> pafs.S3FileSystem:
    """An S3FileSystem from the AWS environment, with URL query parameters taking precedence."""
    q = {k: v[-1] for k, v in (query or {}).items()}
    endpoint = q.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = q.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    kwargs: dict[str, object] = {"allow_delayed_open": True}  # small objects: a single PUT
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        if host:
            kwargs["scheme"] = scheme
            endpoint = host
        kwargs["endpoint_override"] = endpoint.rstrip("/")
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


def open_store(lake: str | Path) -> LakeStore:
    """The store for a lake URL or local path."""
    if is_remote_url(lake):
        return S3Store(str(lake))
    text = str(lake)
    if text.startswith("file://"):
        text = urlparse(text).path
    return LocalStore(Path(text).expanduser().resolve())
