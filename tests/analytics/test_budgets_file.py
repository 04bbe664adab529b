"""budgets.toml changed by the CLI and the API (analytics.budgets.budgets_file): the user's
comments and other entries stay, concurrent writers from two processes both land, a change
that would make the file invalid is refused with the file untouched, and a file broken by
hand keeps the last good set while saying what is wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spanlake.analytics.budgets.budgets_file import BudgetExists, BudgetsFile, NoSuchEntry
from spanlake.analytics.budgets.definition import BudgetError

HAND_WRITTEN = """\
# Budgets of the shop team
[[budget]]
name = "answer-p95"   # the one the SLO names
project = "shop"
metric = "p95_latency"
window = "15m"  # short, so it reacts
warning = 2500
critical = 3000

# where alerts go
[[destination]]
name = "team-hook"
type = "webhook"
url = "https://hooks.example.com/shop"
"""
SPEND = {"name": "spend", "project": "shop", "metric": "spend", "window": "24h", "critical": 40,
         "destinations": ["team-hook"]}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> BudgetsFile:
    (tmp_path / "budgets.toml").write_text(HAND_WRITTEN)
    return BudgetsFile(tmp_path, "shop")


def test_add_and_remove_keep_comments_and_other_entries(store: BudgetsFile) -> None:
    budget, created = store.put_budget(SPEND)
    assert created and budget.critical == 40.0 and budget.destinations == ("team-hook",)
    text = store.path.read_text()
    assert text == HAND_WRITTEN.replace(
        "critical = 3000\n",
        'critical = 3000\n\n[[budget]]\nname = "spend"\nproject = "shop"\nmetric = "spend"\nwindow = "24h"\n'
        'critical = 40\ndestinations = ["team-hook"]\n',
    )
    assert [b.name for b in store.read().budgets] == ["answer-p95", "spend"]
    store.remove_budget("shop", "spend")
    assert store.path.read_text() == HAND_WRITTEN  # back to the user's file, byte for byte


def test_replace_changes_only_what_changed(store: BudgetsFile) -> None:
    raw = {"name": "answer-p95", "project": "shop", "metric": "p95_latency", "window": "15m", "warning": 2000,
           "critical": 3000, "for": "5m"}  # fmt: skip
    budget, created = store.put_budget(raw)
    assert not created and budget.warning == 2000.0 and budget.for_.total_seconds() == 300
    text = store.path.read_text()
    assert 'name = "answer-p95"   # the one the SLO names' in text  # untouched lines keep their comments
    assert 'window = "15m"  # short, so it reacts' in text
    assert 'warning = 2000\ncritical = 3000\nfor = "5m"\n\n# where alerts go\n' in text  # new key before the gap
    assert len(store.read().budgets) == 1


def test_create_refuses_a_taken_name(store: BudgetsFile) -> None:
    raw = {"name": "answer-p95", "project": "shop", "metric": "traffic", "window": "1h", "critical": 1}
    with pytest.raises(BudgetExists, match="exists"):
        store.put_budget(raw, create=True)
    other_project = {**raw, "project": "beta"}  # names are per project
    assert store.put_budget(other_project, create=True)[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metric": "p42_latency"}, "unknown metric 'p42_latency'"),
        ({"window": "0m"}, "window must be longer than 0"),
        ({"window": "0"}, "window: not a duration"),
        ({"warning": "high"}, "warning must be a number"),
        ({"destinations": ["nobody"]}, "unknown destination 'nobody'"),
        ({"name": "check"}, "reserved"),
        ({"warning": 3000, "critical": 2000}, "critical \\(2000\\) must be at or above warning"),
    ],
)
def test_invalid_changes_are_refused_and_the_file_untouched(
    store: BudgetsFile, change: dict[str, object], message: str
) -> None:
    before = store.path.read_bytes()
    with pytest.raises(BudgetError, match=message):
        store.put_budget({**SPEND, **change})
    assert store.path.read_bytes() == before


def test_destinations(store: BudgetsFile) -> None:
    with pytest.raises(BudgetError, match="url must be an http"):
        store.put_destination({"name": "ops", "type": "webhook", "url": "not a url"})
    dest, created = store.put_destination({"name": "ops", "type": "email", "to": ["oncall@example.com"]})
    assert created and dest.to == ("oncall@example.com",)
    store.put_budget(SPEND)
    with pytest.raises(BudgetError, match=r"named by budget\(s\) shop/spend"):
        store.remove_destination("team-hook")
    with pytest.raises(NoSuchEntry):
        store.remove_destination("nobody")
    assert store.remove_destination("ops").name == "ops"
    assert [d.name for d in store.read().destinations] == ["team-hook"]


def test_a_file_broken_by_hand(store: BudgetsFile) -> None:
    assert [b.name for b in store.current().budgets] == ["answer-p95"] and store.error is None
    broken = HAND_WRITTEN.replace('metric = "p95_latency"', 'metric = "p95_latenc"')
    store.path.write_text(broken)
    found, error = store.status()
    assert [b.name for b in found.budgets] == ["answer-p95"]  # the last good set
    assert error is not None and "line 2" in error and "unknown metric 'p95_latenc'" in error
    with pytest.raises(BudgetError, match="fix the file by hand first"):
        store.put_budget(SPEND)
    assert store.path.read_text() == broken
    store.path.write_text(HAND_WRITTEN + "\n")
    assert store.status()[1] is None


WRITER = """
import sys
from spanlake.analytics.budgets.budgets_file import BudgetsFile
store = BudgetsFile(sys.argv[1], "shop")
for i in range(int(sys.argv[3])):
    store.put_budget({"name": f"{sys.argv[2]}-{i}", "metric": "traffic", "window": "1h", "critical": 1})
"""


def test_concurrent_writers_from_two_processes_both_land(store: BudgetsFile) -> None:
    n = 15
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(store.path.parent), who, str(n)])
        for who in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    names = {b.name for b in store.read().budgets}
    assert names == {"answer-p95"} | {f"{w}-{i}" for w in "ab" for i in range(n)}
    assert "# the one the SLO names" in store.path.read_text()
