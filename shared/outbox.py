"""The transactional outbox: an event is a row written in the same transaction as the change it reports.

A request or handler never talks to RabbitMQ; the relay (shared.messaging.relay) publishes the row with
publisher confirms and marks it sent only after the broker confirms. The trace context travels on the row,
so the trace continues across the gap between commit and publish.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.clock import utcnow
from shared.db import UTCDateTime


class OutboxMixin:
    """Columns of a service's `outbox` table (each service declares `class Outbox(Base, OutboxMixin)`)."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # = the event id = AMQP message_id
    type: Mapped[str] = mapped_column(String(100))
    routing_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    traceparent: Mapped[str | None] = mapped_column(String(64))
    tracestate: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))

    @declared_attr.directive
    def __table_args__(cls):
        return (Index("ix_outbox_pending", "sent_at", "next_attempt_at"),)
