"""The users file: scrypt hashes with their parameters, roles, projects, and the reader's reloads."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest

from spanlake.storage import users as u
from spanlake.storage.users import UserDirectory, UserStore, hash_password, needs_rehash, verify_password


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def test_hash_format_carries_its_parameters() -> None:
    stored = hash_password("correct horse")
    alg, params, salt, digest = stored.split("$")
    assert (alg, params) == ("scrypt", "n=16384,r=8,p=1")
    assert len(_unb64(salt)) == 16 and len(_unb64(digest)) == 32
    expected = hashlib.scrypt(b"correct horse", salt=_unb64(salt), n=2**14, r=8, p=1, dklen=32)
    assert _unb64(digest) == expected
    assert hash_password("correct horse") != stored  # a fresh salt each time
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)


def test_older_parameters_still_verify_and_ask_for_a_rehash() -> None:
    weak = hash_password("pa55word!", n=2**10, r=8, p=1)
    assert weak.split("$")[1] == "n=1024,r=8,p=1"
    assert verify_password("pa55word!", weak)
    assert needs_rehash(weak)
    assert not needs_rehash(hash_password("pa55word!"))


@pytest.mark.parametrize("stored", ["", "sha256$x$y", "scrypt$n=16384$AAAA$AAAA", "scrypt$n=x,r=8,p=1$A$A", "junk"])
def test_bad_hashes_never_verify(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_store_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    store = UserStore(path)
    admin = store.add("admin", "admin", "s3cret-admin")
    viewer = store.add("vera", "viewer", "s3cret-vera", ("shop", "bank", "shop"))
    assert admin.projects == ("*",) and admin.all_projects and admin.can("manage_users")
    assert viewer.projects == ("shop", "bank")
    assert viewer.may_see("shop") and not viewer.may_see("other") and not viewer.may_see(None)
    assert viewer.can("read") and not viewer.can("label")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "s3cret" not in path.read_text()
    assert [x.name for x in store.load()] == ["admin", "vera"]

    directory = UserDirectory(path)
    assert directory.verify("vera", "s3cret-vera") == viewer
    assert directory.verify("vera", "wrong-password") is None
    assert directory.verify("nobody", "s3cret-vera") is None
    before = viewer.fingerprint()
    store.set_password("vera", "n3w-password")
    assert directory.verify("vera", "s3cret-vera") is None  # reloaded by itself
    changed = directory.verify("vera", "n3w-password")
    assert changed is not None and changed.fingerprint() != before
    store.remove("vera")
    assert directory.get("vera") is None and len(directory) == 1


def test_store_refuses_bad_input(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    store.add("ana", "labeller", "long-enough", ("shop",))
    with pytest.raises(ValueError, match="exists"):
        store.add("ana", "viewer", "long-enough", ("shop",))
    with pytest.raises(ValueError, match="at least 8"):
        store.add("bob", "viewer", "short", ("shop",))
    with pytest.raises(ValueError, match="role"):
        store.add("bob", "owner", "long-enough", ("shop",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user name"):
        store.add("../bob", "viewer", "long-enough", ("shop",))
    with pytest.raises(ValueError, match="project"):
        store.add("bob", "viewer", "long-enough", ("../etc",))
    with pytest.raises(KeyError):
        store.remove("bob")
    with pytest.raises(KeyError):
        store.set_password("bob", "long-enough")


def test_users_without_password_cannot_sign_in_with_one(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    proxied = store.add("sso-user", "viewer", None, ("shop",))
    assert not proxied.has_password
    assert UserDirectory(store.path).verify("sso-user", "") is None
    assert UserDirectory(store.path).get("sso-user") == proxied


def test_a_broken_file_keeps_the_last_good_users(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    store.add("admin", "admin", "s3cret-admin")
    directory = UserDirectory(store.path)
    assert directory.get("admin") is not None
    store.path.write_text("{not json")
    assert directory.get("admin") is not None
    with pytest.raises(ValueError, match="not a spanlake users file"):
        store.load()


def test_users_file_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert u.users_path(tmp_path) == tmp_path.resolve() / "users.json"
    monkeypatch.setenv(u.USERS_ENV, str(tmp_path / "elsewhere.json"))
    assert u.users_path(tmp_path / "ignored") == tmp_path.resolve() / "elsewhere.json"
