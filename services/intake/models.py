"""Intake's own records: referrals, offers, the provider directory, escalations, disclosures, outbox and inbox.

A `Referral` is also where what happens to one is decided (cosmicpython's `Product.allocate`): each of its
methods sets its status, through `move_to` alone, and records the event that reports it in `events`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, reconstructor, relationship

from contracts import events
from services.intake.domain import (
    NOTIFIED_PATHWAYS,
    OFFERABLE,
    CannotOffer,
    InvalidState,
    Pathway,
    can_withdraw,
    offer_summary,
)
from shared.access_log import AccessLogMixin
from shared.clock import utcnow
from shared.db import UTCDateTime
from shared.idempotency import IdempotencyKeyMixin
from shared.inbox import InboxMixin
from shared.messaging.catalogue import EventData
from shared.outbox import OutboxMixin
from shared.sealed import DataKeyMixin, Sealed

News = TypeVar("News", bound=events.ReferralNews)


class Base(DeclarativeBase):
    pass


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (UniqueConstraint("org_id", "external_reference", name="uq_referrals_org_reference"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(100), index=True)
    # The referrer's reference; for an anonymous referral (the Duty to Notify pathway) only its keyed hash
    # (`reference_keyed`; services.intake.referral_keys), which no event carries.
    external_reference: Mapped[str] = mapped_column(String(64))
    reference_keyed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The keyed hash of the request body as sent: tells a replay (200) from a conflicting reuse (409).
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    pathway: Mapped[str] = mapped_column(String(20))
    is_child: Mapped[bool] = mapped_column(Boolean)
    region: Mapped[str] = mapped_column(String(40))
    referred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # The referral as submitted (for an adult without NRM consent, without any identifier:
    # domain.without_identifiers), sealed under the referral's data key (shared.sealed): {} once erased.
    body_sealed: Mapped[bytes] = mapped_column("body", LargeBinary)
    body = Sealed("body_sealed", "referrals.body", empty={}, referral=attrgetter("id"))
    # The Duty to Notify rule that bound the referrer where the person was found (duty_to_notify_rules.csv),
    # or None. A rule id is shared by every referral under it: it does not link to any DtN record.
    duty_to_notify_rule: Mapped[str | None] = mapped_column(String(40))
    provider_id: Mapped[str | None] = mapped_column(String(63))
    case_id: Mapped[str | None] = mapped_column(String(36))
    advocate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A child's children's services, resolved from location.local_authority at referral (agencies.resolve):
    # every later event about the child names it, so notifications tells it too.
    local_authority_org_id: Mapped[str | None] = mapped_column(String(100))
    # When its personal data was erased (services.intake.erasure): what is left are codes and dates.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __init__(self, **columns: Any):
        super().__init__(**columns)
        self.events: list[EventData] = []

    @reconstructor
    def _loaded(self) -> None:
        self.events = []

    # --- what happens to a referral: each sets its status (move_to) and records the event that reports it.
    # The unit of work stages what its referrals recorded when it commits (IntakeUnitOfWork.stage_recorded).

    @classmethod
    def receive(
        cls,
        *,
        org_id: str,
        external_reference: str,
        request_hash: str,
        pathway: Pathway,
        region: str,
        referred_at: datetime,
        body: dict[str, Any],
        at: datetime,
        duty_to_notify_rule: str | None = None,
        local_authority_org_id: str | None = None,
        reference_keyed: bool = False,
    ) -> Referral:
        referral = cls(
            id=str(uuid.uuid4()),
            org_id=org_id,
            external_reference=external_reference,
            reference_keyed=reference_keyed,
            request_hash=request_hash,
            status=pathway.initial_status,
            pathway=pathway.pathway,
            is_child=pathway.is_child,
            region=region,
            referred_at=referred_at,
            received_at=at,
            updated_at=at,
            body=body,
            duty_to_notify_rule=duty_to_notify_rule,
            local_authority_org_id=local_authority_org_id,
        )
        received = events.ReferralReceived(
            referral_id=referral.id,
            org_id=org_id,
            external_reference=referral.reference_for_referrer,
            status=cast(events.ReferralStatus, pathway.initial_status),  # as it arrived, before routing
            pathway=cast(events.Pathway, pathway.pathway),
            is_child=pathway.is_child,
            region=cast(events.Region, region),  # the validated body's codes
            local_authority_org_id=local_authority_org_id,
        )
        referral.events.append(received)
        return referral

    def ensure_offerable(self) -> None:
        if self.status not in OFFERABLE:
            raise CannotOffer(f"a referral that is {self.status} cannot be offered")

    def offer(self, provider_id: str, *, at: datetime, respond_by: datetime, offered_by: str) -> Offer:
        """Offered to one provider, who has until `respond_by` to answer; the provider alone hears of it."""
        self.ensure_offerable()
        offer = Offer(
            id=str(uuid.uuid4()),
            referral_id=self.id,
            provider_id=provider_id,
            status="pending",
            offered_at=at,
            respond_by=respond_by,
            offered_by=offered_by,
        )
        self.move_to("offered", at)
        summary = offer_summary(self.body, Pathway(self.pathway, self.is_child, True))
        self.events.append(
            events.ReferralOffered(  # addressed: routing key referral.offered.<provider_id>
                referral_id=self.id,
                offer_id=offer.id,
                provider_id=provider_id,
                org_id=self.org_id,
                offered_at=at,
                respond_by=respond_by,
                summary=events.ReferralSummary(**summary),
            )
        )
        return offer

    def escalate(self, reason: str, at: datetime) -> Escalation:
        """Nobody can take it: it waits in the coordinators' queue, and the referrer hears why."""
        self.move_to("escalated", at)
        return self._escalation(reason, at)

    def alert(self, at: datetime) -> Escalation | None:
        """In immediate danger: a coordinator is alerted at once, while the offer (if any) goes out too. One
        already escalated is in front of a coordinator: None."""
        if self.status == "escalated":
            return None
        return self._escalation("immediate_danger", at)

    @property
    def in_immediate_danger(self) -> bool:
        return bool((self.body.get("risk") or {}).get("immediate_danger"))

    def accept(self, offer: Offer, *, case_id: str, advocate: dict[str, str], at: datetime) -> None:
        """The provider took it: allocated, with its case and advocate. The referrer hears of it; the provider
        is told to open its case (addressed to it alone)."""
        offer.close("accepted", at)
        self.move_to("allocated", at)
        self.provider_id, self.case_id, self.advocate, self.accepted_at = offer.provider_id, case_id, advocate, at
        self.events.append(self._news(events.ReferralAllocated, provider_id=offer.provider_id, case_id=case_id))
        self.events.append(
            events.AllocationConfirmed(
                referral_id=self.id, offer_id=offer.id, provider_id=offer.provider_id, case_id=case_id
            )
        )

    def decline(self, offer: Offer, reason: str, at: datetime) -> None:
        """The provider cannot take it (a coded reason); offering.py moves it on."""
        offer.close("declined", at)
        offer.decline_reason = reason
        self.updated_at = at

    def expire(self, offer: Offer, at: datetime) -> None:
        """The provider did not answer in time; offering.py moves it on."""
        offer.close("expired", at)
        self.events.append(events.OfferExpired(referral_id=self.id, offer_id=offer.id, provider_id=offer.provider_id))

    def withdraw(self, offers: Iterable[Offer], at: datetime) -> None:
        """The referrer withdrew it: a pending offer is cancelled, and each provider holding a pending offer or
        the case hears of it, addressed to it alone."""
        if not can_withdraw(self.status):
            raise InvalidState(f"a referral that is {self.status} cannot be withdrawn")
        holders: dict[str, str | None] = {}
        for offer in offers:
            if offer.status == "pending":
                offer.close("withdrawn", at)
                holders[offer.provider_id] = offer.id
            elif offer.status == "accepted" and offer.provider_id == self.provider_id:
                holders[offer.provider_id] = offer.id
        if self.provider_id and self.provider_id not in holders:  # a case handed over to it
            holders[self.provider_id] = None
        provider_id = self.provider_id or next(iter(holders), None)
        self.move_to("withdrawn", at)
        self.events.append(self._news(events.ReferralWithdrawn, provider_id=provider_id))
        for holder, offer_id in holders.items():
            self.events.append(events.OfferWithdrawn(referral_id=self.id, offer_id=offer_id, provider_id=holder))

    def transfer(self, receiver: str, at: datetime) -> None:
        """Its case was handed over to another provider: the allocation moves with it, so the receiver may read
        the referral and nobody asks the survivor again. The receiver opens its own case and advocate."""
        sender = cast(str, self.provider_id)
        self.provider_id, self.case_id, self.advocate, self.updated_at = receiver, None, None, at
        self.events.append(self._news(events.ReferralTransferred, provider_id=receiver, from_provider_id=sender))
        self.events.append(
            events.AllocationTransferred(referral_id=self.id, provider_id=receiver, from_provider_id=sender)
        )

    @property
    def duty_to_notify_recorded(self) -> bool:
        """An anonymous Duty to Notify record was made for it (stored apart: nothing here points to it)."""
        return self.pathway in NOTIFIED_PATHWAYS

    @property
    def reference_for_referrer(self) -> str | None:
        """The external reference events and views carry: none for an anonymous referral, which keeps only
        its keyed hash (the referrer matches it by the id its POST got back)."""
        return None if self.reference_keyed else self.external_reference

    def move_to(self, status: str, at: datetime) -> None:
        """The one place a referral's status changes, and with it `updated_at`. Where it is already (a new
        referral inserted with the status routing chose for it) nothing changes, so no UPDATE follows the
        INSERT of the same row."""
        if self.status != status:
            self.status, self.updated_at = status, at

    def _escalation(self, reason: str, at: datetime) -> Escalation:
        self.events.append(self._news(events.ReferralEscalated, reason=reason))
        return Escalation(referral_id=self.id, reason=reason, raised_at=at)

    def _news(self, kind: type[News], **data: Any) -> News:
        """An event for the referring agency: which referral, whose, where it stands, and what `kind` adds."""
        return kind(
            referral_id=self.id,
            org_id=self.org_id,
            external_reference=self.reference_for_referrer,
            status=cast(events.ReferralStatus, self.status),  # the column holds only these
            local_authority_org_id=self.local_authority_org_id,
            **data,
        )


class Offer(Base):
    __tablename__ = "offers"
    # The deadline sweep's and the overdue figure's question: offers of a status, by deadline.
    __table_args__ = (Index("ix_offers_status_respond_by", "status", "respond_by"),)

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
    # Never loaded (lazy="raise"): declared so that one flush inserts a new referral before its first offer.
    referral: Mapped[Referral] = relationship(lazy="raise")

    def close(self, status: str, at: datetime) -> None:
        self.status, self.responded_at = status, at

    def is_due(self, now: datetime) -> bool:
        """Still waiting for an answer, and past its deadline."""
        return self.status == "pending" and self.respond_by is not None and self.respond_by <= now


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


class Agency(Base):
    """An organisation in the agency directory (issue 13): police, a local authority's children's services, a
    first responder. Its `local_authority_codes` (ONS codes) say where it acts: for a child found there, the
    children's services agency covering the code is told of the child's referral (agencies.resolve)."""

    __tablename__ = "agencies"

    org_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30), index=True)  # agencies.AGENCY_KINDS
    local_authority_codes: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Escalation(Base):
    """A referral a coordinator must look at: nobody could take it, or the person is in immediate danger."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    reason: Mapped[str] = mapped_column(String(40))  # no_eligible_provider | all_declined | immediate_danger
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)  # NULL: in the queue
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    referral: Mapped[Referral] = relationship(lazy="raise")  # as Offer.referral: the referral is inserted first

    def resolve(self, at: datetime, by: str) -> None:
        self.resolved_at, self.resolved_by = at, by


def in_coordinators_queue() -> ColumnElement[bool]:
    """An escalation waiting for a coordinator (GET /v1/escalations and the escalations figure): unresolved, its
    referral neither withdrawn nor allocated since. Over a join of escalations to their referrals."""
    return and_(Escalation.resolved_at.is_(None), Referral.status.not_in(("withdrawn", "allocated")))


class Disclosure(Base):
    """Every time a referral's personal data leaves intake: to whom, when, why (UK GDPR Art. 19 needs the
    list of recipients so that an erasure reaches each of them)."""

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    recipient_org: Mapped[str] = mapped_column(String(100))  # a provider id, "notifications" or an org id
    # provider | notifications | org (services.intake.erasure.RECIPIENT_KINDS)
    recipient_kind: Mapped[str] = mapped_column(String(20), default="org", server_default="org")
    recipient_sub: Mapped[str | None] = mapped_column(String(200))  # who fetched it; None for an event
    # offer_summary | case_opening | handover | referral_events | data_sharing
    purpose: Mapped[str] = mapped_column(String(100))
    disclosed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    referral: Mapped[Referral] = relationship(lazy="raise")  # as Offer.referral: the referral is inserted first


class Rectification(Base):
    """One correction of a referral by its referring organisation (UK GDPR Art. 16; services.intake.rectification):
    when, by whom (org and subject) and which sections, never the values."""

    __tablename__ = "rectifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    rectified_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    org_id: Mapped[str] = mapped_column(String(100))
    sub: Mapped[str] = mapped_column(String(200))
    sections: Mapped[list[str]] = mapped_column(JSON)  # subject | referrer | needs | risk


class ConsentRecord(Base):
    """One record of the person's consent for one purpose (services.intake.consent): the latest per purpose
    is the one in force. Added, never changed: a withdrawal is a new record with `given` false."""

    __tablename__ = "consent_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))  # nrm_referral | advocacy | data_sharing
    given: Mapped[bool] = mapped_column(Boolean)
    obtained_at: Mapped[datetime] = mapped_column(UTCDateTime())
    obtained_by: Mapped[str] = mapped_column(String(200))  # an organisation, an officer's role or an advocate id
    interpreter_used: Mapped[bool] = mapped_column(Boolean, default=False)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)  # org ids; data_sharing only
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(100))  # the organisation that recorded it
    source: Mapped[str] = mapped_column(String(20))  # submission | referrer | provider
    # Never loaded (lazy="raise"): declared so that one flush inserts a new referral before its first records.
    referral: Mapped[Referral] = relationship(lazy="raise")


class DutyToNotifyRecord(Base):
    """The anonymous Duty to Notify notification, for statistics (services.intake.duty_to_notify): stored
    apart from the referral and with no way back to it: a random id of its own, no referral id, external
    reference, body hash or timestamp; its only date is the month. No event carries it."""

    __tablename__ = "duty_to_notify_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule: Mapped[str] = mapped_column(String(40))
    notifying_authority_kind: Mapped[str] = mapped_column(String(20))  # an org_kind: police | local_authority
    notified_month: Mapped[str] = mapped_column(String(7), index=True)  # YYYY-MM
    region: Mapped[str] = mapped_column(String(40))
    local_authority: Mapped[str | None] = mapped_column(String(9))  # an ONS code
    nationality: Mapped[str] = mapped_column(String(7))  # ISO 3166-1 alpha-2 or "unknown"
    sex: Mapped[str] = mapped_column(String(10))
    exploitation_types: Mapped[list[str]] = mapped_column(JSON)
    exploitation_locations: Mapped[list[str]] = mapped_column(JSON)  # uk | overseas | both | unknown
    exploited_as_child: Mapped[bool] = mapped_column(Boolean)

    @classmethod
    def of(cls, fields: dict[str, Any]) -> DutyToNotifyRecord:
        return cls(id=str(uuid.uuid4()), **fields)


class Outbox(Base, OutboxMixin):
    pass


class Inbox(Base, InboxMixin):
    pass


class IdempotencyKey(Base, IdempotencyKeyMixin):
    """A POST's Idempotency-Key and its first response (shared.idempotency)."""


class Erasure(Base):
    """A request to erase a referral's personal data (UK GDPR Art. 17; services.intake.erasure), one per
    referral. `reason` is the requester's free text about the request, not about the person: shown on GET,
    never in an event or a log. `kept`: what intake keeps without identifiers, and why."""

    __tablename__ = "erasures"
    __table_args__ = (UniqueConstraint("referral_id", name="uq_erasures_referral"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_by: Mapped[str] = mapped_column(String(100))  # the requesting organisation
    reason: Mapped[str] = mapped_column(Text)
    kept: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when the last recipient confirmed
    recipients: Mapped[list[ErasureRecipient]] = relationship(
        order_by="ErasureRecipient.id", lazy="selectin", cascade="all, delete-orphan"
    )


class ErasureRecipient(Base):
    """One recipient asked to erase its copy (Art. 19): `provider.<id>` or `notifications`, and its answer."""

    __tablename__ = "erasure_recipients"
    __table_args__ = (
        UniqueConstraint("erasure_id", "recipient", name="uq_erasure_recipients_recipient"),
        Index("ix_erasure_recipients_unconfirmed", "confirmed_at", "requested_at"),  # the overdue figure's
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    erasure_id: Mapped[str] = mapped_column(ForeignKey("erasures.id"))
    recipient: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))  # provider | notifications
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    kept: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)  # what it keeps, and why


class AccessLog(Base, AccessLogMixin):
    """Who read which of this service's records (shared.access_log): append-only, removed by retention alone."""


class DataKey(Base, DataKeyMixin):
    """A referral's data key, wrapped by the KEK (shared.sealed); erasure deletes it (crypto-shredding)."""
