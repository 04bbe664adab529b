"""Judge-human alignment (evaluators/alignment.py), hand-worked on a designed set of labels:
the pure figures over label rows, then the same labels written to a lake and read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spanlake.evaluators.alignment import (
    alignment,
    disagreements,
    iso_week,
    project_alignment,
    project_disagreements,
    spearman,
)
from spanlake.storage.reader import Lake
from tests.analytics.helpers import human_event, judge_event, sid, tid, write_labels

W23 = datetime(2025, 6, 2, 12, tzinfo=UTC)  # a Monday: ISO week 2025-W23
W24 = W23 + timedelta(days=7)

# (trace, span, judge verdict, judge score, human labels [(author, verdict, score, minutes after the judge)], week)
DESIGN: list[tuple[int, int | None, str, float | None, list[tuple[str, str, float | None, int]], datetime]] = [
    (1, None, "fail", 0.2, [("ana", "fail", 1, 5)], W23),
    (2, None, "fail", 0.4, [("ana", "pass", 3, 5)], W23),
    (3, None, "pass", 0.9, [("ana", "pass", 5, 5)], W23),
    (4, None, "pass", 0.8, [("bo", "fail", 2, -5)], W23),  # people labelled first
    (5, None, "pass", 0.7, [("ana", "pass", 4, 5)], W24),
    (6, None, "fail", 0.1, [], W24),  # nobody else labelled it: not an item
    (7, 1, "fail", 0.7, [("ana", "pass", 1, 5), ("bo", "fail", 4, 9)], W24),  # the latest person (bo) counts
    (8, None, "pass", None, [("ana", "pass", None, 5)], W24),
]


def rows() -> list[dict[str, Any]]:
    """Current label rows as analytics.labels.current_labels gives them."""
    out: list[dict[str, Any]] = []
    for i, (trace, span, verdict, score, people, week) in enumerate(DESIGN):
        at = week + timedelta(minutes=i)
        item = {"project": "default", "trace_id": tid(trace).hex(), "span_id": sid(span).hex() if span else None}
        meta = {"evaluator": "g", "evaluator_version": 1}
        judge = {"source": "judge", "author": "g@v1", "created_at": at, "verdict": verdict, "score": score}
        out.append(item | judge | {"comment": f"reason {trace}", "metadata": meta, "label_id": f"j{trace}"})
        for author, hv, hs, after in people:
            human = {"source": "human", "author": author, "created_at": at + timedelta(minutes=after), "verdict": hv}
            out.append(item | human | {"score": hs, "comment": f"{author} on {trace}", "label_id": f"h{trace}{author}"})
    # h@v2 (named by its author only) on trace 3; end-user feedback is not a person's verdict
    t3 = {"project": "default", "trace_id": tid(3).hex(), "span_id": None}
    out.append({**t3, "source": "judge", "author": "h@v2", "created_at": W23, "verdict": "pass", "score": None})
    out.append({**t3, "source": "user_feedback", "author": "u1", "created_at": W23, "value": "down"})
    return out


def test_spearman_by_hand() -> None:
    # ranks (1, 2, 3.5, 3.5) and (2, 1, 3.5, 3.5), mean 2.5: deviations (-1.5, -.5, 1, 1) and
    # (-.5, -1.5, 1, 1): products .75 + .75 + 1 + 1 = 3.5, squares 4.5 and 4.5 → 7/9
    assert spearman([1, 2, 5, 5], [20, 10, 30, 30]) == pytest.approx(7 / 9)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1], [2]) is None and spearman([], []) is None


def test_figures_by_hand() -> None:
    g, h = alignment(rows())
    assert (g.evaluator, g.version, h.evaluator, h.version) == ("g", 1, "h", 2)
    o = g.overall
    # verdict pairs (judge, people): 1 FF, 2 FP, 3 PP, 4 PF, 5 PP, 7 FF (bo is the latest), 8 PP
    assert o.items == 7
    assert o.confusion == {"judge_pass_human_pass": 3, "judge_pass_human_fail": 1, "judge_fail_human_pass": 1,
                           "judge_fail_human_fail": 2}  # fmt: skip
    # po 5/7; judge 4 pass 3 fail, people 4 pass 3 fail: pe 25/49; kappa (35 - 25) / (49 - 25) = 5/12
    assert o.kappa == pytest.approx(5 / 12)
    assert (o.precision, o.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    # scored: judge 0.2 0.4 0.9 0.8 0.7 0.7 → ranks 1 2 6 5 3.5 3.5; people 1 3 5 2 4 4 → 1 3 6 2 4.5 4.5;
    # deviations from 3.5: products 6.25 + .75 + 6.25 - 2.25 = 11, squares 17 and 17
    assert (o.spearman, o.scored_items) == (pytest.approx(11 / 17), 6)
    assert list(g.weeks) == ["2025-W23", "2025-W24"] and iso_week(W24) == "2025-W24"
    w23, w24 = g.weeks["2025-W23"], g.weeks["2025-W24"]
    # W23: one of each pair: po 1/2, pe 1/2 → 0; ranks (1 2 4 3) and (1 3 4 2): 4 / 5
    assert (w23.items, w23.kappa, w23.precision, w23.recall, w23.spearman) == (4, 0.0, 0.5, 0.5, pytest.approx(0.8))
    # W24: 5 PP, 7 FF, 8 PP: full agreement; the two scored items tie on both sides → no correlation
    assert (w24.items, w24.kappa, w24.precision, w24.recall, w24.spearman, w24.scored_items) == (3, 1.0, 1.0, 1.0,
                                                                                                  None, 2)  # fmt: skip
    # h@v2: one item, both pass: nothing to compute but the count
    assert (h.overall.items, h.overall.kappa, h.overall.precision, h.overall.recall, h.overall.spearman) == (
        1, None, None, None, None)  # fmt: skip
    assert g.as_dict()["weeks"][0]["week"] == "2025-W23" and g.as_dict()["kappa"] == pytest.approx(5 / 12)


def test_disagreements() -> None:
    got = disagreements(rows(), "g")
    assert [(d["trace_id"], d["judge_verdict"], d["human_verdict"], d["human_author"]) for d in got] == [
        (tid(4).hex(), "pass", "fail", "bo"),  # judged after trace 2
        (tid(2).hex(), "fail", "pass", "ana"),
    ]
    assert got[1]["judge_comment"] == "reason 2" and got[1]["human_comment"] == "ana on 2"
    assert got[1]["judge_score"] == 0.4 and got[1]["span_id"] is None
    assert disagreements(rows(), "g", 2) == [] and disagreements(rows(), "h") == []


def test_no_labels_no_crash() -> None:
    assert alignment([]) == [] and disagreements([], "g") == []
    only_judges = [r for r in rows() if r["source"] == "judge"]
    assert [a.overall.items for a in alignment(only_judges)] == [0, 0]
    assert alignment(only_judges)[0].overall.kappa is None and alignment(only_judges)[0].weeks == {}


def test_from_the_lake(tmp_path: Path) -> None:
    """The design written as label events (judges through evaluators.result.label_event): the
    lake's current labels give the same figures; a re-sent judge event and a reviewer who
    corrected themselves change nothing."""
    events = []
    for i, (trace, span, verdict, score, people, week) in enumerate(DESIGN):
        at = week + timedelta(minutes=i)
        events.append(judge_event(trace, at, verdict, span_id=span, score=score, comment=f"reason {trace}"))
        for author, hv, hs, after in people:
            when = at + timedelta(minutes=after)
            if author == "ana":  # ana said the opposite first, then corrected herself
                first = "fail" if hv == "pass" else "pass"
                events.append(human_event(trace, when - timedelta(seconds=30), first, author=author, span_id=span))
            events.append(human_event(trace, when, hv, author=author, span_id=span, score=hs,
                                      comment=f"{author} on {trace}"))  # fmt: skip
    events.append(judge_event(3, W23, "pass", name="h", version=2))
    write_labels(tmp_path, events)
    write_labels(tmp_path, events[:1])  # trace 1's judgment delivered twice
    lake = Lake(tmp_path)
    got = project_alignment(lake, "default")
    assert [(a.evaluator, a.version) for a in got] == [("g", 1), ("h", 2)]
    assert got[0].overall == alignment(rows())[0].overall
    assert got[0].weeks == alignment(rows())[0].weeks
    # judge labels set in W24 only: trace 5, 7, 8 (people's labels of any time count)
    (w24,) = [a for a in project_alignment(lake, "default", since=W24) if a.evaluator == "g"]
    assert (w24.overall.items, w24.overall.kappa) == (3, 1.0)
    dis = project_disagreements(lake, "default", "g", 1)
    assert [d["trace_id"] for d in dis] == [tid(4).hex(), tid(2).hex()]
    assert project_alignment(lake, "other") == [] and project_disagreements(lake, "default", "nobody") == []
