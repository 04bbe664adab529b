"""Deterministic apps for the experiment tests, one model call each through the SDK (model
`acme-1`, priced by the test's prices.toml at $1000 / $2000 per million input / output tokens,
so 1 input token = $0.001 and 1 output token = $0.002).

Dataset items (helpers.ITEMS): inputs `question i`, expected outputs `answer i`, i = 0..9.

- baseline (sync, takes the item): right on 0-8, wrong on 9 ("I don't know"); 100 in / 50 out
  tokens each → $0.20 per item.
- candidate (async, input only): wrong on 1 (fails `exact`), marks item 2 failed with reason
  `hallucination`, right on 9 (improved), answers item 5 with a trailing newline (same verdict,
  changed output); 100 / 50 tokens on items 0-2 ($0.20), 50 / 25 on 3-9 ($0.10).
- flaky: raises on items 3 and 7, right elsewhere. hangs: never returns on item 4.
- slow: right on every item after SLOW_S (the kill -9 test).
"""

from __future__ import annotations

import asyncio
import threading
import time

import spanlake.sdk as sl
from spanlake.experiments.items import DatasetItem

SLOW_S = 0.25
RELEASE = threading.Event()  # lets a hung `hangs` thread end when a test is done


def index(text: str | None) -> int:
    return int((text or "").rsplit(" ", 1)[-1])


def _model_call(input_tokens: int, output_tokens: int) -> None:
    with sl.llm_call("acme-1", "openai") as call:
        call.set_usage(input_tokens=input_tokens, output_tokens=output_tokens)


def baseline(input: str, item: DatasetItem) -> str:
    assert item.input == input and item.id.startswith("item-")
    time.sleep(0.03)
    _model_call(100, 50)
    i = index(input)
    return "I don't know" if i == 9 else f"answer {i}"


async def candidate(input: str) -> str:
    await asyncio.sleep(0.01)
    i = index(input)
    _model_call(100, 50) if i <= 2 else _model_call(50, 25)
    if i == 1:
        return "answer one"
    if i == 2:
        sl.current_task().fail("hallucination")
        return "answer 2 (made up)"
    if i == 5:
        return "answer 5\n"
    return f"answer {i}"


def flaky(input: str) -> str:
    i = index(input)
    _model_call(10, 10)
    if i in (3, 7):
        raise RuntimeError(f"upstream refused question {i}")
    return f"answer {i}"


def hangs(input: str) -> str:
    i = index(input)
    if i == 4:
        RELEASE.wait(30)
        return "too late"
    return f"answer {i}"


def slow(input: str) -> str:
    time.sleep(SLOW_S)
    _model_call(10, 10)
    return f"answer {index(input)}"
