"""notifications' figure, read from its database when `/metrics` is scraped (shared.metrics.add_figures).

`referrals_webhook_oldest_pending_seconds`: how long the oldest webhook neither delivered nor given up on has
waited since its event arrived (0 when none waits). A receiver that fails keeps its deliveries pending
through the retry schedule (about four days), so the age grows while an agency is unreachable; the attempts
themselves are counted by outcome in `referrals_webhook_deliveries_total` (the dispatcher).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.notifications.models import PENDING, Delivery
from shared import metrics
from shared.clock import utcnow
from shared.outbox_metrics import seconds_since


def notifications_figures(sessions: sessionmaker, *, now: Callable[[], datetime] = utcnow) -> metrics.Figures:
    """One query on the dispatcher's index (ix_deliveries_due: status first), on a session from `sessions`."""
    oldest_pending = select(func.min(Delivery.created_at)).where(Delivery.status == PENDING)

    def read() -> Iterator[Metric]:
        # Scraped every few seconds: out of the traces, as the dispatcher's idle claims are.
        with suppress_instrumentation(), sessions() as session:
            oldest = session.scalar(oldest_pending)
        yield GaugeMetricFamily(
            metrics.WEBHOOK_OLDEST_PENDING_SECONDS,
            "How long the oldest webhook neither delivered nor given up on has waited (0: none waits).",
            value=seconds_since(oldest, now()),
        )

    return read
