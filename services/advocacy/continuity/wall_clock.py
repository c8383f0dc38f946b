"""Time as a collaborator: clocks, transitions and the scheduler ask a wall clock for "now", so tests pass a
fake one and never sleep for days. Calendar days are UTC days (NRM durations are whole days)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol


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
    return clock.now().astimezone(UTC).date()
