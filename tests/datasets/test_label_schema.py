"""Label schema per project: stored as versioned files, enforced on POST /api/v1/labels."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from spanlake.cli.main import cli
from spanlake.storage.label_schema import DEFAULT_FAILURE_MODES, LabelSchema, LabelSchemas, SchemaConflict
from tests.conftest import RunningCollector, start_collector
from tests.datasets.helpers import PROJECT, api

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def post_label(collector: RunningCollector, **fields: object) -> tuple[int, str]:
    body = {"trace_id": TRACE, "source": "human", "author": "ana", "project": PROJECT} | fields
    r = api(collector, "POST", "/labels", body)
    return r.status_code, r.json().get("message", "")


def test_default_schema_refuses_unknown_failure_modes(collector: RunningCollector) -> None:
    r = api(collector, "GET", "/label-schema", project=PROJECT)
    assert r.json()["version"] == 0 and r.json()["failure_modes"] == list(DEFAULT_FAILURE_MODES)
    assert post_label(collector, verdict="fail", failure_mode="hallucination")[0] == 200
    status, message = post_label(collector, verdict="fail", failure_mode="unsafe_advice")
    assert status == 400 and "unsafe_advice" in message and "hallucination" in message
    # End-user feedback is not a reviewer label: the schema does not apply to it.
    r = api(collector, "POST", "/feedback", {"trace_id": TRACE, "score": 99, "project": PROJECT})
    assert r.status_code == 200


def test_extend_range_and_required_fields(collector: RunningCollector) -> None:
    r = api(
        collector, "POST", "/label-schema/failure-modes", {"add": ["unsafe_advice"], "author": "lead"}, project=PROJECT
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["failure_modes"][-1] == "unsafe_advice"
    assert post_label(collector, verdict="fail", failure_mode="unsafe_advice")[0] == 200

    schema = r.json() | {"score_min": 1, "score_max": 5, "required": ["verdict"], "require_failure_mode_on_fail": True}
    schema.pop("project")
    r = api(collector, "PUT", "/label-schema", schema, project=PROJECT)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    assert post_label(collector, verdict="pass", score=6)[1].startswith("score 6.0 is above")
    assert "requires verdict" in post_label(collector, score=3)[1]
    assert "failure_mode when the verdict is fail" in post_label(collector, verdict="fail")[1]
    assert post_label(collector, verdict="pass", score=5)[0] == 200
    # A judge may send just a score; another project keeps the default schema.
    assert post_label(collector, source="judge", author="gpt-judge", score=2)[0] == 200
    assert post_label(collector, project="other", score=42)[0] == 200
    # In a batch, the message names the event.
    r = api(
        collector,
        "POST",
        "/labels",
        [
            {"trace_id": TRACE, "project": PROJECT, "source": "human", "verdict": "pass"},
            {"trace_id": TRACE, "project": PROJECT, "source": "human", "score": 3},
        ],
    )
    assert r.status_code == 400 and r.json()["message"].startswith("[1]: ")

    # Saving from a stale version is refused: nothing of someone else's change is lost.
    stale = schema | {"version": 1, "failure_modes": ["only_this"]}
    r = api(collector, "PUT", "/label-schema", stale, project=PROJECT)
    assert r.status_code == 409 and "version 2" in r.json()["message"]
    bad = api(collector, "PUT", "/label-schema", schema | {"version": 2, "score_min": 9}, project=PROJECT)
    assert bad.status_code == 400 and "score_min must be below score_max" in bad.json()["message"]
    assert api(collector, "GET", "/label-schema", project="../etc").status_code == 400


def test_concurrent_extensions_all_survive(collector: RunningCollector) -> None:
    def client(n: int) -> None:
        for i in range(8):
            r = api(collector, "POST", "/label-schema/failure-modes", {"add": [f"mode_{n}_{i}"]}, project=PROJECT)
            assert r.status_code == 200, r.text

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    schema = api(collector, "GET", "/label-schema", project=PROJECT).json()
    assert {f"mode_{n}_{i}" for n in range(2) for i in range(8)} <= set(schema["failure_modes"])
    assert schema["version"] == 16


def test_versions_are_files_written_once(tmp_path: Path) -> None:
    store = LabelSchemas(tmp_path)
    v1 = store.save(PROJECT, LabelSchema(score_min=0, score_max=1), author="lead")
    assert v1.version == 1 and store.get(PROJECT).score_max == 1
    with pytest.raises(SchemaConflict):
        store.save(PROJECT, LabelSchema(failure_modes=["x"]))  # based on version 0: stale
    store.update(PROJECT, add_failure_modes=["x"], remove_failure_modes=["too_slow"])
    assert store.versions(PROJECT) == [1, 2]
    assert (
        "too_slow" not in store.get(PROJECT).failure_modes
        and store.get(PROJECT, 1).failure_modes[-1] == "too_expensive"
    )
    on_disk = json.loads((tmp_path / "config" / "label_schema" / PROJECT / "v000001.json").read_text())
    assert on_disk["updated_by"] == "lead" and on_disk["score_max"] == 1
    with pytest.raises(ValueError):
        store.get("../x")


def test_schema_survives_a_restart_and_cli(tmp_path: Path) -> None:
    running, stop = start_collector(tmp_path / "d")
    try:
        runner = CliRunner()
        args = ["labels", "schema", "--project", PROJECT, "--url", running.http, "--data-dir", str(running.data_dir)]
        out = runner.invoke(cli, [*args, "--add-failure-mode", "unsafe_advice", "--score-range", "1,5"])
        assert out.exit_code == 0, out.output
        shown = json.loads(out.output)
        assert shown["score_max"] == 5 and "unsafe_advice" in shown["failure_modes"]
        bad = runner.invoke(cli, [*args, "--score-range", "5,1"])
        assert bad.exit_code != 0 and "score_min must be below score_max" in bad.output
    finally:
        stop()
    running, stop = start_collector(tmp_path / "d")
    try:
        assert post_label(running, verdict="fail", failure_mode="unsafe_advice", score=4)[0] == 200
        assert post_label(running, score=0)[0] == 400
        out = CliRunner().invoke(cli, ["labels", "schema", "--project", PROJECT, "--data-dir", str(running.data_dir)])
        assert json.loads(out.output)["version"] == 2  # read from the files, no server needed
    finally:
        stop()


def test_labelling_queue(collector: RunningCollector) -> None:
    from datetime import timedelta

    from spanlake.analytics.label_queue import labelling_queue
    from spanlake.analytics.runner import Analytics
    from spanlake.analytics.traces.filters import TraceFilters
    from tests.datasets.helpers import label, qa_trace, send

    sent = []
    for i in range(3):
        spans, s = qa_trace(f"question {i}", "answer", start_ns=None)
        send(collector, spans)
        sent.append(s)
    label(collector, sent[1].trace_id, "ana", verdict="pass")
    label(collector, sent[2].trace_id, "bo", span_id=sent[2].llm_span_id, verdict="fail", failure_mode="wrong_tool")
    collector.flush()
    an = Analytics(collector.lake)
    f = TraceFilters.last(timedelta(hours=2), project=PROJECT)
    ana = labelling_queue(an, f, author="ana", limit=5)
    assert (ana.total, ana.done, ana.remaining) == (3, 1, 2)
    assert set(ana.next["trace_id"]) == {sent[0].trace_id, sent[2].trace_id}
    anyone = labelling_queue(an, f, limit=1)
    assert (anyone.done, anyone.next["trace_id"].to_list()) == (2, [sent[0].trace_id])
    assert labelling_queue(an, f.with_(project="other")).total == 0
