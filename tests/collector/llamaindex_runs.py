"""The LlamaIndex runs the instrumentation tests read (tests/collector/test_instrumentations_llamaindex.py):
each configuration's process (tests/collector/instrumented_llamaindex.py, with the python of
.venv-llamaindex) against the fake OpenAI servers, exported to one collector; what each
scenario's model calls are, by the fake server's rule (spanlake.demo.fake_openai), worked out by
hand: token counts, the retrieval ranking (cosine similarity of the fake's embedding vectors) and
the prompt the query engine builds; and small readers of the stored spans.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spanlake.demo.fake_openai import DEFAULT_DIMENSIONS, FakeOpenAI, embedding_vector, words
from tests.collector import instrumented_llamaindex as client
from tests.collector.instrumented_runs import Config, Launch, run_configurations
from tests.collector.instrumented_runs import Runs as BaseRuns

ROOT = Path(__file__).parents[2]
SLOW_MS = 150  # the slow fake holds every answer this long
MODEL = client.MODEL

# Expected usage from the fake server's rule (words = whitespace-separated words; cached =
# prompt // 2; reasoning = number of input messages; completion = visible words + reasoning).
REPLY = f"Fake reply: {client.QUESTION}"  # 8 words
CHAT = {"in": 3 + 6, "cached": 4, "reasoning": 2, "out": 8 + 2, "finish": "stop"}  # system + question
STREAM = {"in": 6, "cached": 3, "reasoning": 1, "out": 8 + 1, "finish": "stop"}
# The agent: the question (7 words) → a tool call ('get_weather {"location": "Paris"}': 3 words);
# then question + the assistant's tool call (no text) + the tool's "Sunny in Paris" (3) → a reply.
AGENT_TOOL_CALL = {"in": 7, "cached": 3, "reasoning": 1, "out": 3 + 1, "finish": "tool_calls"}
AGENT_ANSWER = {"in": 7 + 3, "cached": 5, "reasoning": 3, "out": words(f"Fake reply: {client.WEATHER}") + 3}
AGENT_ANSWER["finish"] = "stop"


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


# The retrieval, by hand: the documents ranked by cosine similarity of the fake's vectors to the
# question's (LlamaIndex's in-memory vector store), the top 2 joined into the prompt.
QUESTION_VECTOR = embedding_vector(client.RAG_QUESTION, DEFAULT_DIMENSIONS)
RANKED = sorted(
    ((_cosine(embedding_vector(d, DEFAULT_DIMENSIONS), QUESTION_VECTOR), d) for d in client.DOCUMENTS), reverse=True
)[: client.TOP_K]
RAG_PROMPT = client.RAG_TEMPLATE.format(context_str="\n\n".join(d for _, d in RANKED), query_str=client.RAG_QUESTION)
RAG = {"in": words(RAG_PROMPT), "reasoning": 1, "out": words(f"Fake reply: {RAG_PROMPT}") + 1, "finish": "stop"}
RAG["cached"] = RAG["in"] // 2


CONFIGS = {"llamaindex": Config("llamaindex", "http"), "llamaindex_openai": Config("llamaindex_openai", "grpc")}
OI_LLAMA = "openinference.instrumentation.llama_index"
OI_OPENAI = "openinference.instrumentation.openai"


@dataclass
class Runs(BaseRuns):
    def spans(self, config: str, scenario: str) -> list[dict[str, Any]]:
        """The scenario's spans, by start."""
        return self.trace_spans(config, scenario, "start_time, name")

    def named(self, config: str, scenario: str, name: str) -> list[dict[str, Any]]:
        return [s for s in self.spans(config, scenario) if s["name"] == name]

    def trace_row(self, config: str, scenario: str) -> dict[str, Any]:
        (row,) = self.collector.query(
            "SELECT * FROM traces WHERE project = ? AND trace_id = ?", [config, self.trace(config, scenario)]
        )
        return row


def llamaindex_python() -> str:
    """The python of the LlamaIndex environment (skips when there is none)."""
    local = ROOT / ".venv-llamaindex" / "bin" / "python"
    for python in (os.environ.get("SPANLAKE_LLAMAINDEX_PYTHON"), str(local) if local.exists() else None):
        if (
            python
            and subprocess.run([python, "-c", "import llama_index.llms.openai"], capture_output=True).returncode == 0
        ):
            return python
    pytest.skip("LlamaIndex is not installed: run scripts/venv-llamaindex, or set SPANLAKE_LLAMAINDEX_PYTHON")


@contextmanager
def _fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI]]:
    """The fake OpenAI server, one that holds every answer SLOW_MS, and one that answers 503."""
    with FakeOpenAI() as fake, FakeOpenAI() as slow, FakeOpenAI() as down:
        slow.delay_s = SLOW_MS / 1000
        down.outage("503")  # every request, until the server stops
        yield fake, slow, down


@contextmanager
def started(data_dir: Path) -> Iterator[Runs]:
    """Every configuration run at once (the python of the LlamaIndex environment; skips without it)."""
    python = llamaindex_python()

    def launch(fakes: tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI], name: str, cfg: Config) -> Launch:
        fake, slow, down = fakes
        argv = [python, "-m", "tests.collector.instrumented_llamaindex", cfg.library, "--url", fake.base_url]
        argv += ["--slow-url", slow.base_url, "--down-url", down.base_url]
        return Launch(argv, cfg.protocol, ("OTEL_", "OPENAI_", "PYTHONPATH"))

    with run_configurations(data_dir, _fakes(), CONFIGS, launch, Runs) as r:
        yield r
