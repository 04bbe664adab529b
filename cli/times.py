"""Times given on the command line: `24h`, `7d` (that long ago) or an ISO date/time."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from spanlake.analytics.spans import parse_duration

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # the window the API accepts too (server.api.common)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def parse_time(text: str | None, now: datetime) -> datetime | None:
    """'24h' (that long ago), an ISO date/time (UTC unless it says otherwise), or None."""
    if text is None:
        return None
    try:
        return now - parse_duration(text)
    except (ValueError, OverflowError):
        pass
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use a duration such as 24h or 7d, or an ISO time") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    try:
        ok = EARLIEST <= t <= LATEST
    except OverflowError:  # an offset that takes the time off the calendar
        ok = False
    if not ok:
        raise click.BadParameter(f"{text!r}: a time between 1970 and 2200")
    return t
