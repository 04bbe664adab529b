"""The reports: each takes an Analytics and Filters and returns a Polars DataFrame.

latency      tasks end to end and each step category: percentiles, errors, retries, TTFT
cost         calls, tokens and cost; tasks, success rate, cost per (successful) task
unpriced     models called without a price
tasks        tasks by outcome and outcome source, success rate, duration, cost
task-list    single tasks, slowest or most expensive first
validation   validation failure rate per validator (and model, prompt version, time)
validation-errors  most frequent failure messages
retrieval    per data source: queries, documents per query, empty rate, scores, latency
retrieved-documents  the documents retrieved most often
compare      two prompt versions or two models side by side
"""

from spanlake.analytics.reports.compare import compare
from spanlake.analytics.reports.cost import cost, unpriced
from spanlake.analytics.reports.latency import latency
from spanlake.analytics.reports.retrieval import retrieval, retrieved_documents
from spanlake.analytics.reports.tasks import task_list, tasks
from spanlake.analytics.reports.validation import validation, validation_errors

__all__ = [
    "compare",
    "cost",
    "latency",
    "retrieval",
    "retrieved_documents",
    "task_list",
    "tasks",
    "unpriced",
    "validation",
    "validation_errors",
]
