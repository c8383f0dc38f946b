"""intake's figures, read from its database when `/metrics` is scraped (shared.metrics.add_figures): what waits
on someone, counted, never who. One indexed query each (migration 0011_figures_indexes).

- `referrals_offers_overdue`: offers whose answer deadline passed without an answer from the charity, in the
  last OVERDUE_WINDOW: those the deadline sweep already expired (the referral moved on to the next charity, or
  to the coordinators), and any still pending past the deadline (the sweep is behind, or not running).
- `referrals_escalations_open`: entries in the coordinators' queue (GET /v1/escalations): referrals nobody could
  take, and people in immediate danger.
- `referrals_erasures_overdue`: erasure requests sent to a recipient (a charity, notifications) that has not
  confirmed within ERASURE_ACK_HOURS (what GET .../erasure shows as `overdue`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Final

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from services.intake.models import ErasureRecipient, Escalation, Offer, Referral, in_coordinators_queue
from shared import metrics
from shared.clock import utcnow

# How long an offer that expired unanswered stays counted: long enough for a scrape, and an alert's `for:`, to
# see each one; short enough that the figure is back to 0 within the hour once charities answer again.
OVERDUE_WINDOW: Final = timedelta(hours=1)


def offers_overdue(session: Session, now: datetime) -> int:
    deadline_passed = Offer.respond_by <= now
    expired_lately = and_(Offer.status == "expired", Offer.respond_by > now - OVERDUE_WINDOW)
    statement = select(func.count()).where(deadline_passed, or_(Offer.status == "pending", expired_lately))
    return session.scalar(statement) or 0


def escalations_open(session: Session) -> int:
    queue = select(func.count()).select_from(Escalation).join(Referral, Referral.id == Escalation.referral_id)
    return session.scalar(queue.where(in_coordinators_queue())) or 0


def erasures_overdue(session: Session, now: datetime, ack: timedelta) -> int:
    silent = and_(ErasureRecipient.confirmed_at.is_(None), ErasureRecipient.requested_at < now - ack)
    return session.scalar(select(func.count()).select_from(ErasureRecipient).where(silent)) or 0


def intake_figures(
    sessions: sessionmaker, *, erasure_ack: timedelta, now: Callable[[], datetime] = utcnow
) -> metrics.Figures:
    """intake's three figures, on a session from `sessions`; `erasure_ack` is ERASURE_ACK_HOURS."""

    def read() -> Iterator[Metric]:
        at = now()
        # Scraped every few seconds: out of the traces, as the relay's idle poll is.
        with suppress_instrumentation(), sessions() as session:
            found = {
                metrics.OFFERS_OVERDUE: offers_overdue(session, at),
                metrics.ESCALATIONS_OPEN: escalations_open(session),
                metrics.ERASURES_OVERDUE: erasures_overdue(session, at, erasure_ack),
            }
        for name, value in found.items():
            yield GaugeMetricFamily(name, HELP[name], value=value)

    return read


HELP: Final = {
    metrics.OFFERS_OVERDUE: "Offers whose answer deadline passed unanswered in the last hour, or pending past it.",
    metrics.ESCALATIONS_OPEN: "Referrals waiting in the coordinators' escalation queue.",
    metrics.ERASURES_OVERDUE: "Erasure requests a recipient has not confirmed within ERASURE_ACK_HOURS.",
}
