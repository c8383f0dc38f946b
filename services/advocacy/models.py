"""advocacy's own tables: advocates, offers, cases and their timeline, plus the outbox and inbox.

Every row carries `provider_id` and every query filters on it: an instance serves one charity even if
its database were ever shared by mistake.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, object_session, relationship

from services.advocacy.continuity.deadlines import nature_of
from shared.access_log import AccessLogMixin
from shared.clock import utcnow
from shared.db import UTCDateTime
from shared.idempotency import IdempotencyKeyMixin
from shared.inbox import InboxMixin
from shared.outbox import OutboxMixin
from shared.sealed import DataKeyMixin, Sealed


class Base(DeclarativeBase):
    pass


def _referral_id(row: Any) -> str:
    return row.referral_id


def _case_referral_id(row: Any) -> str:
    """The data key of a case's note, contact or risk is its case's referral's."""
    session = object_session(row)
    case = session.get(Case, row.case_id) if session is not None else None
    if case is None:
        raise LookupError(f"{type(row).__name__} {row.id} names no case here")
    return case.referral_id


def _child_of(case: Any, referral: dict[str, Any] | None) -> None:
    if referral is not None:  # an erased case stays a child's, or not
        case.is_child = bool(referral.get("is_child"))


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
    # `coordinator` sees the whole provider's caseload on the advocate's page; `advocate` sees their own.
    role: Mapped[str] = mapped_column(String(20), default="advocate", server_default="advocate")
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
    # Stays here, never in an event; sealed under the referral's data key (shared.sealed), as every note below.
    decline_note_sealed: Mapped[bytes | None] = mapped_column("decline_note", LargeBinary)
    decline_note = Sealed("decline_note_sealed", "offers.decline_note", empty=None, referral=_referral_id)
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
    # The full referral, disclosed by intake after allocation: special-category data, kept only here, sealed.
    referral_sealed: Mapped[bytes | None] = mapped_column("referral", LargeBinary)
    referral = Sealed("referral_sealed", "cases.referral", empty=None, referral=_referral_id, on_set=_child_of)
    # Whether the referral is a child's, kept beside it in clear (set with it): the no-contact rule's query counts
    # by it.
    is_child: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A child's local authority (children's services), as intake resolved it and disclosed it with the referral:
    # every case.* and transition.* event names it, so notifications tells it too (issue 13).
    local_authority_org_id: Mapped[str | None] = mapped_column(String(100))
    local_authority_name: Mapped[str | None] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The no-contact rule (casework.contacts): the last contact that reached the person, and when the current
    # episode without one was announced (`case.contact_overdue`, once; a new reached contact ends the episode).
    last_reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    contact_overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

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


class IdempotencyKey(Base, IdempotencyKeyMixin):
    """A POST's Idempotency-Key and its first response (shared.idempotency)."""


# --- continuity of care (issue 4): the NRM record, its clocks, and transitions -------------------------


class NrmRecord(Base):
    """A case's National Referral Mechanism record. `region` chooses the policy rows (e.g. Scotland)."""

    __tablename__ = "nrm_records"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    nrm_reference: Mapped[str | None] = mapped_column(String(64))
    referred_on: Mapped[date | None] = mapped_column(Date)
    region: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class NrmDecision(Base):
    """A reasonable-grounds (rg) or conclusive-grounds (cg) decision, positive or negative, dated."""

    __tablename__ = "nrm_decisions"
    __table_args__ = (Index("ix_nrm_decisions_case", "case_id", "decided_on"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    stage: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(10))
    decided_on: Mapped[date] = mapped_column(Date)
    on_reconsideration: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class NrmReconsideration(Base):
    """A request that the competent authority reconsider a decision; its outcome is a later decision."""

    __tablename__ = "nrm_reconsiderations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("nrm_decisions.id"))
    requested_on: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def _nature_of_kind(context: Any) -> str:
    return nature_of(context.get_current_parameters()["kind"])


class Clock(Base):
    """A due date of a given `nature` (deadline, minimum, support_end: `continuity.deadlines`), set from
    its kind when created. `due_soon_fired_at` and `breached_fired_at` are set by the scheduler in the same
    transaction as the event they publish, with `UPDATE ... WHERE ... IS NULL`: each fires once; only a
    deadline is ever breached."""

    __tablename__ = "clocks"
    __table_args__ = (
        Index("ix_clocks_due_soon", "provider_id", "due_soon_fired_at", "notice_on"),
        Index("ix_clocks_breached", "provider_id", "breached_fired_at", "due_on"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    nature: Mapped[str] = mapped_column(String(20), default=_nature_of_kind)
    starts_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    notice_on: Mapped[date] = mapped_column(Date)
    policy_version: Mapped[str] = mapped_column(String(120))
    basis: Mapped[str] = mapped_column(String(200))
    transition_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_soon_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    breached_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Stopped: what it waited for happened (e.g. the decision was recorded); it fires no more.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_reason: Mapped[str | None] = mapped_column(String(100))


class Transition(Base):
    """A planned move: turning 18, relocation, move-on, a handover between advocates or providers."""

    __tablename__ = "transitions"
    __table_args__ = (Index("ix_transitions_due", "provider_id", "status", "planned_for"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20))
    planned_for: Mapped[date] = mapped_column(Date)
    date_basis: Mapped[str] = mapped_column(String(20), default="exact")  # exact | approximate
    receiving_agency: Mapped[str | None] = mapped_column(String(100))  # an organisation id on the platform
    receiving_provider_id: Mapped[str | None] = mapped_column(String(64))
    to_advocate_id: Mapped[str | None] = mapped_column(ForeignKey("advocates.id"))
    checklist: Mapped[dict[str, Any]] = mapped_column(JSON)
    origin: Mapped[str] = mapped_column(String(60))  # why it exists: a person, a child case, a positive CG
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # turning_18's: the young person's decision, consent_given or consent_refused (casework.consent).
    decision: Mapped[str | None] = mapped_column(String(20))
    # A relocation's destination: on completion the case's NRM region becomes it (issue 12 item 6).
    new_region: Mapped[str | None] = mapped_column(String(40))
    # A provider_handover offered to the receiving provider, answered by `respond_by`; `outcome` says how it
    # ended when it did not complete (declined with a code, unanswered).
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(40))


class Handover(Base):
    """A provider handover offered to this provider (`case.handover_offered`): its id is the sender's
    transition id; `summary` is the minimised one an offer keeps. Once accepted, the case stands on the offer
    row `handover-<id>` with the advocate chosen, counted in their caseload until the case arrives."""

    __tablename__ = "handovers"
    __table_args__ = (Index("ix_handovers_provider_status", "provider_id", "status", "respond_by"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    from_provider_id: Mapped[str] = mapped_column(String(64))
    referral_id: Mapped[str] = mapped_column(String(64), index=True)
    from_case_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    respond_by: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    advocate_id: Mapped[str | None] = mapped_column(ForeignKey("advocates.id"))
    decline_reason: Mapped[str | None] = mapped_column(String(20))
    decline_note_sealed: Mapped[bytes | None] = mapped_column("decline_note", LargeBinary)  # never in an event
    decline_note = Sealed("decline_note_sealed", "handovers.decline_note", empty=None, referral=_referral_id)


class CaseConsentRecord(Base):
    """The case's copy of a consent record (casework.consent): the advocate's own, each also sent to intake,
    which owns consent (`case.consent_recorded`), and a withdrawal intake told us of (`consent.withdrawn`)."""

    __tablename__ = "case_consent_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))  # nrm_referral | advocacy | data_sharing
    given: Mapped[bool] = mapped_column(Boolean)
    obtained_at: Mapped[datetime] = mapped_column(UTCDateTime())
    obtained_by: Mapped[str] = mapped_column(String(200))  # an advocate's id, or "referrer" for intake's
    interpreter_used: Mapped[bool] = mapped_column(Boolean, default=False)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(20))  # advocate | intake
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseSearchToken(Base):
    """One blind token of a case's names or reference (casework.search): a keyed HMAC, never the name."""

    __tablename__ = "case_search_tokens"
    __table_args__ = (Index("ix_case_search_tokens_digest", "provider_id", "digest"),)

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))


# --- an advocate's day (issue 13 items 2-3): the contact log, notes and risk flags ----------------------


class CaseContact(Base):
    """An attempt to reach the person (casework.contacts). The note is special-category: it stays here."""

    __tablename__ = "case_contacts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    method: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    interpreter_used: Mapped[bool] = mapped_column(Boolean, default=False)
    note_sealed: Mapped[bytes | None] = mapped_column("note", LargeBinary)  # never in an event, a log or the timeline
    note = Sealed("note_sealed", "case_contacts.note", empty=None, referral=_case_referral_id)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CaseNote(Base):
    """An advocate's note on a case (casework.notes): special-category, kept only at the charity."""

    __tablename__ = "case_notes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    text_sealed: Mapped[bytes] = mapped_column("text", LargeBinary)
    text = Sealed("text_sealed", "case_notes.text", empty="", referral=_case_referral_id)
    written_by: Mapped[str] = mapped_column(String(200))
    written_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RiskFlag(Base):
    """A safeguarding risk on an open case (casework.risks); a `high` one is announced at once."""

    __tablename__ = "risk_flags"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    level: Mapped[str] = mapped_column(String(10))
    review_on: Mapped[date] = mapped_column(Date)
    note_sealed: Mapped[bytes | None] = mapped_column("note", LargeBinary)  # never in an event, a log or the timeline
    note = Sealed("note_sealed", "risk_flags.note", empty=None, referral=_case_referral_id)
    raised_by: Mapped[str] = mapped_column(String(200))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PageSession(Base):
    """A signed-in session of the advocate's page (web.auth): the cookie holds only its random id, so signing
    out (`revoked_at`) or its end (`expires_at`, ADVOCACY_SESSION_HOURS) refuses the cookie wherever it was
    copied. `sub` is the advocate's id."""

    __tablename__ = "page_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sub: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AccessLog(Base, AccessLogMixin):
    """Who read which of this service's records (shared.access_log): append-only, removed by retention alone."""


class DataKey(Base, DataKeyMixin):
    """A referral's data key, wrapped by the KEK (shared.sealed); erasure deletes it (crypto-shredding)."""
