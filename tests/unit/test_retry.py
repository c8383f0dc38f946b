"""The one backoff formula every loop uses (shared.retry)."""

from __future__ import annotations

import pytest

from shared.retry import DATABASE_OUTAGE, RECONNECT, REFUSED_ROW, UNSENT_ROW, Backoff

pytestmark = pytest.mark.unit


def test_a_wait_doubles_from_its_first_up_to_its_cap():
    assert [UNSENT_ROW.delay(n) for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert [REFUSED_ROW.delay(n) for n in (1, 2, 6, 7, 20)] == [60, 120, 1920, 3600, 3600]
    assert [DATABASE_OUTAGE.delay(n) for n in (1, 5, 6)] == [1, 16, 30]


def test_jitter_draws_between_half_and_all_of_the_wait():
    waits = [RECONNECT.delay(3) for _ in range(200)]
    assert all(0.4 <= w <= 0.8 for w in waits) and len(set(waits)) > 1
    assert all(0.75 <= RECONNECT.delay(50) <= 1.5 for _ in range(50))


def test_a_long_run_of_failures_reaches_the_cap_without_overflowing():
    assert Backoff(first=0.5, cap=10.0).delay(10_000) == 10.0
    assert Backoff(first=0.5, cap=10.0).delay(0) == 0.5  # a first call before any failure waits the first
