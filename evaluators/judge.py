"""LLM judges: a prompt from the target, an OpenAI-compatible call, a parsed verdict.

SKELETON — filled in by the judge work. Contract used by evaluators.run:

    client = JudgeClient(evaluator, data_dir=..., traces_endpoint=...)   # one per evaluator version
    result = client.evaluate(target)   # thread-safe; blocks; at most `concurrency` calls at once
                                       # raises EvaluationError (transient for timeouts, 429, 5xx,
                                       # connection errors, the daily spend cap reached)
    client.close()
"""

from __future__ import annotations
