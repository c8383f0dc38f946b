"""Percentiles and the backlog test, kept apart so they read (and could be tested) on their own."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def percentiles(values_ms: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values_ms)
    if not ordered:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(percentile(ordered, 0.95), 1),
        "p99_ms": round(percentile(ordered, 0.99), 1),
        "max_ms": round(ordered[-1], 1),
    }


def backlog_growing(outstanding: Sequence[int], rate: float) -> bool:
    """True when work piles up during a step: the referrals posted but not yet notified, averaged over the
    last quarter of the step, exceed those of the second quarter by more than a quarter-second of arrivals
    (and by more than 10, so that jitter at low rates does not count)."""
    n = len(outstanding)
    if n < 4:
        return False
    second = outstanding[n // 4 : n // 2]
    last = outstanding[3 * n // 4 :]
    return statistics.fmean(last) - statistics.fmean(second) > max(10.0, 0.25 * rate)
