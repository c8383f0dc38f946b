"""Intake's own tables: referrals, offers, the provider directory, disclosures, outbox and inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.clock import utcnow
from shared.db import UTCDateTime
from shared.inbox import InboxMixin
from shared.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (UniqueConstraint("org_id", "external_reference", name="uq_referrals_org_reference"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(100), index=True)
    external_reference: Mapped[str] = mapped_column(String(64))
    # sha256 of the request body as sent: tells a replay (200) from a conflicting reuse (409).
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    pathway: Mapped[str] = mapped_column(String(20))
    is_child: Mapped[bool] = mapped_column(Boolean)
    region: Mapped[str] = mapped_column(String(40))
    referred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # The referral as submitted; for a Duty to Notify, without any identifier (domain.without_identifiers).
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    provider_id: Mapped[str | None] = mapped_column(String(63))
    case_id: Mapped[str | None] = mapped_column(String(36))
    advocate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def move_to(self, status: str, at: datetime) -> None:
        """The one place a referral's status changes, and with it `updated_at`. Where it is already (a new
        referral inserted with the status routing chose for it) nothing changes, so no UPDATE follows the
        INSERT of the same row."""
        if self.status != status:
            self.status, self.updated_at = status, at


class Offer(Base):
    __tablename__ = "offers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(63))
    # pending | accepted | declined | expired | withdrawn; `offered_by` is "routing" or a coordinator's subject
    status: Mapped[str] = mapped_column(String(20))
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decline_reason: Mapped[str | None] = mapped_column(String(20))
    offered_by: Mapped[str] = mapped_column(String(200), default="routing")


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    regions: Mapped[list[str]] = mapped_column(JSON)
    languages: Mapped[list[str]] = mapped_column(JSON)
    serves: Mapped[list[str]] = mapped_column(JSON)
    accepting: Mapped[bool] = mapped_column(Boolean)
    capacity: Mapped[int] = mapped_column(Integer)
    sexes: Mapped[list[str] | None] = mapped_column(JSON)  # a sex-specific service; None serves everyone
    # When the provider's own instance last reported its spare places (provider.capacity_changed).
    capacity_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Escalation(Base):
    """A referral a coordinator must look at: nobody could take it, or the person is in immediate danger."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    reason: Mapped[str] = mapped_column(String(40))  # no_eligible_provider | all_declined | immediate_danger
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_by: Mapped[str | None] = mapped_column(String(200))


class Disclosure(Base):
    """Every time a referral's personal data leaves intake: to whom, when, why (UK GDPR Art. 19 needs the
    list of recipients so that an erasure reaches each of them)."""

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    recipient_org: Mapped[str] = mapped_column(String(100))
    recipient_sub: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(100))
    disclosed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Outbox(Base, OutboxMixin):
    pass


class Inbox(Base, InboxMixin):
    pass
