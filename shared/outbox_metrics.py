"""The outbox's figures, read from a service's own database when `/metrics` is scraped (shared.metrics):
how many events wait for the relay, and how long the oldest of them has waited.

A pending row is one not yet confirmed by the broker (`sent_at` unset): the relay's backlog. A few rows for
a moment are normal (each waits for its publisher confirm); a count that grows, or an age of minutes, means
the relay is down or the broker refuses what it publishes (deploy/RUNBOOK.md, "Outbox lag").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from shared import metrics
from shared.clock import utcnow
from shared.outbox import OutboxMixin


def outbox_figures(
    sessions: sessionmaker, model: type[OutboxMixin], service: str, *, now: Callable[[], datetime] = utcnow
) -> metrics.Figures:
    """`referrals_outbox_pending` and `referrals_outbox_oldest_pending_seconds` of `service`'s outbox table
    `model`: one query on the pending index (ix_outbox_pending), on a session from `sessions`."""
    table = model.__table__  # type: ignore[attr-defined]  # the mixin's concrete table class has one
    pending_rows = select(func.count(), func.min(table.c.created_at)).where(table.c.sent_at.is_(None))

    def read() -> Iterator[Metric]:
        # Scraped every few seconds: the query stays out of the traces, as the relay's idle poll does.
        with suppress_instrumentation(), sessions() as session:
            count, oldest = session.execute(pending_rows).one()
        pending = GaugeMetricFamily(
            metrics.OUTBOX_PENDING,
            "Events written to the outbox and not yet confirmed by the broker.",
            labels=["service"],
        )
        pending.add_metric([service], count)
        yield pending
        age = GaugeMetricFamily(
            metrics.OUTBOX_OLDEST_PENDING_SECONDS,
            "How long the oldest event not yet confirmed by the broker has waited in the outbox (0: none waits).",
            labels=["service"],
        )
        age.add_metric([service], seconds_since(oldest, now()))
        yield age

    return read


def seconds_since(then: datetime | None, now: datetime) -> float:
    """How long ago `then` was, in seconds; 0 when there is none (nothing waits) or it is in the future (a clock
    a little ahead on another machine)."""
    if then is None:
        return 0.0
    return max((now - then).total_seconds(), 0.0)
