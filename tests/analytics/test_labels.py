"""Current labels and reviewer agreement, checked against numbers worked out by hand."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner

from spanlake.analytics.labels import (
    NO_FAILURE_MODE,
    agreement,
    cohen_kappa,
    current_labels,
    field_agreement,
    fleiss_kappa,
    label_history,
)
from spanlake.cli.main import cli
from spanlake.storage.label_schema import LabelSchema
from tests.conftest import RunningCollector
from tests.datasets.helpers import PROJECT, api, label

T1, T2, T3 = ("a" * 32, "b" * 32, "c" * 32)


def rows(*labels: tuple[str, str, dict]) -> list[dict]:
    """(trace_id, author, fields) → label rows as current_labels returns them."""
    return [
        {"project": PROJECT, "trace_id": t, "span_id": None, "source": "human", "author": a, **f} for t, a, f in labels
    ]


def test_cohen_kappa_two_readers() -> None:
    # 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    # po = 35/50 = 0.7; A says yes 25/50, B 30/50; pe = .5*.6 + .5*.4 = .5; kappa = (.7 - .5) / .5 = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    labelled = rows(*[(f"{i:032x}", "ana", {"verdict": x}) for i, x in enumerate(a)])
    labelled += rows(*[(f"{i:032x}", "bo", {"verdict": x}) for i, x in enumerate(b)])
    got = field_agreement(labelled, "verdict")
    assert (got.items, got.reviewers, got.ratings) == (50, 2, 100)
    assert got.percent_agreement == pytest.approx(0.7)
    assert got.cohen_kappa == pytest.approx(0.4)
    # Fleiss pools the two readers' marginals: yes 55/100, no 45/100; Pe = .3025 + .2025 = .505;
    # kappa = (.7 - .505) / .495 = 13/33.
    assert got.fleiss_kappa == pytest.approx(13 / 33)


def test_fleiss_kappa_fourteen_raters() -> None:
    # The textbook example (Fleiss 1971 layout): 10 items, 14 raters, 5 categories.
    # P-bar = 0.378, Pe = 0.213, kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    items = [[c for c, n in enumerate(counts) for _ in range(n)] for counts in table]
    assert round(fleiss_kappa(items), 3) == 0.210  # type: ignore[arg-type]
    labelled = rows(
        *[(f"{i:032x}", f"r{j}", {"score": float(c + 1)}) for i, it in enumerate(items) for j, c in enumerate(it)]
    )
    got = field_agreement(labelled, "score", LabelSchema(score_min=1, score_max=6, score_buckets=5))
    assert round(got.percent_agreement, 3) == 0.378  # type: ignore[arg-type]
    assert round(got.fleiss_kappa, 3) == 0.210  # type: ignore[arg-type]


THREE_REVIEWERS = [
    (T1, "ana", {"verdict": "fail", "failure_mode": "hallucination"}),
    (T1, "bo", {"verdict": "fail", "failure_mode": "hallucination"}),
    (T1, "cy", {"verdict": "pass"}),
    (T2, "ana", {"verdict": "pass"}),
    (T2, "bo", {"verdict": "pass"}),
    (T3, "ana", {"verdict": "fail", "failure_mode": "retrieval_miss"}),
    (T3, "cy", {"verdict": "fail", "failure_mode": "hallucination"}),
]


def check_three_reviewers(result: dict) -> None:
    """By hand. failure_mode ratings: T1 [hallucination, hallucination, none], T2 [none, none],
    T3 [retrieval_miss, hallucination].
    Percent agreement: T1 1 of 3 pairs, T2 1/1, T3 0/1 → (1/3 + 1 + 0) / 3 = 4/9.
    ana-bo (T1, T2): both agree → 1.0; ana [h, n] vs bo [h, n]: po 1, pe (1+1)/4 = .5 → kappa 1.
    ana-cy (T1, T3): ana [h, r] vs cy [n, h]: po 0, pe (h: 1*1)/4 = .25 → kappa -1/3.
    bo-cy (T1 only): agreement 0, kappa undefined (one item). Mean kappa (1 - 1/3) / 2 = 1/3.
    Fleiss: P_i = 1/3, 1, 0 → 4/9; totals h 3, n 3, r 1 of 7 → Pe 19/49; kappa 5/54.
    Verdict: T1 [f, f, p] 1/3, T2 1, T3 1 → 7/9."""
    fm = result["failure_mode"]
    get = (lambda k: fm[k]) if isinstance(fm, dict) else (lambda k: getattr(fm, k))
    assert (get("items"), get("reviewers"), get("ratings")) == (3, 3, 7)
    assert get("percent_agreement") == pytest.approx(4 / 9)
    assert get("cohen_kappa") == pytest.approx(1 / 3)
    assert get("fleiss_kappa") == pytest.approx(5 / 54)
    pairs = {
        (p["reviewer_a"], p["reviewer_b"]) if isinstance(p, dict) else (p.reviewer_a, p.reviewer_b): p
        for p in get("pairs")
    }
    as_dict = {k: (v if isinstance(v, dict) else v.__dict__) for k, v in pairs.items()}
    assert as_dict[("ana", "bo")]["cohen_kappa"] == pytest.approx(1.0)
    assert as_dict[("ana", "cy")]["cohen_kappa"] == pytest.approx(-1 / 3)
    assert as_dict[("bo", "cy")] | {"cohen_kappa": None} == as_dict[("bo", "cy")]
    assert as_dict[("bo", "cy")]["percent_agreement"] == 0.0
    verdict = result["verdict"]
    pa_verdict = verdict["percent_agreement"] if isinstance(verdict, dict) else verdict.percent_agreement
    assert pa_verdict == pytest.approx(7 / 9)


def test_three_reviewers_by_hand() -> None:
    check_three_reviewers(agreement(rows(*THREE_REVIEWERS)))


def test_ratings_that_do_not_count() -> None:
    labelled = [
        *rows(
            (T1, "ana", {"verdict": "pass"}), (T1, "bo", {"comment": "not a rating"}), (T2, "ana", {"verdict": "pass"})
        ),
        {"project": PROJECT, "trace_id": T1, "span_id": None, "source": "judge", "author": "gpt", "verdict": "fail"},
        {"project": PROJECT, "trace_id": T2, "span_id": None, "source": "human", "author": None, "verdict": "fail"},
    ]
    got = agreement(labelled)
    assert got["verdict"].items == 0 and got["verdict"].percent_agreement is None
    assert got["verdict"].cohen_kappa is None and got["verdict"].fleiss_kappa is None


def test_undefined_kappa_when_everyone_says_the_same() -> None:
    same = [(t, a, {"verdict": "pass"}) for t in (T1, T2) for a in ("ana", "bo")]
    got = field_agreement(rows(*same), "verdict")
    assert got.percent_agreement == 1.0 and got.cohen_kappa is None and got.fleiss_kappa is None


def test_score_buckets() -> None:
    schema = LabelSchema(score_min=1, score_max=5, score_buckets=5)  # bins of width 0.8
    assert [schema.score_bucket(s) for s in (1, 1.5, 1.8, 2, 3, 4, 4.9, 5)] == [0, 0, 1, 1, 2, 3, 4, 4]
    assert LabelSchema().score_bucket(3.4) == 3  # no range: nearest integer
    got = field_agreement(rows((T1, "ana", {"score": 4.9}), (T1, "bo", {"score": 5.0})), "score", schema)
    assert got.percent_agreement == 1.0
    assert NO_FAILURE_MODE == "(none)"


def test_latest_event_is_current_and_history_is_kept(collector: RunningCollector) -> None:
    first = label(collector, T1, "ana", verdict="fail", failure_mode="hallucination")
    label(collector, T1, "bo", verdict="pass")
    last = label(collector, T1, "ana", verdict="pass", comment="I misread it")
    label(collector, T1, "ana", span_id="0" * 15 + "1", verdict="fail", failure_mode="wrong_tool")
    collector.flush()
    cur = current_labels(collector.lake, project=PROJECT).to_dicts()
    by = {(r["author"], r["span_id"]): r for r in cur}
    assert len(cur) == 3
    assert by[("ana", None)]["label_id"] == last and by[("ana", None)]["verdict"] == "pass"
    assert by[("ana", "0" * 15 + "1")]["failure_mode"] == "wrong_tool"
    history = label_history(collector.lake, T1, PROJECT).to_dicts()
    assert history[0]["label_id"] == first and len(history) == 4
    assert current_labels(collector.lake, project="other").is_empty()


def test_agreement_through_the_api_and_cli(collector: RunningCollector) -> None:
    for trace, author, fields in THREE_REVIEWERS:
        label(collector, trace, author, **fields)
    label(collector, T1, "cy", verdict="fail", failure_mode="wrong_tool")  # cy changes their mind ...
    label(collector, T1, "cy", verdict="pass")  # ... and back: only the latest counts
    collector.flush()
    r = api(collector, "GET", "/labels/agreement", project=PROJECT)
    assert r.status_code == 200, r.text
    check_three_reviewers(r.json()["fields"])
    out = CliRunner().invoke(
        cli, ["labels", "agreement", "--project", PROJECT, "--data-dir", str(collector.data_dir), "--format", "json"]
    )
    assert out.exit_code == 0, out.output
    assert '"field": "failure_mode"' in out.output and '"items": 3' in out.output
    r = api(collector, "GET", "/labels", trace_id=T1, project=PROJECT)
    assert len(r.json()["current"]) == 3 and len(r.json()["history"]) == 5


def test_two_clients_labelling_at_once_lose_nothing(collector: RunningCollector) -> None:
    traces = [f"{i:032x}" for i in range(1, 11)]
    errors: list[str] = []

    def reviewer(author: str) -> None:
        for rnd in range(5):  # five passes over the same ten traces, each a correction of the last
            for t in traces:
                verdict = "fail" if (rnd + int(t, 16)) % 2 else "pass"
                r = api(collector, "POST", "/labels", {"trace_id": t, "source": "human", "author": author,
                        "verdict": verdict, "comment": f"{author} round {rnd}", "project": PROJECT})  # fmt: skip
                if r.status_code != 200:
                    errors.append(r.text)

    threads = [threading.Thread(target=reviewer, args=(a,)) for a in ("ana", "bo")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    collector.flush()
    assert collector.query("SELECT count(*) AS n FROM labels") == [{"n": 100}]
    cur = current_labels(collector.lake, project=PROJECT).to_dicts()
    assert len(cur) == 20
    assert all(r["comment"] == f"{r['author']} round 4" for r in cur)
