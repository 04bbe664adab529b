"""A data directory for the Evaluators page: eight traces of project `shop`, evaluators declared
in evaluators.toml, and judge and people's labels written through the real labels API of a
real server (POST /api/v1/labels), so their created_at is "now" (inside the sidebar's default
window, the last 24 hours).

Declared: groundedness (llm_judge), reply_json (json_schema), polite (regex, no results).
Results (current judge labels), people's labels (current human labels: ana's correction of T3
counts, not her first pass):

    trace  groundedness@v1  cost $   ms    reply_json@v1   people
    1      pass             .0001    100   pass            pass (ana)
    2      pass             .0002    200   pass            fail (bob)
    3      fail             .0003    300   fail            fail (ana: pass, then corrected to fail)
    4      fail             .0004    400   -               pass (bob)
    5      fail             .0005    500   -               fail (ana)
    6      pass             .0006    600   -               fail (bob)
    7      fail             .0007    700   -               fail (ana)
    8      pass             .0008    800   -               -
    1, span 2 (llm)         tone@v3 fail "too curt" (an evaluator no longer declared)

End users' feedback (POST /api/v1/feedback): T1 thumbs up (agrees with groundedness' pass), T8
thumbs down "made up" (disagrees with its pass: the one disagreement with feedback).

groundedness@v1: 8 results, 4 pass / 4 fail → pass rate 50.0 %; cost .0036 in all; mean latency
450 ms. Against people on T1-T7 (7 items; judge, people): (pass, pass) 1 [T1], (pass, fail) 2
[T2, T6], (fail, fail) 3 [T3, T5, T7], (fail, pass) 1 [T4]. Observed agreement 4/7; judge
marginals pass 3 / fail 4, people's pass 2 / fail 5: chance (3·2 + 4·5)/49 = 26/49; kappa =
(28/49 - 26/49) / (1 - 26/49) = 2/23 = 0.087. Precision on fail = 3 / (3 + 1) = 75.0 %;
recall on fail = 3 / (3 + 2) = 60.0 %. Disagreements: T2, T4, T6.

reply_json@v1: 3 results, 2 pass → 66.7 %; against people on T1-T3: (p, p), (p, f), (f, f):
agreement 2/3, chance (2·1 + 1·2)/9 = 4/9, kappa = (6/9 - 4/9)/(5/9) = 0.4; precision on fail
1/1 = 100 %, recall 1/2 = 50 %.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.analytics.helpers import span, write
from tests.analytics.traces.seed import trace_hex
from tests.conftest import start_collector

EVALUATORS_TOML = """\
[[evaluator]]
name = "groundedness"
project = "shop"
kind = "llm_judge"
base_url = "http://127.0.0.1:9/v1"
model = "judge-grounded"
template = "Documents:\\n{documents}\\nAnswer:\\n{output}"
description = "Is the answer supported by the retrieved documents?"

[[evaluator]]
name = "reply_json"
project = "shop"
kind = "json_schema"
schema = { type = "object", required = ["answer"] }

[[evaluator]]
name = "polite"
project = "shop"
kind = "regex"
pattern = "(?i)please|thank"
"""
GROUNDED = ["pass", "pass", "fail", "fail", "fail", "pass", "fail", "pass"]  # T1..T8
PEOPLE = {1: ("ana", "pass"), 2: ("bob", "fail"), 3: ("ana", "fail"), 4: ("bob", "pass"), 5: ("ana", "fail"),
          6: ("bob", "fail"), 7: ("ana", "fail")}  # fmt: skip
REPLY_JSON = ["pass", "pass", "fail"]  # T1..T3
DISAGREEMENTS = [trace_hex(n) for n in (2, 4, 6)]
SPAN_HEX = (2).to_bytes(8, "big").hex()  # the llm span of T1
REASON = "Only 2 of the answer's 9 words appear in the documents."


@dataclass(frozen=True)
class EvaluatorsDir:
    root: Path
    built: datetime  # labels were set after this instant


def judge(name: str, version: int, n: int, verdict: str, **meta: Any) -> dict[str, Any]:
    return {
        "trace_id": trace_hex(n),
        "project": "shop",
        "source": "judge",
        "author": f"{name}@v{version}",
        "verdict": verdict,
        "metadata": {"evaluator": name, "evaluator_version": version, **meta},
    }


def build(root: Path) -> EvaluatorsDir:
    """Write the traces, the evaluators file and every label (through a running server)."""
    built = datetime.now(UTC) - timedelta(seconds=1)
    at = (built - datetime(2025, 6, 2, 10, tzinfo=UTC)).total_seconds() * 1000 - 60_000  # a minute ago
    spans = []
    for n in range(1, 9):
        spans.append(span(n, 1, at_ms=at + n * 1000, ms=500, name="answer", gen_ai__task__name="answer"))
        spans.append(span(n, 2, 1, at_ms=at + n * 1000 + 10, ms=300, name="chat acme-1",
                          gen_ai__operation__name="chat", gen_ai__request__model="acme-1"))  # fmt: skip
    write(root, spans, {"service.name": "shop-bot", "spanlake.project": "shop"})
    (root / "evaluators.toml").write_text(EVALUATORS_TOML, encoding="utf-8")
    running, stop = start_collector(root)
    try:
        with httpx.Client(base_url=running.http, timeout=30) as http:

            def post(events: list[dict[str, Any]]) -> None:
                r = http.post("/api/v1/labels", json=events)
                assert r.status_code == 200, r.text

            post([
                judge("groundedness", 1, n, v, judge_model="judge-grounded", cost_usd=n / 10_000, latency_ms=n * 100.0,
                      input_tokens=100 * n, output_tokens=20)
                | ({"comment": REASON, "failure_mode": "hallucination"} if n == 3 else {})
                for n, v in enumerate(GROUNDED, 1)
            ])  # fmt: skip
            post([judge("reply_json", 1, n, v) for n, v in enumerate(REPLY_JSON, 1)])
            post([judge("tone", 3, 1, "fail", judge_model="judge-hash") | {"span_id": SPAN_HEX, "comment": "too curt"}])
            post([{"trace_id": trace_hex(3), "project": "shop", "source": "human", "author": "ana", "verdict": "pass"}])
            post([
                {"trace_id": trace_hex(n), "project": "shop", "source": "human", "author": who, "verdict": v,
                 "comment": f"{who} says {v}"}
                for n, (who, v) in PEOPLE.items()
            ])  # fmt: skip
            for n, value, comment in ((1, "up", None), (8, "down", "made up")):
                body = {"trace_id": trace_hex(n), "project": "shop", "value": value, "user_id": f"u{n}"}
                r = http.post("/api/v1/feedback", json=body | ({"comment": comment} if comment else {}))
                assert r.status_code == 200, r.text
        running.flush()
    finally:
        stop()
    return EvaluatorsDir(root, built)
