"""Sign-in back-off, per user name and per client address, on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from spanlake.storage.signin import Backoff, BackoffPolicy, SignIn, SignInRefused, is_loopback, resolve_mode
from spanlake.storage.users import UserStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def signin(tmp_path: Path, clock: Clock) -> SignIn:
    store = UserStore(tmp_path / "users.json")
    store.add("vera", "viewer", "s3cret-vera", ("shop",))
    store.add("ana", "labeller", "s3cret-ana", ("shop",))
    return SignIn(store.path, clock=clock)


def refused(s: SignIn, name: str, password: str, client: str = "10.0.0.1") -> SignInRefused:
    with pytest.raises(SignInRefused) as e:
        s.attempt(name, password, client)
    return e.value


def test_backoff_doubles_and_caps(clock: Clock) -> None:
    b = Backoff(BackoffPolicy(lock_after=4, base_s=10, max_s=60, forget_s=600), clock)
    assert [b.failed("k") for _ in range(3)] == [0, 0, 0]
    assert b.retry_after("k") == 0
    assert b.failed("k") == 10 and b.retry_after("k") == 10
    clock.now += 4
    assert b.retry_after("k") == 6
    assert [b.failed("k") for _ in range(4)] == [20, 40, 60, 60]
    b.succeeded("k")
    assert b.retry_after("k") == 0 and b.failures("k") == 0


def test_backoff_forgets_after_a_quiet_while(clock: Clock) -> None:
    b = Backoff(BackoffPolicy(lock_after=3, base_s=10, max_s=60, forget_s=600), clock)
    b.failed("k")
    b.failed("k")
    clock.now += 599
    assert b.failures("k") == 2
    clock.now += 1
    assert b.failures("k") == 0
    assert b.failed("k") == 0  # counting starts again


def test_right_and_wrong_passwords(signin: SignIn) -> None:
    assert signin.attempt("vera", "s3cret-vera").name == "vera"
    assert str(refused(signin, "vera", "nope-nope")) == "Wrong user name or password."
    assert str(refused(signin, "nobody", "s3cret-vera")) == "Wrong user name or password."  # same message
    assert str(refused(signin, "", "")) == "Wrong user name or password."


def test_user_lock_out_timings(signin: SignIn, clock: Clock) -> None:
    for i in range(4):
        assert refused(signin, "vera", f"guess-{i}").retry_after == 0
    fifth = refused(signin, "vera", "guess-5")
    assert fifth.retry_after == 30 and str(fifth).endswith("Too many failures: try again in 30 s.")
    # Locked at this address: even the right password is refused, without being checked.
    locked = refused(signin, "vera", "s3cret-vera")
    assert str(locked) == "Too many failed sign-ins for this user. Try again in 30 s."
    clock.now += 29.5
    assert refused(signin, "vera", "s3cret-vera").retry_after == pytest.approx(0.5)
    assert signin.attempt("ana", "s3cret-ana", "10.0.0.1").name == "ana"  # other users are not affected
    clock.now += 0.5
    assert refused(signin, "vera", "guess-6").retry_after == 60  # doubles
    clock.now += 60
    assert refused(signin, "vera", "guess-7").retry_after == 120
    clock.now += 120
    assert signin.attempt("vera", "s3cret-vera", "10.0.0.1").name == "vera"
    assert refused(signin, "vera", "guess-8").retry_after == 0  # a success starts the count again


def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(signin: SignIn) -> None:
    for i in range(5):
        refused(signin, "vera", f"guess-{i}", client="10.6.6.6")
    assert str(refused(signin, "vera", "s3cret-vera", client="10.6.6.6")).startswith("Too many failed sign-ins")
    assert signin.attempt("vera", "s3cret-vera", "10.0.0.2").name == "vera"  # the real vera, elsewhere
    # Four guesses from each of many addresses lock nobody out, and vera still signs in.
    for c in range(5):
        for i in range(4):
            assert refused(signin, "vera", f"guess-{i}", client=f"10.7.7.{c}").retry_after == 0
    assert signin.attempt("vera", "s3cret-vera", "10.0.0.2").name == "vera"


def test_user_lock_out_caps_at_15_minutes(signin: SignIn, clock: Clock) -> None:
    waits = []
    for i in range(12):
        waits.append(refused(signin, "VERA" if i % 2 else "vera", f"guess-{i}").retry_after)  # names case-folded
        clock.now += waits[-1]
    assert waits == [0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900, 900]


def test_lockouts_survive_a_restart_and_unlock_clears_them(tmp_path: Path, signin: SignIn, clock: Clock) -> None:
    for i in range(5):
        refused(signin, "vera", f"guess-{i}")
    for i in range(20):
        refused(signin, f"user{i}", "guess", client="10.6.6.6")
    again = SignIn(signin.users.path, clock=clock)  # a new process: same files, nothing in memory
    assert str(refused(again, "vera", "s3cret-vera")) == "Too many failed sign-ins for this user. Try again in 30 s."
    assert refused(again, "vera", "s3cret-vera", client="10.6.6.6").retry_after == 60
    assert signin.lockouts.path == tmp_path / "signin.json"
    assert {(k, w) for k, w, _ in again.locked()} == {("user", "vera@10.0.0.1"), ("client", "10.6.6.6")}
    assert signin.unlock("VERA") == 1  # from another process: the first one sees it
    assert again.attempt("vera", "s3cret-vera", "10.0.0.1").name == "vera"
    assert signin.unlock("nobody", client="10.6.6.6") == 1
    assert again.attempt("vera", "s3cret-vera", "10.6.6.6").name == "vera"
    assert signin.lockouts.path.stat().st_mode & 0o077 == 0


def test_a_lockout_file_that_cannot_be_written_refuses_sign_in(tmp_path: Path, clock: Clock) -> None:
    store = UserStore(tmp_path / "users.json")
    store.add("vera", "viewer", "s3cret-vera", ("shop",))
    (tmp_path / "signin.json").mkdir()  # not a file: every write fails
    e = refused(SignIn(store.path, clock=clock), "vera", "guess")
    assert str(e).startswith("Sign-in is unavailable: cannot record it in")


def test_client_lock_out(signin: SignIn, clock: Clock) -> None:
    for i in range(19):
        assert refused(signin, f"user{i}", "guess", client="10.6.6.6").retry_after == 0
    last = refused(signin, "user19", "guess", client="10.6.6.6")
    assert last.retry_after == 60
    locked = refused(signin, "vera", "s3cret-vera", client="10.6.6.6")
    assert str(locked) == "Too many failed sign-ins from this address. Try again in 60 s."
    assert signin.attempt("vera", "s3cret-vera", client="10.7.7.7").name == "vera"  # other addresses are not
    clock.now += 60
    assert signin.attempt("vera", "s3cret-vera", client="10.6.6.6").name == "vera"
    # A success does not reset the address's count: the next failure locks it again, for longer.
    assert refused(signin, "x", "guess", client="10.6.6.6").retry_after == 120


def test_no_users_says_how_to_create_one(tmp_path: Path) -> None:
    e = refused(SignIn(tmp_path / "users.json"), "admin", "whatever1")
    assert "spanlake users add admin --role admin" in str(e)


@pytest.mark.parametrize(
    ("mode", "host", "resolved"),
    [("auto", "127.0.0.1", "off"), ("auto", "::1", "off"), ("auto", "localhost", "off"),
     ("auto", "0.0.0.0", "password"), ("auto", "10.1.2.3", "password"), ("auto", None, "password"),
     ("password", "127.0.0.1", "password"),
     ("proxy", "10.1.2.3", "proxy"), ("off", "127.0.0.2", "off")],
)  # fmt: skip
def test_modes(mode: str, host: str | None, resolved: str) -> None:
    assert resolve_mode(mode, host) == resolved


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.com", None])
def test_off_is_refused_off_loopback(host: str | None) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        resolve_mode("off", host)


def test_bad_mode_and_header() -> None:
    with pytest.raises(ValueError, match="must be one of"):
        resolve_mode("on", "127.0.0.1")
    with pytest.raises(ValueError, match="invalid header name"):
        resolve_mode("proxy", "127.0.0.1", "X-User: admin\r\n")
    assert not is_loopback("127.0.0.1.example.com") and is_loopback("[::1]")
