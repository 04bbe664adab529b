"""Dashboard sign-in: the gate every page runs behind, and who is signed in.

Modes (`--dashboard-auth`, passed by `spanlake dashboard` / `spanlake up` after `--`, else
$SPANLAKE_DASHBOARD_AUTH, else auto):

- password: a sign-in form checked against `<data_dir>/users.json` (storage.users), with
  back-off on repeated failures kept in `<data_dir>/signin.json` (storage.signin: durable, so
  neither a client's clear-cache message nor a restart resets it); the session remembers the
  user until **Sign out**, the tab closes, or the user's password, role or projects change;
- proxy: an authenticating reverse proxy names the user in a header (`X-Forwarded-User`
  by default), which must be a user of users.json. Only honoured in this mode;
- off: no sign-in (loopback only); `current_user()` is None;
- auto: off when Streamlit listens on a loopback address, else password.

Pages ask `current_user()` (None when sign-in is off) for the name, role and projects.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import streamlit as st

from spanlake.dashboard.settings import arg, default_data_dir
from spanlake.storage.signin import (
    DEFAULT_PROXY_HEADER,
    NO_USERS_HINT,
    SignIn,
    SignInRefused,
    resolve_mode,
    signin_path,
)
from spanlake.storage.users import PERMISSIONS, Permission, Role, User, users_path

AUTH_ENV = "SPANLAKE_DASHBOARD_AUTH"
HEADER_ENV = "SPANLAKE_DASHBOARD_AUTH_HEADER"
SESSION_KEY = "_auth_user"  # (name, fingerprint) of the signed-in user


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in: their name, role and projects (`*`: every project)."""

    name: str
    role: Role
    projects: tuple[str, ...]
    via: str  # "password" or "proxy"

    @classmethod
    def of(cls, user: User, via: str) -> SignedIn:
        return cls(user.name, user.role, user.projects, via)

    @property
    def all_projects(self) -> bool:
        return "*" in self.projects

    @property
    def can_label(self) -> bool:
        return self.can("label")

    def can(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]

    def may_see(self, project: str | None) -> bool:
        return self.all_projects or (project is not None and project in self.projects)


def header_name() -> str:
    return arg("--dashboard-auth-header") or os.environ.get(HEADER_ENV) or DEFAULT_PROXY_HEADER


def mode() -> str:
    """The sign-in mode of this dashboard: password, proxy or off (auto resolved)."""
    wanted = arg("--dashboard-auth") or os.environ.get(AUTH_ENV) or "auto"
    host = st.get_option("server.address")
    if wanted == "off":  # the CLI refuses it off loopback; an explicit `streamlit run` is trusted
        return "off"
    try:
        return resolve_mode(wanted, host, header_name())
    except ValueError:
        return "password"  # a bad value: the safe mode


# One SignIn per users and lockout file for the process, deliberately not st.cache_resource: any visitor's
# websocket can clear Streamlit's caches. The failure counts live in the lockout file anyway
# (storage.signin), so this only saves re-reading the users file.
_SIGNINS: dict[str, SignIn] = {}
_SIGNINS_LOCK = threading.Lock()


def signin() -> SignIn:
    """The SignIn (user directory + durable back-off) of the served data directory's users file."""
    data_dir = default_data_dir()
    users, lockouts = users_path(data_dir), signin_path(data_dir)
    key = f"{users}\n{lockouts}"
    with _SIGNINS_LOCK:
        if key not in _SIGNINS:
            _SIGNINS[key] = SignIn(users, lockouts=lockouts)
        return _SIGNINS[key]


def _client() -> str:
    try:
        ip = st.context.ip_address
    except Exception:  # no browser session (AppTest)
        return "local"
    return ip if isinstance(ip, str) and ip else "local"


def current_user() -> SignedIn | None:
    """The signed-in user; None when sign-in is off or nobody is signed in (gate() stops those runs)."""
    m = mode()
    if m == "off":
        return None
    users = signin().users
    if m == "proxy":
        name = (st.context.headers.get(header_name()) or "").strip()
        user = users.get(name) if name else None
        return SignedIn.of(user, "proxy") if user is not None else None
    held = st.session_state.get(SESSION_KEY)
    if not isinstance(held, tuple) or len(held) != 2:
        return None
    user = users.get(held[0])
    if user is None or user.fingerprint() != held[1]:  # removed, or password/role/projects changed
        return None
    return SignedIn.of(user, "password")


def may_see(project: str | None) -> bool:
    """Whether whoever uses this session may see `project` (always, with sign-in off)."""
    user = current_user()
    return user is None or user.may_see(project)


def gate() -> SignedIn | None:
    """Let the run through when signed in (or sign-in is off); else show the sign-in form and stop."""
    m = mode()
    if m == "off":
        return None
    user = current_user()
    if user is not None:
        return user
    if m == "proxy":
        _proxy_refusal()
    else:
        _signin_form()
    st.stop()
    return None  # not reached


def _proxy_refusal() -> None:
    name = (st.context.headers.get(header_name()) or "").strip()
    st.title("spanlake")
    if not name:
        st.error(
            f"This dashboard trusts a reverse proxy to sign you in, but the request has no {header_name()} header. "
            "Open it through the proxy."
        )
    else:
        st.error("The proxy signed you in as a user spanlake does not know.")
        st.text(f"User: {name}\nAsk an admin to add it: spanlake users add {name} --role viewer --project P")


def _signin_form() -> None:
    if st.session_state.pop(SESSION_KEY, None) is not None:
        st.info("Your session ended: your account changed or was removed. Sign in again.")
    st.title("Sign in to spanlake")
    with st.form("signin_form", clear_on_submit=True):
        name = st.text_input("User name", key="signin_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="signin_password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            user = signin().attempt(name, password, _client())
        except SignInRefused as e:
            st.error(str(e))
        else:
            st.session_state[SESSION_KEY] = (user.name, user.fingerprint())
            st.rerun()
    if not len(signin().users):
        st.info(f"No users yet. On the server, create the first admin with `{NO_USERS_HINT}`.")


def user_sidebar(user: SignedIn | None) -> None:
    """Who is signed in, and a Sign out button (password mode)."""
    if user is None:
        return
    st.sidebar.divider()
    st.sidebar.text(f"Signed in as {user.name} ({user.role})" + (" by the proxy" if user.via == "proxy" else ""))
    if user.via == "password" and st.sidebar.button("Sign out", key="auth_sign_out"):
        st.session_state.pop(SESSION_KEY, None)
        st.rerun()
