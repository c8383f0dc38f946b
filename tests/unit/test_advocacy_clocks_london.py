"""Clock days are Europe/London calendar days, not UTC days (issue 12): around midnight in BST the UK's date is
a day ahead of UTC's; in GMT they agree."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from services.advocacy.continuity import deadlines
from services.advocacy.continuity.policy import load_policy
from services.advocacy.continuity.wall_clock import FixedClock, today


@pytest.mark.parametrize(
    ("utc", "london_day"),
    [
        (datetime(2026, 5, 31, 22, 59, tzinfo=UTC), date(2026, 5, 31)),  # 23:59 BST
        (datetime(2026, 5, 31, 23, 0, tzinfo=UTC), date(2026, 6, 1)),  # 00:00 BST: UTC still says 31 May
        (datetime(2026, 5, 31, 23, 30, tzinfo=UTC), date(2026, 6, 1)),  # 00:30 BST
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), date(2026, 12, 31)),  # 23:30 GMT
        (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), date(2027, 1, 1)),  # 00:00 GMT
    ],
)
def test_today_is_the_london_calendar_day(utc, london_day):
    assert today(FixedClock(utc)) == london_day


def test_the_day_changes_at_london_midnight_across_the_clocks_going_forward_and_back():
    clock = FixedClock(datetime(2026, 3, 28, 23, 59, tzinfo=UTC))  # GMT, the night before BST starts
    assert today(clock) == date(2026, 3, 28)
    clock.advance(minutes=1)
    assert today(clock) == date(2026, 3, 29)
    clock.at = datetime(2026, 10, 24, 22, 59, tzinfo=UTC)  # 23:59 BST, the night before GMT returns
    assert today(clock) == date(2026, 10, 24)
    clock.advance(minutes=1)
    assert today(clock) == date(2026, 10, 25)


def test_any_timezone_and_a_naive_utc_time_give_the_same_london_day():
    assert today(FixedClock(datetime(2026, 6, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))))) == date(2026, 6, 1)
    assert today(FixedClock(datetime(2026, 5, 31, 23, 30))) == date(2026, 6, 1)  # naive: taken as UTC


def test_a_clock_set_just_after_midnight_bst_counts_from_the_london_day():
    just_after_midnight = today(FixedClock(datetime(2026, 5, 31, 23, 15, tzinfo=UTC)))
    [window] = deadlines.on_decision(load_policy(), "rg", "negative", just_after_midnight, "london")
    assert (window.starts_on, window.due_on) == (date(2026, 6, 1), date(2026, 7, 1))
