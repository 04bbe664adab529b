"""The metrics a budget can watch: for each, the report it is read from, the unit, which
direction is worse, and what counts as a sample (for `min_samples`).

Every figure comes from a report in analytics/reports through `run_report`, so a budget's
figure equals the report's figure for the same filters and window (analytics.budgets.measure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Worse = Literal["higher", "lower"]
Unit = Literal["ms", "usd", "fraction", "count", "score"]
STEPS = ("task", "llm", "retrieval", "tool")  # `step` of the latency metrics


@dataclass(frozen=True)
class Metric:
    """One metric: `report` is the report it is read from, `worse` the direction of a breach,
    `stepped` whether it takes `step` (task, llm, retrieval, tool), `task_scope` whether a
    budget on it may name a task (steps then count inside tasks of that name),
    `additive` whether it is a sum over the window (nothing in the window is a figure, 0, not
    missing data; a "previous 7d" baseline is its average per window)."""

    name: str
    summary: str
    report: str
    unit: Unit
    worse: Worse
    samples: str  # what min_samples counts
    stepped: bool = False
    task_scope: bool = True
    default_min_samples: int = 1
    additive: bool = False


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("p50_latency", "median duration of tasks (or of a step category: step = llm, ...)", "latency",
               "ms", "higher", "tasks or steps", stepped=True, default_min_samples=10),
        Metric("p95_latency", "95th percentile duration of tasks (or of a step category)", "latency",
               "ms", "higher", "tasks or steps", stepped=True, default_min_samples=20),
        Metric("p99_latency", "99th percentile duration of tasks (or of a step category)", "latency",
               "ms", "higher", "tasks or steps", stepped=True, default_min_samples=100),
        Metric("ttft_p95", "95th percentile time to first token of LLM calls", "latency",
               "ms", "higher", "LLM calls with a first-token time", default_min_samples=20),
        Metric("cost_per_successful_task", "cost of all tasks / successful tasks (USD)", "tasks",
               "usd", "higher", "tasks", default_min_samples=10),
        Metric("cost_per_task", "cost of all tasks / tasks (USD)", "tasks", "usd", "higher", "tasks",
               default_min_samples=10),
        Metric("spend", "cost of every priced LLM call in the window (USD)", "cost", "usd", "higher", "LLM calls",
               additive=True),
        Metric("success_rate", "successful tasks / tasks (0..1)", "tasks", "fraction", "lower", "tasks",
               default_min_samples=20),
        Metric("error_rate", "share of tasks (or steps) that ended in an error status (0..1)", "latency",
               "fraction", "higher", "tasks or steps", stepped=True, default_min_samples=20),
        Metric("timeout_rate", "share of tasks (or steps) that timed out (0..1)", "latency",
               "fraction", "higher", "tasks or steps", stepped=True, default_min_samples=20),
        Metric("slow_share", "share of tasks (or steps) slower than slow_ms (0..1)", "latency",
               "fraction", "higher", "tasks or steps", stepped=True, default_min_samples=20),
        Metric("validation_failure_rate", "failed validation checks / checks (0..1)", "validation",
               "fraction", "higher", "validation checks", default_min_samples=20),
        Metric("retry_rate", "LLM calls that retried a failed attempt / LLM calls (0..1)", "latency",
               "fraction", "higher", "LLM calls", task_scope=False, default_min_samples=20),
        Metric("unpriced_calls", "LLM calls of models without a price", "cost", "count", "higher", "LLM calls",
               additive=True),
        Metric("negative_feedback_share", "traces whose latest end-user vote is 'down' / traces with a vote (0..1)",
               "feedback", "fraction", "higher", "traces with a vote", default_min_samples=10),
        Metric("mean_feedback_score", "mean end-user feedback score (each user's latest per trace)", "feedback",
               "score", "lower", "feedback scores", default_min_samples=10),
        Metric("judge_pass_rate", "evaluators' passes / verdicts on the window's traces (0..1; report judge)",
               "judge", "fraction", "lower", "judge verdicts", default_min_samples=20),
        Metric("traffic", "tasks started in the window", "tasks", "count", "lower", "tasks", additive=True),
    )
}  # fmt: skip


def get(name: str) -> Metric:
    """The metric called `name`; ValueError naming the metrics when there is none."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; metrics: {', '.join(METRICS)}") from None
