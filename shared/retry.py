"""Backoff as data: how long each loop of the platform waits after failures in a row. One policy per kind
of wait, one formula for all, so that a change of mind (longer caps, no jitter) is made in one place."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """`first` seconds after the first failure, doubling with each failure in a row, at most `cap`. With
    `jitter`, each wait is drawn between half and all of that, so workers that lost one broker together do
    not all come back in the same instant."""

    first: float
    cap: float
    jitter: bool = False

    def delay(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row (1 for the first)."""
        doublings = min(max(failures, 1) - 1, 64)  # past 64 doublings every cap is reached; no float overflow
        wait = min(self.cap, self.first * 2.0**doublings)
        return wait * (0.5 + random.random() / 2) if self.jitter else wait


# A lost broker or database connection: reconnect at once, then at most every 1.5 s, so a loop is back
# within 2 s of the broker (or the database) taking connections again, handshake included. A cluster's other
# nodes are tried before any wait (shared.messaging.connection.Reconnect); the jitter spreads the workers.
RECONNECT = Backoff(first=0.2, cap=1.5, jitter=True)
# The webhook dispatcher's database outage.
DATABASE_OUTAGE = Backoff(first=1.0, cap=30.0)
# An outbox row the broker did not take (unroutable, nacked): again soon, then every 5 minutes at most.
UNSENT_ROW = Backoff(first=1.0, cap=300.0)
# An outbox row the broker refused (403: permissions): a minute, doubling to an hour.
REFUSED_ROW = Backoff(first=60.0, cap=3600.0)
# A handler's dependency briefly down (its database, another service's API, the broker): the consumer retries
# the message in place, in order, after 1 s, doubling to 30 s, then every 30 s (shared.messaging.consumer).
TRANSIENT = Backoff(first=1.0, cap=30.0)
