"""What the agent framework tests share (test_instrumentations_openai_agents.py, ..._pydantic_ai.py).

Every configuration's process runs at once against one collector and one fake OpenAI server
(`agent_runs`); a run is then read as spanlake shows it: the trace view's tree (`outline`), the
task the trace counts as (`task`), each LLM call with its cost. The expected numbers are the fake
server's documented rule (spanlake.demo.fake_openai, ..._responses), worked out by hand here;
they are the same for the Responses API (instructions counted as one input item) and Chat
Completions (the system message counted as one message).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genai_prices import Usage, calc_price

from spanlake.analytics.reports.tasks import task_list
from spanlake.analytics.runner import Analytics
from spanlake.analytics.spans import Filters
from spanlake.analytics.traces.detail import TraceDetail, trace_detail
from spanlake.demo.fake_openai import FakeOpenAI
from tests.collector.instrumented_agents import FORECAST, MODEL, QUESTION, SYSTEM, WEATHER
from tests.collector.instrumented_runs import Launch, Runs, observed_lines, run_configurations

ROOT = Path(__file__).parents[2]
RESPONSE_MODEL = MODEL + "-2025-01-01"  # what the fake answers; genai-prices prices it as gpt-5-nano
REPLY = f"Fake reply: {QUESTION}"  # 8 words
WEATHER_REPLY = f"Fake reply: {WEATHER}"  # 9 words
TOOL_ARGUMENTS = {"location": "Paris"}
TOOL_CALL_ID = "call_fake_0"


@dataclass(frozen=True)
class Call:
    """One model call's usage by the fake's rule: input = words of the instructions and every
    input item; cached = input // 2; reasoning = number of items, the instructions included;
    output = visible words + reasoning."""

    input: int
    cached: int
    reasoning: int
    output: int

    def cost(self, model: str = RESPONSE_MODEL, cached: bool = True) -> float:
        """genai-prices' own price of the call (its input_tokens include the cached ones);
        `cached=False`: as priced when the cached count was not sent."""
        usage = Usage(
            input_tokens=self.input, cache_read_tokens=self.cached if cached else 0, output_tokens=self.output
        )
        return float(calc_price(usage, model, provider_id="openai").total_price)


assert (len(SYSTEM.split()), len(QUESTION.split()), len(WEATHER.split()), len(FORECAST.split())) == (3, 6, 7, 4)
CHAT = Call(input=3 + 6, cached=4, reasoning=2, output=8 + 2)  # instructions + question
TOOL_CALL = Call(input=3 + 7, cached=5, reasoning=2, output=3 + 2)  # 'get_weather {"location": "Paris"}'
AFTER_TOOL = Call(input=3 + 7 + 4, cached=7, reasoning=4, output=9 + 4)  # + the call (0 words) + its result


@dataclass(frozen=True)
class Config:
    runner: str  # the instrumented process's CONFIG argument
    protocol: str


@contextmanager
def agent_runs(module: str, configs: dict[str, Config], data_dir: Path) -> Iterator[AgentRuns]:
    """Run `python -m <module>` once per configuration, all at once, each under its own project."""

    def launch(fake: FakeOpenAI, name: str, cfg: Config) -> Launch:
        argv = [sys.executable, "-m", module, cfg.runner, "--url", fake.base_url]
        return Launch(argv, cfg.protocol, ("OTEL_", "OPENAI_"))

    fake = FakeOpenAI()
    with run_configurations(data_dir, fake, configs, launch, AgentRuns) as runs:
        runs.model_requests = fake.requests
        yield runs


@dataclass
class AgentRuns(Runs):
    model_requests: int = 0  # requests the fake server received, from every configuration
    _details: dict[tuple[str, str], TraceDetail] = field(default_factory=dict)
    _tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def detail(self, config: str, scenario: str) -> TraceDetail:
        """The trace as the trace view shows it (spans in tree order, with depth and cost); read once."""
        if (config, scenario) not in self._details:
            detail = trace_detail(Analytics(self.collector.data_dir), self.trace(config, scenario), config)
            assert detail is not None, (config, scenario)
            self._details[config, scenario] = detail
        return self._details[config, scenario]

    def outline(self, config: str, scenario: str) -> list[str]:
        """The trace view's tree: one `name [category]` line per span, indented by depth."""
        return [f"{'  ' * s['depth']}{s['name']} [{s['category']}]" for s in self.detail(config, scenario).spans]

    def spans(self, config: str, scenario: str, category: str, scope: str | None = None) -> list[dict[str, Any]]:
        """The trace's spans of one category (and scope), in tree order."""
        spans = self.detail(config, scenario).spans
        return [s for s in spans if s["category"] == category and scope in (None, s["scope_name"])]

    def task(self, config: str, scenario: str) -> dict[str, Any]:
        """The row of the tasks report (task-list) of the trace: the trace's one task."""
        if config not in self._tasks:
            self._tasks[config] = task_list(
                Analytics(self.collector.data_dir), Filters(project=config), limit=100
            ).to_dicts()
        (row,) = [r for r in self._tasks[config] if r["trace_id"] == self.trace(config, scenario)]
        return row


def content(span: dict[str, Any]) -> dict[str, Any]:
    """A span's content column (the trace detail parses it; a raw row holds JSON text)."""
    raw = span["content"]
    return json.loads(raw) if isinstance(raw, str) else dict(raw or {})


def render_observed(runs: AgentRuns, configs: dict[str, Config]) -> str:
    """Per configuration: span names (kind, scope), attribute and content keys, span events."""
    out = []
    for config, cfg in configs.items():
        spans = runs.observed(config)  # an agent run has no scenario span around it: every span
        out += [f"### `{config}`", "", f"- over OTLP/{cfg.protocol}", *observed_lines(spans), ""]
    return "\n".join(out)
