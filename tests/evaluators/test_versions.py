"""Evaluator versions (evaluators.versions): a changed definition is the next version, a
reverted one its old version, the description is not part of it, and processes assigning at
the same time agree on every number."""

from __future__ import annotations

import json
import multiprocessing
import random
from pathlib import Path
from typing import Any

from spanlake.evaluators.definition import Evaluator, evaluator_from_dict
from spanlake.evaluators.versions import VersionRegistry


def regex(pattern: str, **extra: Any) -> Evaluator:
    return evaluator_from_dict({"name": "no_sorry", "kind": "regex", "pattern": pattern, **extra}, "support")


def test_a_change_is_the_next_version_and_a_revert_the_old_one(tmp_path: Path) -> None:
    registry = VersionRegistry(tmp_path)
    first, other = registry.assign([regex("sorry"), evaluator_from_dict({"name": "j", "kind": "json_valid"})])
    assert (first.version, other.version) == (1, 1)
    (changed,) = registry.assign([regex("apolog")])
    assert changed.version == 2
    (reverted,) = registry.assign([regex("sorry", description="only the wording of the docs changed")])
    assert reverted.version == 1 and reverted.fingerprint == first.fingerprint
    (third,) = registry.assign([regex("sorry", expect="absent")])
    assert third.version == 3
    history = registry.history("support", "no_sorry")
    assert [(h["version"], h["fingerprint"]) for h in history] == [
        (1, first.fingerprint), (2, changed.fingerprint), (3, third.fingerprint),
    ]  # fmt: skip
    assert all(h["first_seen"].endswith("+00:00") for h in history)
    # durable: another registry (another process) reads the same numbers
    again = VersionRegistry(tmp_path)
    assert [e.version for e in again.assign([regex("apolog"), regex("sorry")])] == [2, 1]
    assert again.version_of(regex("never seen")) is None
    assert registry.history("support", "nothing") == [] and registry.history("default", "j")[0]["version"] == 1
    on_disk = json.loads((tmp_path / "evaluators" / "versions.json").read_text())
    assert sorted(on_disk["projects"]) == ["default", "support"]


def test_the_same_name_in_two_projects_counts_apart(tmp_path: Path) -> None:
    registry = VersionRegistry(tmp_path)
    a = evaluator_from_dict({"name": "e", "kind": "fuzzy", "threshold": 0.5}, "a")
    b = evaluator_from_dict({"name": "e", "kind": "fuzzy", "threshold": 0.9}, "b")
    assert [e.version for e in registry.assign([a, b])] == [1, 1]


VARIANTS = [("no_sorry", p) for p in ("sorry", "apolog", "regret", "unfortunately")] + [
    ("polite", p) for p in ("please", "thanks", "kindly")
]


def assign_in_turn(root: str, seed: int, start: Any, out: Any) -> None:
    """One process: the variants in its own order, one assign each, after the others are ready."""
    order = VARIANTS[:]
    random.Random(seed).shuffle(order)
    registry = VersionRegistry(root)
    start.wait()
    got = {}
    for name, pattern in order:
        (e,) = registry.assign([evaluator_from_dict({"name": name, "kind": "regex", "pattern": pattern})])
        got[f"{name}:{pattern}"] = e.version
    out.put(got)


def test_processes_assigning_at_once_agree(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    n = 4
    start, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=assign_in_turn, args=(str(tmp_path), seed, start, out)) for seed in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(r == results[0] for r in results[1:]), results
    versions: dict[str, list[int]] = {}
    for key, version in results[0].items():
        versions.setdefault(key.split(":")[0], []).append(version)
    assert sorted(versions["no_sorry"]) == [1, 2, 3, 4] and sorted(versions["polite"]) == [1, 2, 3]
    registry = VersionRegistry(tmp_path)
    for name in ("no_sorry", "polite"):
        history = registry.history("default", name)
        assert [h["version"] for h in history] == list(range(1, len(history) + 1))
        by_fingerprint = {h["fingerprint"]: h["version"] for h in history}
        for key, version in results[0].items():
            if key.startswith(name + ":"):
                e = evaluator_from_dict({"name": name, "kind": "regex", "pattern": key.split(":", 1)[1]})
                assert by_fingerprint[e.fingerprint] == version


def test_moving_a_judge_or_pacing_it_is_the_same_version(tmp_path: Path) -> None:
    def judge(**extra: Any) -> Evaluator:
        raw = {"name": "grounded", "kind": "llm_judge", "base_url": "http://127.0.0.1:9/v1", "model": "m",
               "template": "Q: {input}\nA: {output}"} | extra  # fmt: skip
        return evaluator_from_dict(raw, "support")

    registry = VersionRegistry(tmp_path)
    (first,) = registry.assign([judge()])
    moved = judge(base_url="http://judge.internal/v1", timeout_s=90, retries=5, concurrency=16,
                  daily_spend_usd=20, api_key_env="JUDGE_KEY", input_usd_per_mtok=1, output_usd_per_mtok=2)  # fmt: skip
    assert registry.assign([moved])[0].version == first.version == 1
    assert registry.assign([judge(model="m2")])[0].version == 2  # another judge model judges differently
    assert registry.assign([judge(template="Q: {input}\nA: {output}\nBe strict.")])[0].version == 3
