"""What an online rule does with its evaluators' verdicts on a target (evaluators.online, step 4).

`queue_when` adds the trace to the dataset `queue.<rule>` (the labelling queue's source),
`dataset` adds it to that dataset, `webhook` sends a message to that destination of budgets.toml.
The conditions: `fail` (some verdict is fail), `disagree` (two evaluators gave different
verdicts), `always` (some evaluator answered). Dataset events and webhook messages have
deterministic ids, so a cycle redone after a crash adds nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from spanlake.evaluators.definition import Rule
from spanlake.evaluators.result import Result
from spanlake.evaluators.target import Target

QUEUE_PREFIX = "queue."  # the dataset a rule's queue_when adds to: queue.<rule>


def queue_dataset(rule_name: str) -> str:
    """The dataset a rule's `queue_when` adds traces to (the labelling queue's source)."""
    return f"{QUEUE_PREFIX}{rule_name}"


def wants(when: str | None, verdicts: Sequence[str], answered: bool) -> bool:
    """Whether an action with condition `when` fires on these verdicts."""
    if when is None:
        return False
    if when == "always":
        return answered
    if when == "disagree":
        return len(set(verdicts)) > 1
    return "fail" in verdicts


def dataset_event(
    dataset: str, project: str, target: Target, rule: Rule, now_ns: int, start: datetime | None, why: dict[str, Any]
) -> dict[str, Any]:
    """An `add` dataset event with a deterministic id (the same rule adding the same item twice: one event)."""
    trace_id = (target.trace_id or "").lower()
    span_id = target.span_id.lower() if target.span_id else None
    key = "\x00".join((project, dataset, trace_id, span_id or "", rule.name))
    start_ns = int(start.timestamp() * 1e6) * 1000 if start is not None else None
    return {
        "event_id": "rl" + hashlib.sha256(key.encode()).hexdigest()[:30],
        "dataset": dataset,
        "op": "add",
        "project": project,
        "trace_id": trace_id,
        "span_id": span_id,
        "author": f"rule:{rule.name}",
        "created_at_unix_nano": now_ns,
        "trace_start_unix_nano": start_ns,
        "metadata": {"rule": rule.name, **why},
    }


def webhook_message(rule: Rule, target: Target, results: Sequence[Result | None], now: datetime) -> dict[str, Any]:
    """A rule's webhook notification: its id is the same every time (receivers de-duplicate)."""
    key = "\x00".join((rule.project, rule.name, target.trace_id or "", target.span_id or ""))
    nid = "msg_" + hashlib.sha256(key.encode()).hexdigest()[:24]
    found = [
        {"verdict": r.verdict, "score": r.score, "failure_mode": r.failure_mode, "comment": r.comment}
        for r in results
        if r is not None
    ]
    message = {
        "type": "evaluation.rule",
        "timestamp": now.isoformat(),
        "data": {"rule": rule.name, "project": rule.project, "trace_id": target.trace_id, "span_id": target.span_id,
                 "results": found},
    }  # fmt: skip
    return {"id": nid, "rule": rule.name, "project": rule.project, "destination": rule.webhook, "message": message}
