"""The reports: each takes an Analytics and Filters and returns a Polars DataFrame.

Each module declares its reports once (a module-level `Report`, analytics.reports.report:
name, summary, dimensions, parameters, the raw query and the rollup reader with its tables);
analytics.reports.registry collects them and runs any by name (`run_report`) for the CLI, the
API and the dashboard. To add a report, add a module here; nothing else lists reports.

The list: `registry.REPORTS`, or `spanlake report --help`. The raw report functions are
exported here for Python callers.
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
