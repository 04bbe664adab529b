"""A link to the Traces page (an alert's: analytics.traces.links) opens exactly the traces it
names, in the order it asks for, with Streamlit's AppTest on a lake designed for it.

Project `links`, 2025-06-02 from 10:00 (T0); every trace is a task span (service shop-api)
with one LLM call under it. Only L1 and L2 match the link below; each other trace differs
from them in exactly one filter:

    trace  start     task       ms    provider   model         prompt       tenant  outcome  cost (USD)
    L1     T0        answer     1200  openai     gpt-4o-mini   support v2   acme    failure  0.004
    L2     T0+1m     answer     2500  openai     gpt-4o-mini   support v2   acme    failure  0.0002
    L3     T0+2m     answer     4000  anthropic  gpt-4o-mini   support v2   acme    failure
    L4     T0+3m     answer     3000  openai     gpt-4o-mini   support v1   acme    failure
    L5     T0+4m     answer     5000  openai     gpt-4o-mini   support v2   globex  failure
    L6     T0+5m     answer      800  openai     gpt-4o-mini   support v2   acme    success
    L7     T0+6m     summarize  6000  openai     gpt-4o-mini   support v2   acme    failure
    L8     T0+7m     answer     7000  openai     gpt-4o        support v2   acme    failure
    L9     T0+8m     answer     7500  openai     gpt-4o-mini   sales v2     acme    failure
    L10    T0+9m     answer     8000  openai     gpt-4o-mini   support v2   acme    failure  (service other)
    L11    T0+20m    answer     9000  openai     gpt-4o-mini   support v2   acme    failure  (after until)

gpt-4o-mini costs $1 / $2 per Mtok in / out: L1 2000 in / 1000 out = 0.004, L2 100 / 50 = 0.0002.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from spanlake.analytics.runner import Analytics
from spanlake.analytics.traces.filters import Page, TraceFilters
from spanlake.analytics.traces.links import link_params
from spanlake.analytics.traces.trace_list import list_traces
from spanlake.collector.decode import decode_spans
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from spanlake.storage.schema import SPANS
from spanlake.storage.writer import LakeWriter
from tests.dashboard.conftest import APP, TIMEOUT_S
from tests.factories import make_request, make_span

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
MS = 1_000_000
PRICES = '[[price]]\nmodel = "gpt-4o-mini"\ninput_mtok = 1.0\noutput_mtok = 2.0\n'
# name, minutes after T0, task, ms, provider, model, prompt name, version, tenant, outcome, tokens, service
TRACES = [
    (1, 0, "answer", 1200, "openai", "gpt-4o-mini", "support", "v2", "acme", "failure", (2000, 1000), "shop-api"),
    (2, 1, "answer", 2500, "openai", "gpt-4o-mini", "support", "v2", "acme", "failure", (100, 50), "shop-api"),
    (3, 2, "answer", 4000, "anthropic", "gpt-4o-mini", "support", "v2", "acme", "failure", (100, 50), "shop-api"),
    (4, 3, "answer", 3000, "openai", "gpt-4o-mini", "support", "v1", "acme", "failure", (100, 50), "shop-api"),
    (5, 4, "answer", 5000, "openai", "gpt-4o-mini", "support", "v2", "globex", "failure", (100, 50), "shop-api"),
    (6, 5, "answer", 800, "openai", "gpt-4o-mini", "support", "v2", "acme", "success", (100, 50), "shop-api"),
    (7, 6, "summarize", 6000, "openai", "gpt-4o-mini", "support", "v2", "acme", "failure", (100, 50), "shop-api"),
    (8, 7, "answer", 7000, "openai", "gpt-4o", "support", "v2", "acme", "failure", (100, 50), "shop-api"),
    (9, 8, "answer", 7500, "openai", "gpt-4o-mini", "sales", "v2", "acme", "failure", (100, 50), "shop-api"),
    (10, 9, "answer", 8000, "openai", "gpt-4o-mini", "support", "v2", "acme", "failure", (100, 50), "other"),
    (11, 20, "answer", 9000, "openai", "gpt-4o-mini", "support", "v2", "acme", "failure", (100, 50), "shop-api"),
]
LINK = TraceFilters(
    since=T0 - timedelta(minutes=5), until=T0 + timedelta(minutes=15), project="links", service="shop-api",
    model="gpt-4o-mini", outcome="failure", attributes={"tenant": "acme"}, task_name="answer",
    prompt_version="v2", provider="openai", prompt_name="support",
)  # fmt: skip


def _ns(t: datetime) -> int:
    return int(t.timestamp()) * 10**9


def write_links_lake(root: Path) -> None:
    dd = DataDir(root).create()
    writer = LakeWriter(dd)
    for n, minutes, task, ms, provider, model, prompt, version, tenant, outcome, (t_in, t_out), service in TRACES:
        tid, start = n.to_bytes(16, "big"), _ns(T0 + timedelta(minutes=minutes))
        task_attrs = {"spanlake.task.name": task, "spanlake.task.outcome": outcome, "tenant": tenant}
        llm = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.request.model": model,
               "gen_ai.usage.input_tokens": t_in, "gen_ai.usage.output_tokens": t_out,
               "gen_ai.prompt.name": prompt, "gen_ai.prompt.version": version}  # fmt: skip
        spans = [
            make_span(task, tid, (n * 10).to_bytes(8, "big"), b"", start, ms * MS, task_attrs),
            make_span(f"chat {model}", tid, (n * 10 + 1).to_bytes(8, "big"), (n * 10).to_bytes(8, "big"),
                      start + MS, (ms - 10) * MS, llm),
        ]  # fmt: skip
        rows = decode_spans(make_request(spans, {"service.name": service, "spanlake.project": "links"}), time.time_ns())
        writer.write_batch(SPANS, rows, uuid.uuid4().hex)
    (dd.root / "prices.toml").write_text(PRICES)


@pytest.fixture(scope="module")
def links_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("links") / "data"
    write_links_lake(root)
    return root


def url_params(sort: str) -> dict[str, Any]:
    """The link as AppTest takes query parameters (repeated keys as lists)."""
    pairs = link_params(LINK, sort)
    return {k: [v for kk, v in pairs if kk == k] for k, _ in pairs}


def open_link(links_dir: Path, monkeypatch: pytest.MonkeyPatch, **params: Any) -> AppTest:
    monkeypatch.setenv("SPANLAKE_DATA_DIR", str(links_dir))
    monkeypatch.setenv("SPANLAKE_DASHBOARD_AUTH", "off")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> list[str]:
    return [f"L{int(t, 16)}" for t in at.dataframe[0].value["trace_id"]]


def test_the_trace_list_applies_every_filter_of_the_link(links_dir: Path) -> None:
    an = Analytics(Lake(DataDir(links_dir)))
    rows = list_traces(an, LINK, Page(sort="duration_ms")).rows
    assert [f"L{int(t, 16)}" for t in rows["trace_id"]] == ["L2", "L1"]
    for name, value, extra in (("provider", "anthropic", "L3"), ("prompt_version", "v1", "L4"),
                               ("prompt_name", "sales", "L9"), ("model", "gpt-4o", "L8")):  # fmt: skip
        rows = list_traces(an, LINK.with_(**{name: value}), Page()).rows
        assert [f"L{int(t, 16)}" for t in rows["trace_id"]] == [extra], name


@pytest.mark.parametrize(
    ("sort", "order", "without_outcome"),
    [("duration", ["L2", "L1"], ["L2", "L1", "L6"]), ("cost", ["L1", "L2"], ["L1", "L6", "L2"])],  # L6 = L2 in cost
)
def test_a_link_opens_exactly_its_traces_in_its_order(
    links_dir: Path, monkeypatch: pytest.MonkeyPatch, sort: str, order: list[str], without_outcome: list[str]
) -> None:
    at = open_link(links_dir, monkeypatch, **url_params(sort))
    assert at.title[0].value == "Traces"
    assert at.sidebar.selectbox(key="global_project").value == "links"
    assert at.sidebar.selectbox(key="global_range").value.startswith("From the link: 2025-06-02 09:55:00 to")
    assert at.caption[0].value.startswith("2 traces")
    assert shown(at) == order
    frame = at.dataframe[0].value
    by_trace = dict(zip(shown(at), zip(frame["duration_ms"], frame["cost_usd"].round(6), strict=True), strict=True))
    assert by_trace == {"L1": (1200.0, 0.004), "L2": (2500.0, 0.0002)}
    assert at.selectbox(key="traces_provider").value == "openai"
    assert at.selectbox(key="traces_prompt_name").value == "support"
    assert at.text_area(key="traces_attrs").value == "tenant = acme"

    # the link set the filters once: the reader's own change sticks across reruns
    at.selectbox(key="traces_outcome").set_value("Any").run()
    assert shown(at) == without_outcome  # L6, the success the link left out, is back
    at.run()
    assert at.selectbox(key="traces_outcome").value == "Any" and shown(at) == without_outcome


def test_a_link_from_the_root_url_and_a_bad_parameter(links_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = url_params("duration") | {"outcome": "broken", "sort": "fastest"}
    at = open_link(links_dir, monkeypatch, **params)
    warnings = [w.value for w in at.warning]
    assert any("outcome 'broken'" in w for w in warnings) and any("sort 'fastest'" in w for w in warnings)
    # without the outcome filter and with the default sort (newest first), L6 (the success) is back
    assert shown(at) == ["L6", "L2", "L1"]
