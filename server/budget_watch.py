"""The budget watch: a background job of the roles that serve the API (all, api).

Every SPANLAKE_BUDGET_INTERVAL seconds (default 60; 0: off) it takes the budgets file's
current set (the last good one when a hand edit broke the file), evaluates every budget in
ONE call into the query workers (low priority, so ingest never waits for it), keeps the
result as `latest` (the API's /budgets/status and /budgets list show it) and hands the
readings to `sink(readings, at)` when one is set (the alerts engine). A failed cycle (the
workers busy or restarting, a sink that raises) is logged and the next one runs on time;
nothing stops the loop but `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spanlake.analytics.budgets.budgets_file import BudgetsFile
from spanlake.analytics.budgets.evaluate import Evaluation, measure_all
from spanlake.analytics.budgets.measure import Reading
from spanlake.server.env import seconds_from_env
from spanlake.server.query_workers import Local, QueriesBusy, QueryPool

log = logging.getLogger(__name__)

INTERVAL_ENV = "SPANLAKE_BUDGET_INTERVAL"
DEFAULT_INTERVAL_S = 60.0
Sink = Callable[[Sequence[Reading], datetime], Any]


@dataclass(frozen=True)
class Latest:
    """The last cycle: its evaluation (None when there was nothing to evaluate) and the
    budgets file's problem at the time (None when it parsed)."""

    at: datetime
    evaluation: Evaluation | None
    file_error: str | None


def interval_from_env() -> float:
    """SPANLAKE_BUDGET_INTERVAL in seconds (0: off); a bad value is logged and the default used."""
    return seconds_from_env(INTERVAL_ENV, DEFAULT_INTERVAL_S)


class BudgetWatch:
    """`start()` (in the running event loop) and `await stop()`; `run_once()` for one cycle."""

    def __init__(self, budgets: BudgetsFile, queries: QueryPool, interval_s: float, sink: Sink | None = None) -> None:
        self.budgets, self.queries, self.interval_s, self.sink = budgets, queries, interval_s, sink
        self.latest: Latest | None = None
        self.cycles = 0  # cycles completed (with or without budgets)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop (no-op when the interval is 0 or it runs already); the first cycle runs at once."""
        if self.interval_s <= 0 or self.running:
            return
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="spanlake-budget-watch")

    async def stop(self) -> None:
        """Stop the loop; a cycle in progress is abandoned (its worker finishes on its own)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self, at: datetime | None = None) -> Latest:
        """Evaluate every budget of the file's current set at `at` (default now), keep the
        result as `latest` and hand the readings to the sink."""
        at = at or datetime.now(UTC)
        found, file_error = await asyncio.to_thread(self.budgets.status)
        evaluation = None
        if found.budgets:
            evaluation = await self.queries.run(measure_all, Local.ANALYTICS, found.budgets, at)
            for key, why in evaluation.failures:
                log.warning("budget %s: %s", key, why)
        self.latest = Latest(at, evaluation, file_error)
        if self.sink is not None and evaluation is not None:
            await asyncio.to_thread(self.sink, evaluation.readings, at)
        self.cycles += 1
        return self.latest

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.run_once()
            except QueriesBusy as e:  # the API's readers came first this time
                log.warning("budget evaluation skipped: %s", e)
            except Exception:  # the next cycle may work (workers restarted, file fixed): keep going
                log.exception("budget evaluation failed; trying again in %.0fs", self.interval_s)
            await asyncio.sleep(max(0.0, started + self.interval_s - loop.time()))
