"""spanlake dashboard entrypoint: `spanlake dashboard --data-dir DIR` (or
`SPANLAKE_DATA_DIR=DIR streamlit run dashboard/streamlit_app.py`).

Sign-in (dashboard/auth.py), navigation and the shared sidebar (data directory, project, time
range) live here; each page is a thin file in app_pages/ calling spanlake.dashboard.data.
"""

from pathlib import Path

import streamlit as st

from spanlake.dashboard.auth import gate, user_sidebar
from spanlake.dashboard.context import link_in_url, sidebar

PAGES_DIR = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="spanlake", page_icon=":material/timeline:", layout="wide")
user = gate()  # the sign-in form, and nothing else, until signed in (when sign-in is on)
TRACES = st.Page(PAGES_DIR / "traces.py", title="Traces", icon=":material/list:", url_path="traces")


def home() -> None:
    """The app's root URL opens the Traces page at its own address, /traces.

    (A default page answers only at `/`: were Traces the default, /traces would say "Page not found".)"""
    st.switch_page(TRACES, query_params={k: st.query_params.get_all(k) for k in st.query_params})  # repeats kept


page = st.navigation(
    [
        st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"),
        TRACES,
        st.Page(PAGES_DIR / "trace.py", title="Trace", icon=":material/account_tree:", url_path="trace"),
        st.Page(PAGES_DIR / "sessions.py", title="Sessions", icon=":material/forum:", url_path="sessions"),
        st.Page(PAGES_DIR / "overview.py", title="Overview", icon=":material/monitoring:", url_path="overview"),
        st.Page(PAGES_DIR / "reports.py", title="Reports", icon=":material/bar_chart:", url_path="reports"),
        st.Page(PAGES_DIR / "budgets.py", title="Budgets", icon=":material/notifications:", url_path="budgets"),
        st.Page(PAGES_DIR / "queue.py", title="Labelling queue", icon=":material/rule:", url_path="queue"),
        st.Page(PAGES_DIR / "datasets.py", title="Datasets", icon=":material/dataset:", url_path="datasets"),
        st.Page(PAGES_DIR / "experiments.py", title="Experiments", icon=":material/science:", url_path="experiments"),
        st.Page(PAGES_DIR / "evaluators.py", title="Evaluators", icon=":material/fact_check:", url_path="evaluators"),
    ]
)
sidebar(link_in_url() if page is TRACES else None)  # a link to the Traces page names its project and window
user_sidebar(user)
page.run()
