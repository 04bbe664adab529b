"""Offline runs (evaluators.offline) against a real server: a dataset version labelled once per
item with hand-worked verdicts, an interrupted run finished by a rerun without a double, a
backfill over past traces by filter, and what it does when the server refuses or is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from spanlake.analytics.runner import Analytics
from spanlake.evaluators.definition import Evaluator
from spanlake.evaluators.evaluators_file import EvaluatorsFile
from spanlake.evaluators.offline import (
    LabelPoster,
    OfflineError,
    OfflineRun,
    dataset_targets,
    matching_trace_ids,
    run_dataset,
    run_traces,
    trace_filters,
)
from spanlake.evaluators.result import label_id
from spanlake.storage.label_schema import LabelSchemas
from spanlake.storage.layout import DataDir
from spanlake.storage.reader import Lake
from tests.conftest import RunningCollector, start_collector
from tests.evaluators.offline_helpers import (
    APPLICABLE,
    PROJECT,
    freeze_dataset,
    judge_labels,
    key,
    send_traces,
    write_evaluators,
)
from tests.net import free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningCollector]:
    c, stop = start_collector(tmp_path / "data")
    try:
        write_evaluators(c.data_dir)
        yield c
    finally:
        stop()


def evaluator(c: RunningCollector, name: str) -> Evaluator:
    return EvaluatorsFile(c.data_dir, "default").current().get(PROJECT, name)


def dataset_run(c: RunningCollector, name: str, stop_after: int | None = None) -> OfflineRun:
    poster = LabelPoster(c.http)
    try:
        run = OfflineRun(evaluator(c, name), poster, stop_after=stop_after)
        run_dataset(Analytics(Lake(DataDir(c.data_dir))), DataDir(c.data_dir), freeze_dataset(c.data_dir), run)
    finally:
        poster.close()
    return run


def test_a_dataset_run_labels_every_item_once_with_the_verdicts_worked_by_hand(server: RunningCollector) -> None:
    run = dataset_run(server, "mentions_expected")
    s = run.summary
    assert (s.total, s.evaluated, s.passed, s.failed, s.not_applicable, s.errors) == (7, 7, 3, 3, 1, 0)
    assert (s.done_before, s.labels_written, s.unlinked) == (0, 6, 0)
    ev = evaluator(server, "mentions_expected")
    rows = judge_labels(server, "mentions_expected")
    got = {(r["trace_id"], r["span_id"]): r for r in rows}
    assert len(rows) == len(got) == len(APPLICABLE) == 6
    for example_id, _, _, verdict in APPLICABLE:
        r = got[key(example_id)]
        assert (r["verdict"], r["source"], r["author"]) == (verdict, "judge", f"mentions_expected@v{ev.version}")
        assert r["failure_mode"] == ("format_error" if verdict == "fail" else None)
        meta = orjson.loads(r["metadata"])
        assert (meta["evaluator"], meta["evaluator_version"]) == ("mentions_expected", ev.version)
    # The labels are the online rules' own: their ids are evaluators.result.label_id's.
    ids = {r["label_id"] for r in server.query("SELECT label_id FROM labels WHERE project = $p", {"p": PROJECT})}
    assert ids == {label_id(PROJECT, *key(i[0]), "mentions_expected", ev.version) for i in APPLICABLE}


def test_an_interrupted_run_then_a_rerun_labels_every_item_exactly_once(server: RunningCollector) -> None:
    first = dataset_run(server, "mentions_expected", stop_after=2).summary  # Ctrl-C after 2 items
    assert (first.evaluated, first.labels_written) == (2, 2)
    assert len(judge_labels(server, "mentions_expected")) == 2  # judge_labels flushes: the rerun sees them
    second = dataset_run(server, "mentions_expected").summary
    assert (second.done_before, second.evaluated, second.labels_written) == (2, 5, 4)  # 5 = 4 labelled + 1 n/a
    third = dataset_run(server, "mentions_expected").summary  # finished: nothing is judged again
    assert (third.done_before, third.evaluated, third.labels_written, third.not_applicable) == (6, 1, 0, 1)
    rows = judge_labels(server, "mentions_expected")
    assert sorted((r["trace_id"], r["span_id"]) for r in rows) == sorted(key(i[0]) for i in APPLICABLE)
    raw = server.query("SELECT count(*) AS n FROM labels_raw WHERE project = $p", {"p": PROJECT})
    assert raw == [{"n": 6}]


def test_results_not_yet_in_the_lake_are_sent_again_and_count_once(server: RunningCollector) -> None:
    """A rerun that does not see the first run's labels yet (still in the server's log) judges
    every item again; the re-sent labels keep their ids and count once."""
    targets = dataset_targets(DataDir(server.data_dir), freeze_dataset(server.data_dir))
    poster = LabelPoster(server.http)
    for _ in range(2):
        s = OfflineRun(evaluator(server, "mentions_expected"), poster).run_targets(targets, done=set())
        assert (s.evaluated, s.labels_written, s.done_before) == (7, 6, 0)
    poster.close()
    rows = judge_labels(server, "mentions_expected")
    assert len(rows) == 6 and len({(r["trace_id"], r["span_id"]) for r in rows}) == 6
    raw = server.query("SELECT count(*) AS n FROM labels_raw WHERE project = $p", {"p": PROJECT})
    assert raw == [{"n": 12}]


def test_an_evaluator_that_raises_costs_its_item_only(server: RunningCollector) -> None:
    s = dataset_run(server, "picky").summary
    # picky raises on the ORD-77 item, fails the empty output, passes the other five.
    assert (s.evaluated, s.errors, s.passed, s.failed, s.labels_written) == (7, 1, 5, 1, 6)
    (message,) = s.error_messages
    assert message.startswith(f"{2:032x}: ") and "cannot judge ORD-77" in message
    assert len(judge_labels(server, "picky")) == 6


def test_a_backfill_over_past_traces_by_filter(server: RunningCollector) -> None:
    sent = send_traces(server)
    an = Analytics(Lake(DataDir(server.data_dir)))
    f = trace_filters(PROJECT, None, None, ["service=svc-a"])
    assert f.service == "svc-a" and f.project == PROJECT
    ids = matching_trace_ids(an, f)
    assert ids == [t for t, (svc, _) in sent.items() if svc == "svc-a"]  # oldest first
    poster = LabelPoster(server.http)
    run = OfflineRun(evaluator(server, "fast_enough"), poster)
    s = run_traces(an, f, run)
    assert (s.total, s.evaluated, s.passed, s.failed, s.errors, s.labels_written) == (4, 4, 2, 2, 0, 4)
    rows = judge_labels(server, "fast_enough")
    by_trace = {r["trace_id"]: r for r in rows}
    assert set(by_trace) == set(ids)
    for t in ids:
        ms = sent[t][1]
        assert by_trace[t]["verdict"] == ("pass" if ms <= 1000 else "fail")
        assert by_trace[t]["score"] == pytest.approx(ms)
        assert by_trace[t]["failure_mode"] == (None if ms <= 1000 else "too_slow")
    again = run_traces(an, f, OfflineRun(evaluator(server, "fast_enough"), poster))
    assert (again.total, again.done_before, again.evaluated) == (4, 4, 0)
    limited = trace_filters(PROJECT, None, None, ["service=svc-b", "max_ms=1000"])
    assert matching_trace_ids(an, limited) == [t for t, (svc, ms) in sent.items() if svc == "svc-b" and ms <= 1000]
    poster.close()


@pytest.mark.parametrize(
    ("pairs", "fragment"),
    [
        (["service"], "use KEY=VALUE"),
        (["colour=red"], "unknown key 'colour'"),
        (["has_error=maybe"], "has_error is true or false"),
        (["min_ms=fast"], "min_ms is a number"),
        (["outcome=great"], "outcome must be one of"),
    ],
)
def test_bad_filters_are_refused(pairs: list[str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        trace_filters(PROJECT, None, None, pairs)


def test_a_server_that_is_gone_stops_the_run_with_a_clear_error(server: RunningCollector) -> None:
    poster = LabelPoster(f"http://127.0.0.1:{free_port()}")
    assert poster.probe() is not None
    run = OfflineRun(evaluator(server, "mentions_expected"), poster)
    with pytest.raises(OfflineError, match=r"cannot reach spanlake at .*a rerun continues"):
        run_dataset(
            Analytics(Lake(DataDir(server.data_dir))), DataDir(server.data_dir), freeze_dataset(server.data_dir), run
        )
    poster.close()


def test_a_label_the_schema_refuses_costs_that_label_only(server: RunningCollector) -> None:
    """Scores outside the project's label schema range (here 0..1000): the server refuses those
    labels (400) and the run posts the batch's others one by one."""
    LabelSchemas(server.data_dir).update(PROJECT, score_min=0, score_max=1000)
    sent = send_traces(server)
    an = Analytics(Lake(DataDir(server.data_dir)))
    poster = LabelPoster(server.http)
    s = run_traces(
        an, trace_filters(PROJECT, None, None, ["service=svc-a"]), OfflineRun(evaluator(server, "fast_enough"), poster)
    )
    poster.close()
    assert (s.passed, s.failed, s.errors, s.labels_written) == (2, 2, 2, 2)  # the 1500 and 3000 ms results refused
    assert all("refused" in m for m in s.error_messages), s.error_messages
    rows = judge_labels(server, "fast_enough")
    assert sorted(r["score"] for r in rows) == [200, 800]
    assert {r["trace_id"] for r in rows} == {t for t, (svc, ms) in sent.items() if svc == "svc-a" and ms <= 1000}
