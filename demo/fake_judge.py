"""The fake judge of `spanlake.demo.fake_openai`: deterministic answers for judge models.

Judge models (``model`` starting ``judge-``; the word after ``judge-`` picks the behaviour, a
further ``-suffix`` is ignored so tests can name distinct judges, e.g. ``judge-pass-b``). The
reply text is the judge's answer, a JSON object ``{"verdict", "score", "failure_mode", "reason"}``;
usage is counted as for any reply:

- ``judge-pass``: verdict pass, score 1.0; ``judge-fail``: verdict fail, score 0.0, failure
  mode ``hallucination``;
- ``judge-malformed``: ``"I think the answer is fine."`` (not JSON);
- ``judge-badmode``: verdict fail with failure mode ``not_a_failure_mode`` (in no project's list);
- ``judge-grounded``: in the last user message, the answer is the text after the line starting
  ``Answer:`` and the documents the text between the line starting ``Documents:`` and that
  line; ``share`` = the answer's words (``judge_words``: lowercase runs of letters and digits,
  every occurrence) found among the documents' words / the answer's words (0 with no words);
  verdict pass when ``share >= 0.5``, else fail with failure mode ``hallucination``; score
  ``round(share, 2)``;
- ``judge-hash``: ``int(sha256(last user text)[:8], 16)`` even → pass (score 1.0), odd → fail
  (score 0.0, ``hallucination``);
- any other ``judge-*``: HTTP 400.
"""

from __future__ import annotations

import hashlib
import json
import re

JUDGE_PREFIX = "judge-"
JUDGE_BEHAVIOURS = ("pass", "fail", "malformed", "badmode", "grounded", "hash")
JUDGE_FAILURE_MODE = "hallucination"
MALFORMED_ANSWER = "I think the answer is fine."
BAD_FAILURE_MODE = "not_a_failure_mode"
_WORD = re.compile(r"[a-z0-9]+")


def judge_words(text: str) -> list[str]:
    """The judge's words: lowercase runs of letters and digits, in order, repeats kept."""
    return _WORD.findall(text.lower())


def grounded_share(prompt: str) -> float:
    """The share of the answer's words (after the `Answer:` line) found in the documents
    (between the `Documents:` line and the `Answer:` line); 0.0 when the answer has no words."""
    lines = prompt.splitlines()
    answer_at = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("Answer:")), None)
    if answer_at is None:
        return 0.0
    answer = "\n".join([lines[answer_at].removeprefix("Answer:"), *lines[answer_at + 1 :]])
    docs_at = next((i for i in range(answer_at) if lines[i].startswith("Documents:")), None)
    documents = (
        ""
        if docs_at is None
        else "\n".join([lines[docs_at].removeprefix("Documents:"), *lines[docs_at + 1 : answer_at]])
    )
    said, known = judge_words(answer), set(judge_words(documents))
    return sum(w in known for w in said) / len(said) if said else 0.0


def judge_answer(model: str, prompt: str) -> str:
    """The fake judge's answer text for a `judge-*` model (see the module docstring)."""
    behaviour = model.removeprefix(JUDGE_PREFIX).split("-")[0]
    if behaviour == "malformed":
        return MALFORMED_ANSWER
    if behaviour == "grounded":
        share = grounded_share(prompt)
        verdict = "pass" if share >= 0.5 else "fail"
        reason = f"{share:.0%} of the answer's words appear in the documents"
        return _judge_json(verdict, round(share, 2), None if verdict == "pass" else JUDGE_FAILURE_MODE, reason)
    if behaviour == "hash":
        even = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 2 == 0
        behaviour = "pass" if even else "fail"
    if behaviour == "badmode":
        return _judge_json("fail", 0.0, BAD_FAILURE_MODE, "a failure mode nobody declared")
    if behaviour == "pass":
        return _judge_json("pass", 1.0, None, "the answer meets the rubric")
    return _judge_json("fail", 0.0, JUDGE_FAILURE_MODE, "the answer does not meet the rubric")


def _judge_json(verdict: str, score: float, failure_mode: str | None, reason: str) -> str:
    return json.dumps({"verdict": verdict, "score": score, "failure_mode": failure_mode, "reason": reason})
