"""Dashboard sign-in with AppTest (password mode): the form alone when signed out, precise errors,
each user sees only their projects, roles gate labelling, sign-out and ended sessions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from spanlake.storage.users import UserStore
from tests.analytics.traces.seed import trace_hex
from tests.dashboard.conftest import APP, DAY, TIMEOUT_S

Open = Callable[..., AppTest]
PASSWORDS = {"root": "s3cret-root", "vera": "s3cret-vera", "ana": "s3cret-ana"}


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    return UserStore(tmp_path / "users.json")


@pytest.fixture
def users(store: UserStore) -> UserStore:
    store.add("root", "admin", PASSWORDS["root"])
    store.add("vera", "viewer", PASSWORDS["vera"], ("other",))
    store.add("ana", "labeller", PASSWORDS["ana"], ("shop",))
    return store


@pytest.fixture
def app(seeded_dir: Path, store: UserStore, monkeypatch: pytest.MonkeyPatch) -> Callable[[], AppTest]:
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(seeded_dir))
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "password")
    monkeypatch.setenv("SPANLAKE_USERS_FILE", str(store.path))
    monkeypatch.setenv("SPANLAKE_SIGNIN_FILE", str(store.path.with_name("signin.json")))  # lockouts: this test's
    return lambda: AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="signin_name").input(name)
    at.text_input(key="signin_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def on_day(at: AppTest) -> AppTest:
    at.sidebar.selectbox(key="global_range").set_value("Custom").run()
    at.sidebar.date_input(key="global_from").set_value(DAY)
    at.sidebar.date_input(key="global_to").set_value(DAY).run()
    return at


def signed_out(at: AppTest) -> bool:
    """Only the sign-in form: its title, two inputs and a button; no sidebar, no data."""
    return (
        [t.value for t in at.title] == ["Sign in to spanlake"]
        and [w.key for w in at.text_input] == ["signin_name", "signin_password"]
        and not at.sidebar.children
        and not at.dataframe
        and not at.metric
    )


def test_signed_out_shows_only_the_form(app: Callable[[], AppTest], users: UserStore) -> None:
    at = app()
    assert signed_out(at)
    at.switch_page("app_pages/trace.py")
    at.query_params["trace"] = trace_hex(1)
    at.run()
    assert signed_out(at)  # a page's URL does not get around it


def test_wrong_password_is_refused_precisely(app: Callable[[], AppTest], users: UserStore) -> None:
    at = sign_in(app(), "vera", "not-her-password")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    assert signed_out(at)
    at = sign_in(at, "nobody", PASSWORDS["vera"])
    assert [e.value for e in at.error] == ["Wrong user name or password."]  # unknown names look the same
    for _ in range(4):  # the 5th failure for one name locks it
        sign_in(at, "vera", "still-wrong")
    assert at.error[0].value == "Wrong user name or password. Too many failures: try again in 30 s."
    at = sign_in(at, "vera", PASSWORDS["vera"])  # locked: the right password is refused too
    assert at.error[0].value == "Too many failed sign-ins for this user. Try again in 30 s."
    assert signed_out(at)


def test_viewer_sees_only_their_projects(app: Callable[[], AppTest], users: UserStore) -> None:
    at = on_day(sign_in(app(), "vera", PASSWORDS["vera"]))
    assert at.sidebar.selectbox(key="global_project").options == ["other"]
    assert at.sidebar.text[-1].value == "Signed in as vera (viewer)"
    assert not [w for w in at.sidebar.text_input if w.key == "global_data_dir"]  # no browsing other folders
    assert at.title[0].value == "Traces"
    assert at.caption[0].value.startswith("1 trace")
    assert set(at.dataframe[0].value["project"]) == {"other"}

    at.switch_page("app_pages/trace.py")
    at.query_params.update({"trace": trace_hex(1), "project": "shop"})  # a trace of another project
    at.run()
    assert at.warning and "No trace" in at.warning[0].value and not at.metric

    at.text_input(key="trace_input").input(trace_hex(9)).run()  # their own project's trace
    assert at.title[0].value == "other root"
    assert any("labelling needs the labeller or admin role" in i.value for i in at.info)


def test_labeller_and_admin(app: Callable[[], AppTest], users: UserStore) -> None:
    at = on_day(sign_in(app(), "ana", PASSWORDS["ana"]))
    assert at.sidebar.selectbox(key="global_project").options == ["shop"]
    assert at.caption[0].value.startswith("3 traces")
    at.switch_page("app_pages/trace.py")
    at.query_params.update({"trace": trace_hex(1), "project": "shop"})
    at.run()
    assert at.title[0].value == "answer"
    assert not any("labelling needs" in i.value for i in at.info)

    admin = on_day(sign_in(app(), "root", PASSWORDS["root"]))
    assert admin.sidebar.selectbox(key="global_project").options == ["All projects", "other", "shop"]
    assert admin.sidebar.text[-1].value == "Signed in as root (admin)"


def test_sign_out(app: Callable[[], AppTest], users: UserStore) -> None:
    at = sign_in(app(), "ana", PASSWORDS["ana"])
    assert at.title[0].value == "Traces"
    at.sidebar.button(key="auth_sign_out").click().run()
    assert signed_out(at) and not at.info  # signed out on purpose: no "session ended" note


def test_sessions_end_when_the_account_changes(app: Callable[[], AppTest], users: UserStore) -> None:
    at = sign_in(app(), "ana", PASSWORDS["ana"])
    users.set_password("ana", "an0ther-one")
    at.run()
    assert signed_out(at)
    assert "Your session ended" in at.info[0].value
    at = sign_in(at, "ana", "an0ther-one")
    assert at.title[0].value == "Traces"
    users.remove("ana")
    assert signed_out(at.run())


def test_no_users_says_how_to_create_the_first_admin(app: Callable[[], AppTest]) -> None:
    at = app()
    assert signed_out(at)
    assert "spanlake users add admin --role admin" in at.info[0].value
