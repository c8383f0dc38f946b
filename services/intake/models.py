"""Intake's own tables: referrals, offers, the provider directory, disclosures, outbox and inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime
from shared.inbox import InboxMixin
from shared.outbox import OutboxMixin, utcnow


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


class Offer(Base):
    __tablename__ = "offers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    provider_id: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(20))  # pending | accepted | declined | withdrawn
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decline_reason: Mapped[str | None] = mapped_column(String(20))


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    regions: Mapped[list[str]] = mapped_column(JSON)
    languages: Mapped[list[str]] = mapped_column(JSON)
    serves: Mapped[list[str]] = mapped_column(JSON)
    accepting: Mapped[bool] = mapped_column(Boolean)
    capacity: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


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
