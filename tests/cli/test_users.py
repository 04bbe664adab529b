"""`spanlake users add/list/passwd/remove/unlock` through click, on a temporary data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.storage.signin import SignIn, SignInRefused
from spanlake.storage.users import UserDirectory, users_path


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["users", *args], input=stdin)
    return r.exit_code, r.output


def test_users_round_trip(tmp_path: Path) -> None:
    dd = ["--data-dir", str(tmp_path)]
    code, out = run("list", *dd)
    assert code == 0 and "spanlake users add admin --role admin" in out

    code, out = run("add", "admin", "--role", "admin", *dd, stdin="s3cret-admin\ns3cret-admin\n")
    assert code == 0, out
    assert "Repeat the password" in out and "added admin 'admin' (every project)" in out
    projects = ["--project", "shop", "--project", "bank"]
    code, out = run("add", "vera", "--role", "viewer", *projects, "--password-stdin", *dd, stdin="s3cret-vera\n")
    assert code == 0, out
    code, out = run("add", "sso", "--role", "labeller", "--all-projects", "--no-password", *dd)
    assert code == 0, out

    code, out = run("list", *dd)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "PASSWORD", "CHANGED", "PROJECTS"]
    assert lines[1].split()[:3] == ["admin", "admin", "yes"] and lines[1].endswith("(all)")
    assert lines[2].split()[:3] == ["vera", "viewer", "yes"] and lines[2].endswith("shop, bank")
    assert lines[3].split()[:3] == ["sso", "labeller", "no"]

    directory = UserDirectory(users_path(tmp_path))
    assert directory.verify("vera", "s3cret-vera") is not None
    code, out = run("passwd", "vera", "--password-stdin", *dd, stdin="n3w-password\n")
    assert code == 0 and "changed the password of 'vera'" in out
    assert directory.verify("vera", "s3cret-vera") is None and directory.verify("vera", "n3w-password") is not None

    code, out = run("remove", "vera", *dd)
    assert code == 0 and "removed viewer 'vera'" in out
    assert directory.get("vera") is None


def test_users_add_refusals(tmp_path: Path) -> None:
    dd = ["--data-dir", str(tmp_path)]
    code, out = run("add", "vera", "--role", "viewer", "--password-stdin", *dd, stdin="s3cret-vera\n")
    assert code != 0 and "--project P" in out  # a viewer must be given projects
    mismatch = "one-password\nanother-one\none-password\none-password\n"
    code, out = run("add", "bob", "--role", "admin", *dd, stdin=mismatch)
    assert code == 0 and "do not match" in out  # asked again until both match
    code, out = run("add", "bob", "--role", "admin", "--password-stdin", *dd, stdin="s3cret-bob\n")
    assert code != 0 and "exists" in out
    code, out = run("add", "eve", "--role", "admin", "--password-stdin", *dd, stdin="short\n")
    assert code != 0 and "at least 8 characters" in out
    code, out = run("add", "eve", "--role", "owner", "--password-stdin", *dd, stdin="s3cret-eve\n")
    assert code != 0 and "owner" in out
    code, out = run("remove", "nobody", *dd)
    assert code != 0 and "no user 'nobody'" in out
    code, out = run("passwd", "nobody", "--password-stdin", *dd, stdin="s3cret-eve\n")
    assert code != 0 and "no user 'nobody'" in out


def test_users_unlock(tmp_path: Path) -> None:
    dd = ["--data-dir", str(tmp_path)]
    assert run("add", "admin", "--role", "admin", "--password-stdin", *dd, stdin="s3cret-admin\n")[0] == 0
    signin = SignIn(users_path(tmp_path))
    for _ in range(5):
        with pytest.raises(SignInRefused):
            signin.attempt("admin", "guess-guess", "10.1.1.1")
    with pytest.raises(SignInRefused, match="Too many failed sign-ins for this user"):
        signin.attempt("admin", "s3cret-admin", "10.1.1.1")
    code, out = run("unlock", "admin", *dd)
    assert code == 0 and f"unlocked 'admin': cleared 1 failure count(s) in {tmp_path / 'signin.json'}" in out
    assert signin.attempt("admin", "s3cret-admin", "10.1.1.1").name == "admin"
    code, out = run("unlock", "admin", "--client", "10.1.1.1", *dd)
    assert code == 0 and "and address 10.1.1.1: cleared 1" in out  # the address's own count (5 failures)
