"""The notifications database: subscriptions, deliveries, who owns each referral, the inbox and the outbox
(notifications publishes one event: erasure.completed)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.access_log import AccessLogMixin
from shared.clock import utcnow
from shared.db import UTCDateTime
from shared.idempotency import IdempotencyKeyMixin
from shared.inbox import InboxMixin
from shared.outbox import OutboxMixin

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class Base(DeclarativeBase):
    pass


class Inbox(Base, InboxMixin):
    pass


class Outbox(Base, OutboxMixin):
    pass


class IdempotencyKey(Base, IdempotencyKeyMixin):
    """A POST's Idempotency-Key and its first response (shared.idempotency)."""


class Subscription(Base):
    """An org's webhook endpoint. Deleting one keeps the row (its deliveries stay visible) but stops it."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(100), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON)
    # Kept in the clear: HMAC signing needs the key itself. Returned once, at creation, never again.
    secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The secret before the last rotation, which also signs webhooks until it expires (domain.signing_secrets).
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def rotate(self, secret: str, now: datetime, overlap: timedelta) -> None:
        """Sign with `secret` from now on, and with the current one too for `overlap`. A second rotation within
        the overlap drops the oldest secret at once: at most two are ever valid."""
        self.previous_secret, self.previous_secret_expires_at = self.secret, now + overlap
        self.secret = secret


class ReferralOwner(Base):
    """Which org referred each referral (from intake's events), and which provider holds it now (from intake's
    allocation and transfer events): a provider's events are routed by the first and checked against the second."""

    __tablename__ = "referral_owners"

    referral_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(100))
    external_reference: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    provider_id: Mapped[str | None] = mapped_column(String(63))
    # When intake decided that provider holds it: an older allocation arriving late never wins.
    provider_since: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def hold(self, provider_id: str, since: datetime) -> bool:
        """intake allocated or transferred the referral to `provider_id` at `since`. Queues keep no order across
        a redelivery or a retry, so a decision older than the one recorded changes nothing (False)."""
        if self.provider_since is not None and self.provider_since >= since:
            return False
        self.provider_id, self.provider_since = provider_id, since
        return True


class Delivery(Base):
    """One event to one subscription: the signed body to send, and how sending it went so far."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # A redelivered event can never queue a second webhook (besides the inbox).
        UniqueConstraint("subscription_id", "event_id", name="uq_deliveries_subscription_event"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_org_created", "org_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(120), unique=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    org_id: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(64))
    # None for a delivery about no referral (webhook.ping).
    referral_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The exact JSON that is signed and sent: every attempt sends the same bytes.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The trace of the event that caused it: the webhook's `traceparent` continues it at the agency.
    traceparent: Mapped[str | None] = mapped_column(String(64))
    tracestate: Mapped[str | None] = mapped_column(String(512))

    @property
    def finished(self) -> bool:
        return self.status in (DELIVERED, FAILED)

    def requeue(self, now: datetime) -> None:
        """Send it again, as it was (the same webhook-id and bytes), with the whole retry schedule ahead of it:
        `attempts` counts the attempts since it was last queued."""
        self.status, self.attempts, self.next_attempt_at, self.delivered_at = PENDING, 0, now, None


class AccessLog(Base, AccessLogMixin):
    """Who read which of this service's records (shared.access_log): append-only, removed by retention alone."""
