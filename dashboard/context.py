"""The sidebar every page shares: data directory, project and time range.

The entrypoint calls sidebar() before running the page; pages call current(). Times are
rounded to the minute so cached query results are reused between reruns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.filters import TraceFilters
from spanlake.analytics.traces.links import PARAMS, TraceLink, parse_link
from spanlake.dashboard import auth, data
from spanlake.dashboard.settings import default_data_dir

ALL_PROJECTS = "All projects"
RANGES = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All time": None,
    "Custom": None,
}
DEFAULT_RANGE = "Last 24 hours"
LINK_RANGE = "From the link"  # the window a link (an alert's) names: since/until in the URL


@dataclass(frozen=True)
class Context:
    """What the sidebar selected."""

    data_dir: str
    project: str | None
    since: datetime | None
    until: datetime | None
    label: str

    def trace_filters(self, **kw: object) -> TraceFilters:
        return TraceFilters(since=self.since, until=self.until, project=self.project, **kw)  # type: ignore[arg-type]

    def filters(self, **kw: object) -> Filters:
        return Filters(since=self.since, until=self.until, project=self.project, **kw)  # type: ignore[arg-type]


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


Window = tuple[datetime | None, datetime | None]


def window(label: str, now: datetime, start: date | None = None, end: date | None = None) -> Window:
    """(since, until) for a range label; `Custom` uses the two dates (end inclusive)."""
    if label == "Custom" and start is not None and end is not None:
        return datetime.combine(start, time(), UTC), datetime.combine(end, time(), UTC) + timedelta(days=1)
    span = RANGES.get(label)
    if span is None:
        return None, None
    until = _minute(now) + timedelta(minutes=1)
    return until - span, until


def link_in_url() -> TraceLink | None:
    """The trace list the page's URL names (analytics.traces.links), if it names one."""
    return parse_link({k: st.query_params.get_all(k) for k in st.query_params if k in PARAMS})


def link_key() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """What identifies the URL's link: its parameters (a link is applied once, so later choices stick)."""
    return tuple((k, tuple(st.query_params.get_all(k))) for k in PARAMS)


def _link_label(link: TraceLink | None) -> str | None:
    since, until = (link.filters.since, link.filters.until) if link is not None else (None, None)
    if since is None:
        return None
    end = f"{until:%Y-%m-%d %H:%M:%S}" if until is not None else "now"
    return f"{LINK_RANGE}: {since:%Y-%m-%d %H:%M:%S} to {end} UTC"


def _select(label: str, options: list[str], key: str, default: str) -> str:
    """A sidebar selectbox whose value may have been set by a link (then it takes no default)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]  # a choice that no longer exists (another link, a project gone)
    if key in st.session_state:
        return str(st.sidebar.selectbox(label, options, key=key))
    return str(st.sidebar.selectbox(label, options, index=options.index(default) if default in options else 0, key=key))


def sidebar(link: TraceLink | None = None) -> Context:
    """Render the shared filters and return what they select. A `link` (the Traces page's URL)
    sets the project and the window the first time it is seen."""
    st.sidebar.markdown("### spanlake")
    signed_in = auth.current_user()
    if auth.mode() == "off":
        data_dir = st.sidebar.text_input("Data directory", value=default_data_dir(), key="global_data_dir").strip()
    else:  # with sign-in, the served data directory only (no browsing the server's folders)
        data_dir = default_data_dir()
    choices = [ALL_PROJECTS, *data.projects(data_dir)]
    if signed_in is not None and not signed_in.all_projects:
        choices = sorted(signed_in.projects)  # never "All projects", which would read every project
    ranges = list(RANGES)
    link_label = _link_label(link)
    if link_label is not None:
        ranges.insert(0, link_label)
    if link is not None and st.session_state.get("_global_link") != link_key():
        st.session_state["_global_link"] = link_key()
        if link.filters.project in choices:
            st.session_state["global_project"] = link.filters.project
        if link_label is not None:
            st.session_state["global_range"] = link_label
    project = _select("Project", choices, "global_project", choices[0])
    label = _select("Time range", ranges, "global_range", DEFAULT_RANGE)
    start = end = None
    if label == "Custom":
        today = datetime.now(UTC).date()
        start = st.sidebar.date_input("From (UTC)", value=today - timedelta(days=7), key="global_from")
        end = st.sidebar.date_input("To (UTC, inclusive)", value=today, key="global_to")
    if label == link_label and link is not None:
        since, until = link.filters.since, link.filters.until or _minute(datetime.now(UTC)) + timedelta(minutes=1)
    else:
        since, until = window(label, datetime.now(UTC), start, end)
    if st.sidebar.button("Refresh", help="Forget cached results and query the lake again.", key="global_refresh"):
        data.clear()
    if not data.has_lake(data_dir):
        st.sidebar.warning("No lake in this data directory yet.")
    ctx = Context(data_dir, None if project == ALL_PROJECTS else project, since, until, label)
    st.session_state["_ctx"] = ctx
    reviewer_input()
    return ctx


def current() -> Context:
    """The context the sidebar set for this run."""
    ctx = st.session_state.get("_ctx")
    return ctx if isinstance(ctx, Context) else sidebar()


# --- who is labelling ---------------------------------------------------------------------------

LABEL_ROLES = ("labeller", "admin")
REVIEWER_KEY = "global_reviewer"


@dataclass(frozen=True)
class User:
    """Who uses the dashboard: a name, a role (viewer, labeller or admin) and whether it may label."""

    name: str
    role: str
    can_label: bool
    projects: tuple[str, ...] = ("*",)  # `*`: every project

    def may_see(self, project: str | None) -> bool:
        return "*" in self.projects or (project is not None and project in self.projects)


def current_user() -> User | None:
    """The signed-in user (dashboard.auth's `current_user()`), or None when the dashboard has
    no sign-in (sign-in off: loopback only)."""
    user = auth.current_user()
    if user is None:
        return None
    name, role = str(getattr(user, "name", "") or ""), str(getattr(user, "role", "") or "viewer")
    projects = tuple(getattr(user, "projects", None) or ("*",))
    return User(name, role, bool(getattr(user, "can_label", role in LABEL_ROLES)), projects)


def reviewer_input() -> None:
    """Without sign-in, reviewers type their name once in the sidebar (it becomes each label's author)."""
    if current_user() is None:
        st.sidebar.text_input(
            "Reviewer", key=REVIEWER_KEY, placeholder="your name, for labels", help="Recorded as the author of labels."
        )


def reviewer(project: str | None = None) -> tuple[str | None, str | None]:
    """(name to label `project` as, None) or (None, why this user cannot label it)."""
    user = current_user()
    if user is not None:
        if not user.can_label:
            return None, f"{user.name} is a {user.role}: labelling needs the labeller or admin role."
        if project is not None and not user.may_see(project):
            return None, f"{user.name} may not label project {project}."
        return user.name, None
    name = str(st.session_state.get(REVIEWER_KEY) or "").strip()
    if not name:
        return None, "Type your name under Reviewer in the sidebar to label."
    return name[:256], None
