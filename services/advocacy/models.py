"""advocacy's own tables: advocates, offers, cases and their timeline, plus the outbox and inbox.

Every row carries `provider_id` and every query filters on it: an instance serves one charity even if
its database were ever shared by mistake.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.db import UTCDateTime
from shared.inbox import InboxMixin
from shared.outbox import OutboxMixin, utcnow


class Base(DeclarativeBase):
    pass


class Advocate(Base):
    __tablename__ = "advocates"
    __table_args__ = (UniqueConstraint("provider_id", "email", name="uq_advocates_provider_email"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    languages: Mapped[list[str]] = mapped_column(JSON)
    max_caseload: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Offer(Base):
    """An offer of a referral to this provider; its id is intake's `offer_id`."""

    __tablename__ = "offers"
    __table_args__ = (Index("ix_offers_provider_status", "provider_id", "status", "offered_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decline_reason: Mapped[str | None] = mapped_column(String(20))
    decline_note: Mapped[str | None] = mapped_column(Text)  # stays here: never in an event
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    case: Mapped[Case | None] = relationship(back_populates="offer", uselist=False)

    @property
    def case_id(self) -> str | None:
        return self.case.id if self.case else None


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_provider_status", "provider_id", "status", "opened_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[str] = mapped_column(String(64), index=True)
    # Unique: one offer becomes at most one case, whatever races between two accepts.
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"), unique=True)
    advocate_id: Mapped[str] = mapped_column(ForeignKey("advocates.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    # The full referral, disclosed by intake after allocation: special-category data, kept only here.
    referral: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    offer: Mapped[Offer] = relationship(back_populates="case")
    advocate: Mapped[Advocate] = relationship()
    timeline: Mapped[list[TimelineEntry]] = relationship(
        primaryjoin="Case.offer_id == foreign(TimelineEntry.offer_id)",
        order_by="(TimelineEntry.at, TimelineEntry.seq)",
        viewonly=True,
    )


class TimelineEntry(Base):
    """What happened to an offer and the case it became. `detail` holds ids and codes, never personal data."""

    __tablename__ = "timeline_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(String(500), default="")


class Outbox(Base, OutboxMixin):
    pass


class Inbox(Base, InboxMixin):
    pass
