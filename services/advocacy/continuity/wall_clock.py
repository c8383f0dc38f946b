"""Time as a collaborator: clocks, transitions and the scheduler ask a wall clock for "now", so tests pass a
fake one and never sleep for days. Calendar days are Europe/London days (NRM durations are whole days, and a
decision dated in the UK is dated on the UK's calendar: 00:30 BST on 1 June is 1 June, not 31 May in UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


class WallClock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A wall clock that only moves when told to (tests, demo seeding)."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def today(clock: WallClock) -> date:
    """The calendar day in Europe/London (GMT in winter, BST in summer). A naive `now()` is taken as UTC."""
    now = clock.now()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(LONDON).date()
