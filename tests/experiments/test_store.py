"""The experiment store: ids, records, results lines that survive a crash mid-write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spanlake.experiments.store import ExperimentError, Store, check_id, cut_output, new_id, read_results


def test_ids_sort_by_creation_time_and_are_checked() -> None:
    early = new_id(datetime(2026, 12, 5, 15, 30, 12, tzinfo=UTC))
    late = new_id(datetime(2026, 12, 5, 15, 30, 13, tzinfo=UTC))
    assert early.startswith("exp-20261205-153012-") and len(early) == len("exp-20261205-153012-ab12")
    assert early < late
    for bad in ("../x", "exp-2026-1", "exp-20261205-153012-ABCD", ""):
        with pytest.raises(ExperimentError, match="is not an experiment id"):
            check_id(bad)


def test_create_get_list_update(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a = store.create("shop", {"app": "m:f"}, now=datetime(2026, 12, 5, 15, 0, 0, tzinfo=UTC))
    b = store.create("other", {"app": "m:g"}, now=datetime(2026, 12, 5, 16, 0, 0, tzinfo=UTC))
    assert a.folder == tmp_path.resolve() / "experiments" / "shop" / a.id
    assert store.get(a.id).record["app"] == "m:f" and store.get(b.id, "other").project == "other"
    assert [e.id for e in store.list()] == [b.id, a.id] and [e.id for e in store.list("shop")] == [a.id]
    assert store.get(a.id).status == "running"  # this process is alive
    store.update(a, status="finished")
    assert store.get(a.id).status == "finished"
    store.update(b, pid=2**22 + 12345)  # no such process: it died while running
    assert store.get(b.id).status == "interrupted"
    with pytest.raises(ExperimentError, match="no experiment exp-20261205-170000-0000"):
        store.get("exp-20261205-170000-0000")
    with pytest.raises(ExperimentError, match="invalid project name"):
        store.folder("../etc", a.id)


def test_a_torn_last_line_is_ignored_then_cut_before_the_next_append(tmp_path: Path) -> None:
    store = Store(tmp_path)
    exp = store.create("shop", {})
    with store.running(exp) as w:
        w.append([{"item_id": "a", "output": "1"}, {"item_id": "b", "output": "2"}])
    with open(exp.results_path, "ab") as f:
        f.write(b'{"item_id": "c", "outp')  # the process died in the middle of this write
    assert list(exp.results()) == ["a", "b"]
    with store.running(exp) as w:
        w.append([{"item_id": "c", "output": "3"}])
    lines = exp.results_path.read_text().splitlines()
    assert [json.loads(x)["item_id"] for x in lines] == ["a", "b", "c"]
    assert exp.results()["c"]["output"] == "3"


def test_a_damaged_line_in_the_middle_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text('{"item_id": "a"}\nnot json\n{"item_id": "b"}\n')
    with pytest.raises(ExperimentError, match=r"results.jsonl:2: damaged result line"):
        read_results(path)
    path.write_text('{"item_id": "a"}\n{"item_id": "a", "output": "second"}\n[1]\n')
    with pytest.raises(ExperimentError, match=r":3: a result line without an item_id"):
        read_results(path)
    path.write_text('{"item_id": "a"}\n{"item_id": "a", "output": "second"}\n')
    assert read_results(path) == {"a": {"item_id": "a"}}  # the first line of an id wins


def test_long_outputs_are_cut() -> None:
    assert cut_output("x" * 10) == "x" * 10 and cut_output(None) is None
    cut = cut_output("y" * 1_000_005)
    assert cut is not None and cut.endswith("… [cut: 1000005 characters]") and cut.startswith("y" * 1000)
