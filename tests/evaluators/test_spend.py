"""The spend ledger: shared through a file, written at most once a second."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from spanlake.evaluators import spend
from spanlake.evaluators.spend import SpendLedger

DAY = date(2026, 12, 5)


def test_spend_is_written_at_most_once_a_second_and_on_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(spend.time, "monotonic", lambda: clock[0])
    a, b = SpendLedger(tmp_path), SpendLedger(tmp_path)  # two processes' ledgers on one data dir
    a.add("shop/g@v1", 0.25, DAY)  # the first add writes at once
    a.add("shop/g@v1", 0.5, DAY)  # within the second: kept in memory
    a.add("shop/h@v1", 1.0, DAY)
    assert a.spent("shop/g@v1", DAY) == 0.75 and a.spent("shop/h@v1", DAY) == 1.0  # its own view is whole
    assert b.spent("shop/g@v1", DAY) == 0.25 and b.spent("shop/h@v1", DAY) == 0.0
    clock[0] += spend.FLUSH_S
    a.add("shop/g@v1", 0.125, DAY)  # a second later: everything pending is written
    assert b.spent("shop/g@v1", DAY) == 0.875 and b.spent("shop/h@v1", DAY) == 1.0
    a.add("shop/g@v1", 2.0, DAY)
    a.flush()  # JudgeClient.close() does this
    assert b.spent("shop/g@v1", DAY) == a.spent("shop/g@v1", DAY) == 2.875
    assert SpendLedger(tmp_path).spent("shop/g@v1", DAY) == 2.875  # a restart reads what was written
