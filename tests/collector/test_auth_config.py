"""Auth modes and the loopback rule; `spanlake keys` and what `spanlake up` says at start."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.collector.config import CollectorConfig
from spanlake.storage.keys import KeyRing, hash_token, keys_path
from tests.examples.helpers import ROOT, clean_env


@pytest.mark.parametrize(
    ("host", "auth", "enabled"),
    [("127.0.0.1", "auto", False), ("::1", "auto", False), ("localhost", "off", False),
     ("0.0.0.0", "auto", True), ("10.1.2.3", "on", True), ("127.0.0.1", "on", True)],
)  # fmt: skip
def test_auth_modes(host: str, auth: str, enabled: bool) -> None:
    assert CollectorConfig(host=host, auth=auth).validate().auth_enabled is enabled  # type: ignore[arg-type]


def test_auth_off_is_refused_off_loopback() -> None:
    with pytest.raises(ValueError, match="not a loopback address") as e:
        CollectorConfig(host="0.0.0.0", auth="off").validate()
    assert "--auth on" in str(e.value) and "spanlake keys create" in str(e.value)
    r = CliRunner().invoke(cli, ["up", "--host", "0.0.0.0", "--auth", "off", "--grpc-port", "0", "--http-port", "0"])
    assert r.exit_code != 0 and "not a loopback address" in r.output


def test_keys_cli_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    dd = ["--data-dir", str(tmp_path)]
    made = runner.invoke(cli, ["keys", "create", *dd, "--project", "shop", "--scope", "write", "--name", "ci"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("slk_") and len(token) > 40
    key = KeyRing(keys_path(tmp_path)).lookup(token)
    assert key is not None and (key.project, key.scope, key.name) == ("shop", "write", "ci")
    assert token not in keys_path(tmp_path).read_text() and hash_token(token) in keys_path(tmp_path).read_text()

    listed = runner.invoke(cli, ["keys", "list", *dd])
    assert key.id in listed.output and "shop" in listed.output and token not in listed.output
    assert runner.invoke(cli, ["keys", "revoke", *dd, key.id]).exit_code == 0
    assert key.id not in runner.invoke(cli, ["keys", "list", *dd]).output
    assert key.id in runner.invoke(cli, ["keys", "list", *dd, "--all"]).output
    assert KeyRing(keys_path(tmp_path)).lookup(token).active is False  # type: ignore[union-attr]
    assert runner.invoke(cli, ["keys", "revoke", *dd, "nope"]).exit_code != 0
    bad = runner.invoke(cli, ["keys", "create", *dd, "--project", "../etc", "--scope", "read"])
    assert bad.exit_code != 0 and "invalid project" in bad.output


def banner(data_dir: Path, *args: str) -> str:
    """Start `spanlake up`, return what it printed up to "Press Ctrl+C", stop it."""
    out = data_dir.parent / f"up-{time.monotonic_ns()}.out"
    cmd = [sys.executable, "-m", "spanlake.cli.main", "up", "--data-dir", str(data_dir), "--grpc-port", "0",
           "--http-port", "0", "--no-dashboard", *args]  # fmt: skip
    with open(out, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=clean_env(SPANLAKE_NO_DEMO="1"), stdout=f, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while "Press Ctrl+C" not in out.read_text() and proc.poll() is None:
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    return out.read_text()


def test_up_says_whether_auth_is_on(tmp_path: Path) -> None:
    assert "authentication is off: listening on loopback only" in banner(tmp_path / "a")
    text = banner(tmp_path / "b", "--auth", "on")
    assert "authentication is on: 0 active key(s)" in text and "spanlake keys create" in text
    text = banner(tmp_path / "c", "--host", "0.0.0.0")  # auto: on, since not loopback
    assert "authentication is on" in text and "127.0.0.1 only" not in text  # the dashboard has sign-in
