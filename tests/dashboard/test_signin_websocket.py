"""The sign-in lockout attacked as the attacker did (issue 14): a raw websocket client speaking
Streamlit's protocol to a real `streamlit run` of the dashboard (password sign-in, free loopback
port), guessing `admin`'s password and sending Streamlit's clear_cache message between guesses.
The lockout holds, survives a restart of the dashboard, and `spanlake users unlock` clears it."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import ClientConnection, connect

from spanlake.storage.users import UserStore
from tests.dashboard.conftest import APP
from tests.dashboard.test_cli import SPANLAKE
from tests.examples.helpers import clean_env
from tests.net import free_port

PASSWORD = "s3cret-admin"
WRONG = "Wrong user name or password."
LOCKED = "Too many failed sign-ins for this user."
SIGNED_IN = "Signed in as admin (admin)"
WAIT_S = 60.0


class Dashboard:
    """`streamlit run dashboard/streamlit_app.py` with password sign-in on a free loopback port."""

    def __init__(self, data_dir: Path, users_file: Path) -> None:
        self.data_dir, self.users_file = data_dir, users_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(self.port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--", "--data-dir", str(self.data_dir), "--dashboard-auth", "password"]  # fmt: skip
        env = clean_env(SPANLAKE_USERS_FILE=str(self.users_file))
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            assert self.proc.poll() is None, "streamlit exited"
            assert time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client:
    """A browser's side of Streamlit's websocket, reduced to what signing in needs."""

    def __init__(self, port: int) -> None:
        self.ws: ClientConnection = connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"])  # type: ignore[list-item]
        self.widgets: dict[str, str] = {}  # label → widget id
        self.run()

    def send(self, msg: BackMsg) -> None:
        self.ws.send(msg.SerializeToString())

    def run(self, values: dict[str, str] | None = None, submit: bool = False) -> str:
        """Rerun the script with these widget values (by label); all the text the runs showed."""
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        for label, value in (values or {}).items():
            w = msg.rerun_script.widget_states.widgets.add()
            w.id, w.string_value = self.widgets[label], value
        if submit:
            w = msg.rerun_script.widget_states.widgets.add()
            w.id, w.trigger_value = self.widgets["Sign in"], True
        self.send(msg)
        return self._read_until_idle()

    def clear_cache(self) -> None:
        """What the attacker sent between guesses (Streamlit clears every cache of the server)."""
        msg = BackMsg()
        msg.clear_cache = True
        self.send(msg)

    def _read_until_idle(self) -> str:
        shown: list[str] = []
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            fwd = ForwardMsg()
            fwd.ParseFromString(self.ws.recv(timeout=WAIT_S))
            kind = fwd.WhichOneof("type")
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                el = fwd.delta.new_element
                widget = el.WhichOneof("type")
                if widget in ("text_input", "button"):
                    inner = getattr(el, widget)
                    self.widgets[inner.label] = inner.id
                shown.append(str(el))
            elif kind == "script_finished" and fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                return "\n".join(shown)
        raise AssertionError("the script did not finish")

    def guess(self, password: str) -> str:
        return self.run({"User name": "admin", "Password": password}, submit=True)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    store = UserStore(tmp_path / "users.json")
    store.add("admin", "admin", PASSWORD)
    d = Dashboard(tmp_path / "data", store.path)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def test_clear_cache_between_guesses_does_not_reset_the_lockout(dashboard: Dashboard) -> None:
    c = Client(dashboard.port)
    try:
        assert "Sign in to spanlake" in c.run() and {"User name", "Password", "Sign in"} <= set(c.widgets)
        answers = []
        for i in range(16):  # the probe: 16 guesses, a cache reset every 4
            if i and i % 4 == 0:
                c.clear_cache()
            answers.append(c.guess(f"guess-{i}"))
        assert all(WRONG in a for a in answers[:4]) and all(LOCKED not in a for a in answers[:4])
        assert WRONG in answers[4] and "Too many failures: try again in 30 s." in answers[4]
        assert all(LOCKED in a for a in answers[5:]), "a clear_cache message reset the lockout"
        c.clear_cache()
        shown = c.guess(PASSWORD)  # locked: even the right password is refused, unchecked
        assert LOCKED in shown and SIGNED_IN not in shown
    finally:
        c.close()

    dashboard.stop()  # a restart keeps the lockout
    dashboard.start()
    c = Client(dashboard.port)
    try:
        shown = c.guess(PASSWORD)
        assert LOCKED in shown and SIGNED_IN not in shown
        out = subprocess.run(
            [SPANLAKE, "users", "unlock", "admin", "--data-dir", str(dashboard.data_dir)],
            env=clean_env(SPANLAKE_USERS_FILE=str(dashboard.users_file)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0 and "unlocked 'admin': cleared 1" in out.stdout, out.stderr
        assert (dashboard.data_dir / "signin.json").exists()
        assert SIGNED_IN in c.guess(PASSWORD)
    finally:
        c.close()
