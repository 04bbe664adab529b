"""A real S3-compatible server for the object-storage tests: moto's server on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.net import free_port


@dataclass
class S3Server:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach this server through the AWS variables."""
        return {
            "AWS_ACCESS_KEY_ID": "spanlake-test",
            "AWS_SECRET_ACCESS_KEY": "spanlake-test",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def create_bucket(self) -> str:
        """A new empty bucket; returns its name."""
        import pyarrow.fs as pafs

        name = f"lake-{uuid.uuid4().hex[:12]}"
        host = self.endpoint.removeprefix("http://")
        fs = pafs.S3FileSystem(
            access_key="spanlake-test",
            secret_key="spanlake-test",
            region="us-east-1",
            endpoint_override=host,
            scheme="http",
            allow_bucket_creation=True,
        )
        fs.create_dir(name)
        return name


def moto_command() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    found = str(exe) if exe.exists() else shutil.which("moto_server")
    if found is None:
        pytest.skip("moto[server] is not installed (pip install 'moto[server]')")
    return [found]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """`moto_server` in its own process on a free loopback port, for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*moto_command(), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def s3_lake(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty lake URL on the S3 server; the AWS variables point this process (and its children) at it."""
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    return f"s3://{s3_server.create_bucket()}/lake"
