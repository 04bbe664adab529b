"""Dashboard sign-in for real: `spanlake dashboard` on a free loopback port with password mode
forced, and in proxy mode, driven by Debian's Chromium through Playwright. Also what the
command says at start, and the modes it refuses."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from spanlake.storage.users import UserStore
from tests.dashboard.conftest import CHROMIUM
from tests.dashboard.test_browser import free_port
from tests.dashboard.test_cli import SPANLAKE, _line
from tests.examples.helpers import clean_env

playwright_api = pytest.importorskip("playwright.sync_api")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> UserStore:
    store = UserStore(tmp_path_factory.mktemp("signin") / "users.json")
    store.add("vera", "viewer", "s3cret-vera", ("other",))
    store.add("sso-ana", "labeller", None, ("shop",))  # proxy sign-in only
    return store


def serve(data_dir: Path, users_file: Path, *args: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start `spanlake dashboard` on a free loopback port; (process, URL, what it printed)."""
    env = clean_env(SPANLAKE_USERS_FILE=str(users_file), SPANLAKE_SIGNIN_FILE=str(users_file.with_name("signin.json")))
    cmd = [SPANLAKE, "dashboard", "--data-dir", str(data_dir), "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    said: list[str] = []
    try:
        while not said or "Press Ctrl+C" not in said[-1]:
            said.append(_line(proc, ""))
        first = next(x for x in said if x.startswith("spanlake dashboard:"))
    except BaseException:
        stop(proc)
        raise
    return proc, first.split()[2], "".join(said)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@needs_chromium
def test_password_sign_in_in_a_browser(seeded_dir: Path, users: UserStore, browser: object) -> None:
    proc, url, said = serve(seeded_dir, users.path, "--dashboard-auth", "password")
    try:
        assert url.startswith("http://127.0.0.1:")
        assert "dashboard sign-in: password (2 user(s)" in said
        page = browser.new_page(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
        page.goto(f"{url}/traces")
        page.get_by_text("Sign in to spanlake").wait_for(timeout=WAIT_MS)
        assert page.get_by_text("Traces", exact=True).count() == 0  # no navigation, no data

        page.get_by_role("textbox", name="User name").fill("vera")
        page.get_by_role("textbox", name="Password").fill("wrong-password")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Wrong user name or password.").wait_for(timeout=WAIT_MS)

        page.get_by_role("textbox", name="User name").fill("vera")
        page.get_by_role("textbox", name="Password").fill("s3cret-vera")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Signed in as vera (viewer)").wait_for(timeout=WAIT_MS)
        page.get_by_role("heading", name="Traces").wait_for(timeout=WAIT_MS)

        page.get_by_role("button", name="Sign out").click()
        page.get_by_text("Sign in to spanlake").wait_for(timeout=WAIT_MS)
        # Streamlit removes the signed-in page's elements when the rerun ends, which can be
        # after the sign-in form shows: wait for that, then none may be left.
        playwright_api.expect(page.get_by_text("Signed in as")).to_have_count(0, timeout=WAIT_MS)
        page.close()
    finally:
        stop(proc)


@needs_chromium
def test_proxy_sign_in_in_a_browser(seeded_dir: Path, users: UserStore, browser: object) -> None:
    mode = ["--dashboard-auth", "proxy", "--dashboard-auth-header", "X-Auth-User"]
    proc, url, said = serve(seeded_dir, users.path, *mode)
    try:
        assert "trusting the X-Auth-User header" in said
        proxied = browser.new_context(extra_http_headers={"X-Auth-User": "sso-ana"})  # type: ignore[attr-defined]
        page = proxied.new_page()
        page.goto(url)
        page.get_by_text("Signed in as sso-ana (labeller) by the proxy").wait_for(timeout=WAIT_MS)
        page.get_by_role("heading", name="Traces").wait_for(timeout=WAIT_MS)
        assert page.get_by_role("button", name="Sign out").count() == 0  # the proxy owns sign-in
        proxied.close()

        bare = browser.new_page()  # type: ignore[attr-defined]
        bare.goto(url)
        bare.get_by_text("the request has no X-Auth-User header").wait_for(timeout=WAIT_MS)
        bare.close()

        stranger = browser.new_context(extra_http_headers={"X-Auth-User": "mallory"})  # type: ignore[attr-defined]
        page = stranger.new_page()
        page.goto(url)
        page.get_by_text("a user spanlake does not know").wait_for(timeout=WAIT_MS)
        assert page.get_by_text("Signed in as").count() == 0
        stranger.close()
    finally:
        stop(proc)


def test_start_message_says_how_to_create_the_first_admin(tmp_path: Path) -> None:
    proc, _, said = serve(tmp_path, tmp_path / "users.json", "--dashboard-auth", "password")
    stop(proc)
    assert "no users yet: create the first admin with `spanlake users add admin --role admin`" in said
    proc, _, said = serve(tmp_path, tmp_path / "users.json")  # auto on loopback: off, and it says so
    stop(proc)
    assert "dashboard sign-in is off: listening on loopback only" in said


def test_sign_in_off_is_refused_off_loopback(tmp_path: Path) -> None:
    for cmd in (["dashboard", "--port", "0"], ["up", "--grpc-port", "0", "--http-port", "0", "--no-demo"]):
        out = subprocess.run(
            [SPANLAKE, *cmd, "--data-dir", str(tmp_path), "--host", "0.0.0.0", "--dashboard-auth", "off"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert out.returncode == 2 and "not a loopback address" in out.stderr, out.stderr


@pytest.mark.parametrize("mode", ["password", "auto"])
def test_up_says_how_its_dashboard_signs_in(tmp_path: Path, mode: str) -> None:
    port = str(free_port())
    cmd = [SPANLAKE, "up", "--data-dir", str(tmp_path), "--grpc-port", "0", "--http-port", "0", "--no-demo",
           "--dashboard-port", port, "--dashboard-auth", mode]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env())
    try:
        said = []
        while not said or "Press Ctrl+C" not in said[-1]:
            said.append(_line(proc, ""))
        text = "".join(said)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert f"dashboard  http://127.0.0.1:{port}" in text
    if mode == "password":
        assert "dashboard sign-in: password (0 user(s)" in text
        assert "no users yet: create the first admin with `spanlake users add admin --role admin`" in text
    else:
        assert "dashboard sign-in is off: listening on loopback only" in text
