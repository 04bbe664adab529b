"""The trace view's span tree (AppTest) on the agent run of tests/dashboard/agent_trace.py: 300
spans, 25 turns; and its 2,011-span sibling. Every count below is worked out from the run's
layout in that module's docstring.

Turns by their place in the tool cycle have 3, 4, 19, 6 and 22 spans below them (a chat, then:
search_docs and its retrieval; get_order, its retrieval, get_customer; research with its
sub-agent of 18 spans; get_order, its retrieval, calculator, send_policy, send_email;
search_docs, its retrieval, get_customer, research's 18), and turn 9 one more (its failed
first chat).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboard.agent_trace import BIG_TRACE, FAILURE, TRACE, Built, agent_spans, write_agent_lake
from tests.dashboard.conftest import APP, TIMEOUT_S

Open = Callable[..., AppTest]
PER_TURN = [3, 4, 19, 6, 22] * 5
PER_TURN[8] += 1  # turn 9's failed attempt
TURNS = [f"turn {k}" for k in range(1, 26)]
TOP = ["support_agent", "invoke_agent support", *TURNS, "validation json_schema", "validation no_pii"]
CHEVRON, EXPANDED = ":material/chevron_right:", ":material/expand_more:"


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agent") / "data"
    write_agent_lake(root, big=True)
    return root


@pytest.fixture(scope="module")
def run() -> Built:
    return agent_spans()


@pytest.fixture
def open_trace(agent_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Open]:
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(agent_dir))
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "off")

    def open_(trace: bytes = TRACE) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
        at.query_params.update({"trace": trace.hex(), "project": "agents"})
        at.switch_page("app_pages/trace.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    yield open_


def grid(at: AppTest) -> Any:
    return next(d for d in at.dataframe if d.key and d.key.startswith("trace_tree_grid"))


def names(at: AppTest) -> list[str]:
    return [s.strip() for s in grid(at).value["span"]]


def shown(at: AppTest) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Showing"))


def select_row(at: AppTest, row: int) -> None:
    """Pick a row of the grid, as a click on its selection cell does."""
    at.session_state[grid(at).key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()


def detail(at: AppTest) -> str:
    """The selected span's name (the detail's heading, markdown-escaped)."""
    return next(h.value for h in at.subheader if h.value not in ("Timeline", "Labels", "Add to dataset"))


def test_an_agent_run_opens_one_row_per_turn(open_trace: Open) -> None:
    at = open_trace()
    assert shown(at) == "Showing 29 of 300 spans · 2 in error · 1 retry"
    assert names(at) == TOP
    frame = grid(at).value
    assert list(frame["open"].fillna("")) == [EXPANDED, EXPANDED, *(f"{CHEVRON} {n}" for n in PER_TURN), "", ""]
    assert sum(PER_TURN) + len(TOP) == 300
    assert at.segmented_control(key="trace_tree_depth").value == 2
    # as the collector normalized them: 25 + 1 + 10 x 6 calls; 50 tools and 50 web_search; 20 + 50
    # retrievals; the agent and 10 researchers; 25 turns; 5 + 2 validations (guardrail); the task
    assert at.pills(key="trace_tree_categories").options == ["llm 86", "retrieval 70", "tool 100", "agent 11",
                                                               "chain 25", "guardrail 7", "task 1"]  # fmt: skip
    flagged = {n: list(f) for n, f in zip(names(at), frame["flags"], strict=True) if len(f)}
    assert flagged == {"support_agent": ["error below"], "invoke_agent support": ["error below"],
                       "turn 9": ["error below"], "turn 14": ["error below"],
                       "validation json_schema": ["check passed"], "validation no_pii": ["check passed"]}  # fmt: skip
    # turn 3: its chat 2,400 in / 75 out (gpt-4o at $2.50 / $10 per Mtok), the researcher's six
    # gpt-4o-mini calls 600+650+700+750+800+900 in / 5 x 40 + 150 out ($0.15 / $0.60)
    row = names(at).index("turn 3")
    assert frame["tokens"][row] == "Σ 6,800 → 425"
    assert frame["cost"][row] == "Σ $0.00762"  # 0.006 + 0.00075 + 0.00066 + 0.00021
    m = {x.label: x.value for x in at.metric}
    assert (m["Spans"], m["LLM calls"], m["Errors"]) == ("300", "86", "2")  # 25 + 1 + 10 x 6 calls
    assert m["Tokens in / out"] == "204,000 / 5,185"  # 25 x 1,200 + 400 x 325 + 10 x 4,400 in
    assert m["Cost"] == "$0.426"  # 0.4 + 0.01685 + 0.0066 + 0.0021
    assert len(at.get("vega_lite_chart")) == 1  # the lanes


def test_closing_a_turn_hides_exactly_its_spans(open_trace: Open, run: Built) -> None:
    at = open_trace()
    at.segmented_control(key="trace_tree_depth").set_value("all").run()
    assert shown(at).startswith("Showing 300 of 300 spans")
    everything = names(at)
    turn3 = everything.index("turn 3")
    assert turn3 == 2 + 1 + 3 + 1 + 4  # root, agent, turn 1 and its 3, turn 2 and its 4
    select_row(at, turn3)
    assert detail(at) == "turn 3"
    button = at.button(key="trace_tree_toggle_selected")
    assert button.label == "Close the 19 spans below"
    button.click().run()
    assert shown(at).startswith("Showing 281 of 300 spans")
    assert run.descendants(run.turns[2]) == 19
    assert names(at) == everything[: turn3 + 1] + everything[turn3 + 1 + 19 :]
    assert grid(at).value["open"][turn3] == f"{CHEVRON} 19"
    at.button(key="trace_tree_toggle_selected").click().run()  # and open again
    assert names(at) == everything


def test_opening_to_a_depth(open_trace: Open) -> None:
    at = open_trace()
    counts = {}
    for depth in (0, 1, 3, 5, "all"):
        at.segmented_control(key="trace_tree_depth").set_value(depth).run()
        counts[depth] = len(names(at))
    # depth 3: + 26 chats, 50 tools, 5 send_policy checks; 5: + 20 + 10 at depth 4, 110 at 5
    assert counts == {0: 1, 1: 4, 3: 29 + 81, 5: 110 + 30 + 110, "all": 300}
    at.segmented_control(key="trace_tree_depth").set_value(2).run()
    select_row(at, names(at).index("turn 5"))
    at.button(key="trace_tree_toggle_selected").click().run()  # turn 5 open: its 4 children, closed
    assert names(at)[names(at).index("turn 5") + 1 : names(at).index("turn 6")] == [
        "chat gpt-4o", "execute_tool search_docs", "execute_tool get_customer", "execute_tool research"]  # fmt: skip
    at.segmented_control(key="trace_tree_depth").set_value(1).run()  # a depth forgets the hand-opened
    at.segmented_control(key="trace_tree_depth").set_value(2).run()
    assert names(at) == TOP


def test_category_filter_shows_the_tools_and_their_ancestors(open_trace: Open) -> None:
    at = open_trace()
    at.pills(key="trace_tree_categories").set_value(["tool"]).run()
    frame = grid(at).value
    tools = [n for n, c in zip(names(at), frame["category"], strict=True) if list(c) == ["tool"]]
    others = [n for n, c in zip(names(at), frame["category"], strict=True) if list(c) != ["tool"]]
    # 50 tools of the turns, 50 web_search of the researchers; ancestors: the task, the agent,
    # 25 turns and 10 researchers (the research tools are tools themselves)
    assert len(tools) == 100 and tools.count("execute_tool web_search") == 50
    assert others == ["support_agent", "invoke_agent support"] + [
        n for k in range(1, 26) for n in [f"turn {k}"] + ["invoke_agent researcher"] * ((k - 1) % 5 in (2, 4))
    ]
    assert shown(at).startswith("Showing 137 of 300 spans")
    assert set(frame["open"].dropna()) == set()  # no open/close while filtering


def test_search_and_problems_only(open_trace: Open) -> None:
    at = open_trace()
    at.text_input(key="trace_tree_search").set_value("web_search").run()
    # 50 web_search, and above them the task, the agent, 10 turns, 10 research tools, 10 researchers
    assert len(names(at)) == 82 and names(at).count("execute_tool web_search") == 50
    at.text_input(key="trace_tree_search").set_value("4411").run()  # the failing tool's status message
    assert names(at) == ["support_agent", "invoke_agent support", "turn 14", "execute_tool get_order"]
    at.text_input(key="trace_tree_search").set_value("").run()
    at.toggle(key="trace_tree_problems").set_value(True).run()
    assert names(at) == ["support_agent", "invoke_agent support", "turn 9", "chat gpt-4o", "chat gpt-4o", "turn 14",
                         "execute_tool get_order"]  # fmt: skip
    assert [list(f) for f in grid(at).value["flags"]][3:5] == [["error"], ["retry"]]
    # the refused attempt reported no tokens; the retry 1,200 + 400 x 9 in, 60 + 5 x (9 % 4) out
    assert list(grid(at).value["tokens"])[3:5] == ["", "4,800 → 65"]


def test_next_error_selects_the_failed_call_then_the_failing_tool(open_trace: Open, run: Built) -> None:
    at = open_trace()
    at.button(key="trace_tree_next_error").click().run()
    assert detail(at) == r"chat gpt\-4o"
    assert "Status message: 429 Too Many Requests" in [t.value for t in at.text]
    assert shown(at).startswith("Showing 35 of 300 spans")  # turn 9 opened: its 6 children
    at.button(key="trace_tree_next_error").click().run()
    assert detail(at) == r"execute\_tool get\_order"
    assert f"Status message: {FAILURE}" in [t.value for t in at.text]
    assert shown(at).startswith("Showing 40 of 300 spans")  # turn 14 opened too: its 5 children
    selected = at.session_state[grid(at).key]["selection"]["rows"]
    assert selected == [names(at).index("turn 14") + 2]  # after its chat
    assert grid(at).value["span"][selected[0]].strip() == "execute_tool get_order"
    path = next(c.value for c in at.caption if c.value.startswith(r"support\_agent"))
    assert path == r"support\_agent {0} invoke\_agent support {0} turn 14 {0}".format(chr(0x203A))
    assert run.spans[list(run.names).index(run.failing_tool)].status.message == FAILURE
    at.button(key="trace_tree_next_error").click().run()  # round again
    assert detail(at) == r"chat gpt\-4o"


def test_next_error_drops_a_filter_that_hides_it(open_trace: Open) -> None:
    at = open_trace()
    at.pills(key="trace_tree_categories").set_value(["retrieval"]).run()
    at.button(key="trace_tree_next_error").click().run()
    assert detail(at) == r"chat gpt\-4o"
    assert at.pills(key="trace_tree_categories").value == []
    assert shown(at).startswith("Showing 35 of 300 spans")


def test_a_2000_span_run_opens_to_its_turns(open_trace: Open) -> None:
    at = open_trace(BIG_TRACE)
    # 170 turns, under the task and the agent, and the two final validations
    assert shown(at) == "Showing 174 of 2,011 spans · 2 in error · 1 retry"
    download = at.get("download_button")
    assert [d.proto.label for d in download] == ["Download every span as JSON"]  # not megabytes of JSON
    assert [len(j.proto.body) < 10_000 for j in at.json] == [True]  # the selected span's attributes only
