"""What a comparison compares: the items one side (an experiment run, or one version's
production tasks) produced, each with whether it succeeded, what it cost and how long it took.
Offline sides come from an experiment's results (experiments.store), production sides from
the lake's tasks (experiments.production); the statistics (experiments.stats) and the gate
(experiments.gate) read nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One item of one side. `key` pairs items across sides (a dataset item id; None for
    production tasks, which are not paired). `success` None: not decided (an error before
    scoring counts as a failure, not as undecided). `cost_usd` None: unpriced or unknown.
    `failure_mode`: the label schema's failure mode when it failed, if known. `checks`: each
    scorer's verdict (name → passed)."""

    key: str | None
    success: bool | None
    cost_usd: float | None
    duration_ms: float | None
    failure_mode: str | None = None
    checks: Mapping[str, bool] = field(default_factory=dict)
    error: str | None = None
    trace_id: str | None = None
    output: str | None = None


@dataclass(frozen=True)
class Side:
    """The items of one side, with a name for reports (`v1`, an experiment id)."""

    name: str
    items: Sequence[Item]

    @property
    def paired_keys(self) -> set[str]:
        return {i.key for i in self.items if i.key is not None}
