"""The compare view of the Reports page, with Streamlit's AppTest against the seeded lake
(tests/analytics/traces/seed.py)."""

from __future__ import annotations

from collections.abc import Callable

from streamlit.testing.v1 import AppTest

from tests.dashboard.labelling_helpers import frame
from tests.dashboard.test_pages import elements


def test_compare_view(open_app: Callable[..., AppTest]) -> None:
    at = open_app("reports")
    at.selectbox(key="reports_name").set_value("compare").run()
    at.selectbox(key="reports_compare_by").set_value("model").run()
    assert at.selectbox(key="reports_compare_a_model").options == ["gpt-4o", "gpt-4o-mini"]
    assert not at.exception
    df = frame(at, "model")
    assert df["model"].to_list() == ["gpt-4o", "gpt-4o-mini", "b - a"]
    assert df["tasks"].to_list() == [1, 2, 1]
    assert df["success_rate"].to_list() == [0.0, 0.5, 0.5]
    assert df["validation_failure_rate"].to_list() == [1.0, 0.0, -1.0]
    assert any(e.type == "vega_lite_chart" for e in elements(at._tree))
    (dl,) = at.get("download_button")
    assert dl.proto.label == "Download CSV" and dl.proto.url.endswith(".csv")

    at.selectbox(key="reports_compare_by").set_value("prompt_version").run()  # none in the seed: typed values
    at.text_input(key="reports_compare_a_prompt_version").set_value("v1")
    at.text_input(key="reports_compare_b_prompt_version").set_value("v2").run()
    assert [i.value for i in at.info] == ["No tasks with prompt_version v1 or v2 in this window."]
