"""What a charity does with offers and cases: one function per use case, shared by the API, the event
handlers and the demo seed, so an offer accepted by a person and one accepted by AUTO_ACCEPT follow the
same rules and write the same rows and events.

Each function works inside the caller's transaction and stages its outgoing event with `add_event` (the
transactional outbox): the rows and the event commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import msgspec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts import events
from services.advocacy import domain
from services.advocacy.models import Advocate, Case, Offer, Outbox, TimelineEntry
from shared.clock import utcnow
from shared.messaging.envelope import Event
from shared.outbox import add_event

OFFER_EXPIRED = "expired"  # intake's deadline passed before our answer reached it
OFFER_EXPIRED_KIND = "offer_expired"


def caseloads(session: Session, provider_id: str) -> dict[str, int]:
    """Each advocate's caseload: their cases that are opening or open."""
    rows = session.execute(
        select(Case.advocate_id, func.count())
        .where(Case.provider_id == provider_id, Case.status.in_(domain.LIVE_CASE_STATUSES))
        .group_by(Case.advocate_id)
    )
    return {advocate_id: count for advocate_id, count in rows}


class Casework:
    def __init__(self, provider_id: str, *, on_open: Callable[[Session, Case, dict[str, Any]], None] | None = None):
        self.provider_id = provider_id
        # Continuity of care (nrm.NrmRecords.plan_for_new_case): the NRM clocks and a child's turning_18
        # transition start in the transaction that opens the case.
        self.on_open = on_open

    # --- advocates ---------------------------------------------------------------------------------

    def create_advocate(
        self, session: Session, *, name: str, email: str, languages: list[str], max_caseload: int
    ) -> Advocate:
        if self.advocate_by_email(session, email) is not None:
            raise domain.AdvocateEmailTaken(f"an advocate with the email {email} already exists")
        now = utcnow()
        advocate = Advocate(
            id=str(uuid.uuid4()),
            provider_id=self.provider_id,
            name=name,
            email=email,
            languages=domain.normalise_languages(languages),
            max_caseload=max_caseload,
            active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(advocate)
        session.flush()
        self.announce_capacity(session)
        return advocate

    def advocate_by_email(self, session: Session, email: str) -> Advocate | None:
        return session.scalars(
            select(Advocate).where(Advocate.provider_id == self.provider_id, Advocate.email == email)
        ).one_or_none()

    def caseloads(self, session: Session) -> dict[str, int]:
        return caseloads(session, self.provider_id)

    def _advocate_loads(self, session: Session) -> dict[str, tuple[Advocate, domain.AdvocateLoad]]:
        # Lock the provider's advocates (in id order, so two accepts cannot deadlock) before counting
        # caseloads: two accepts at once must not both give the last place to the same advocate.
        advocates = session.scalars(
            select(Advocate).where(Advocate.provider_id == self.provider_id).order_by(Advocate.id).with_for_update()
        ).all()
        loads = self.caseloads(session)
        return {
            a.id: (
                a,
                domain.AdvocateLoad(a.id, tuple(a.languages), a.max_caseload, loads.get(a.id, 0), a.active),
            )
            for a in advocates
        }

    # --- offers -------------------------------------------------------------------------------------

    def record_offer(self, session: Session, event: Event) -> Offer:
        """`event`: an accepted `referral.offered` addressed to this provider."""
        data: events.ReferralOffered = event.data
        now = utcnow()
        offer = Offer(
            id=data.offer_id,
            provider_id=self.provider_id,
            referral_id=data.referral_id,
            status=domain.OFFER_PENDING,
            summary={"org_id": data.org_id, **msgspec.to_builtins(data.summary)},
            offered_at=data.offered_at,
            respond_by=data.respond_by,
            received_at=now,
            updated_at=now,
        )
        session.add(offer)
        session.flush()  # the offer row first: timeline entries refer to it
        self._note(session, offer.id, domain.OFFER_RECEIVED, event.source, f"offer {offer.id} received", now)
        return offer

    def _locked_offer(self, session: Session, offer_id: str) -> Offer:
        # The row lock makes accept, decline and withdrawal of one offer take turns.
        offer = session.scalars(
            select(Offer).where(Offer.id == offer_id, Offer.provider_id == self.provider_id).with_for_update()
        ).one_or_none()
        if offer is None:
            raise domain.OfferNotFound(f"offer {offer_id} not found")
        return offer

    def accept_offer(
        self,
        session: Session,
        offer_id: str,
        *,
        actor: str,
        advocate_id: str | None = None,
        offer: Offer | None = None,
    ) -> Case:
        """`offer`: the offer this same transaction just recorded (auto-accept), which it holds already."""
        if offer is None or offer.id != offer_id:
            offer = self._locked_offer(session, offer_id)
        domain.ensure_pending(offer.id, offer.status)
        loads = self._advocate_loads(session)
        if advocate_id is not None:
            if advocate_id not in loads:
                raise domain.AdvocateNotFound(f"advocate {advocate_id} not found")
            chosen = loads[advocate_id][1]
            domain.ensure_can_take(chosen)
        else:
            choice = domain.choose_advocate((load for _, load in loads.values()), offer.summary.get("languages") or [])
            if choice is None:
                raise domain.NoAdvocateAvailable("no active advocate has room for another case")
            chosen = choice
        advocate = loads[chosen.id][0]
        now = utcnow()
        case = Case(
            id=str(uuid.uuid4()),
            provider_id=self.provider_id,
            referral_id=offer.referral_id,
            offer_id=offer.id,
            advocate=advocate,
            status=domain.CASE_OPENING,
            opened_at=now,
            updated_at=now,
        )
        session.add(case)
        # Not `offer.case = case`: the backref would first load the offer's (absent) case, a query for nothing.
        offer.status, offer.responded_at, offer.updated_at = domain.OFFER_ACCEPTED, now, now
        self._note(session, offer.id, domain.OFFER_ACCEPTED_KIND, actor, f"assigned to advocate {advocate.id}", now)
        accepted = events.OfferAccepted(
            referral_id=offer.referral_id,
            offer_id=offer.id,
            provider_id=self.provider_id,
            case_id=case.id,
            advocate=events.AdvocateContact(name=advocate.name, email=advocate.email),
            accepted_at=now,
        )
        add_event(session, Outbox, accepted)
        session.flush()
        # The caseloads counted above, with this case: no second count of them.
        self.announce_capacity(session, [(a, load.caseload + (a.id == advocate.id)) for a, load in loads.values()])
        return case

    def decline_offer(
        self, session: Session, offer_id: str, *, actor: str, reason: str, note: str | None = None
    ) -> Offer:
        offer = self._locked_offer(session, offer_id)
        domain.ensure_pending(offer.id, offer.status)
        now = utcnow()
        offer.status, offer.responded_at, offer.updated_at = domain.OFFER_DECLINED, now, now
        offer.decline_reason, offer.decline_note = reason, note
        self._note(session, offer.id, domain.OFFER_DECLINED_KIND, actor, f"reason: {reason}", now)
        declined = events.OfferDeclined(  # the free-text note stays here
            referral_id=offer.referral_id,
            offer_id=offer.id,
            provider_id=self.provider_id,
            reason=cast(events.DeclineReason, reason),  # one of DECLINE_REASONS: the API's schema checked it
            declined_at=now,
        )
        add_event(session, Outbox, declined)
        session.flush()
        return offer

    # --- cases --------------------------------------------------------------------------------------

    def case(self, session: Session, case_id: str) -> Case:
        found = session.scalars(
            select(Case).where(Case.id == case_id, Case.provider_id == self.provider_id)
        ).one_or_none()
        if found is None:
            raise domain.CaseNotFound(f"case {case_id} not found")
        return found

    def open_case(self, session: Session, case: Case, referral: dict[str, Any], *, actor: str) -> None:
        """Intake allocated the referral to us and disclosed it: the case is open."""
        now = utcnow()
        case.referral, case.status, case.updated_at = referral, domain.CASE_OPEN, now
        self._note(session, case.offer_id, domain.REFERRAL_DISCLOSED, actor, "full referral fetched from intake", now)
        self._note(session, case.offer_id, domain.CASE_OPENED, actor, f"case {case.id} open", now)
        opened = events.CaseOpened(referral_id=case.referral_id, case_id=case.id, provider_id=self.provider_id)
        add_event(session, Outbox, opened)
        session.flush()
        if self.on_open is not None:
            self.on_open(session, case, referral)

    def withdraw_referral(self, session: Session, referral_id: str, *, actor: str) -> int:
        """The referrer withdrew the referral: a pending offer lapses, a live case closes.
        Returns how many offers here were about it."""
        offers = session.scalars(
            select(Offer)
            .where(Offer.referral_id == referral_id, Offer.provider_id == self.provider_id)
            .order_by(Offer.id)
            .with_for_update()
        ).all()
        now = utcnow()
        for offer in offers:
            if offer.status == domain.OFFER_PENDING:
                offer.status, offer.updated_at = domain.OFFER_WITHDRAWN, now
                self._note(session, offer.id, domain.REFERRAL_WITHDRAWN, actor, "offer withdrawn", now)
            case = offer.case
            if case is not None and case.status in domain.LIVE_CASE_STATUSES:
                case.status, case.updated_at, case.closed_at = domain.CASE_CLOSED, now, now
                self._note(session, offer.id, domain.REFERRAL_WITHDRAWN, actor, "referral withdrawn by referrer", now)
                self._note(session, offer.id, domain.CASE_CLOSED_KIND, actor, f"case {case.id} closed", now)
        session.flush()
        if any(offer.case is not None for offer in offers):
            self.announce_capacity(session)
        return len(offers)

    def expire_offer(self, session: Session, offer_id: str, *, actor: str) -> bool:
        """Intake's deadline passed: a pending offer lapses; an acceptance that arrived too late is undone
        (intake ignores it and has moved on to another provider), so its case closes and frees the place."""
        offer = session.scalars(
            select(Offer).where(Offer.id == offer_id, Offer.provider_id == self.provider_id).with_for_update()
        ).one_or_none()
        if offer is None:
            return False
        now = utcnow()
        if offer.status == domain.OFFER_PENDING:
            offer.status, offer.updated_at = OFFER_EXPIRED, now
            self._note(session, offer.id, OFFER_EXPIRED_KIND, actor, "no answer before the deadline", now)
        elif (
            offer.status == domain.OFFER_ACCEPTED
            and offer.case is not None
            and offer.case.status == domain.CASE_OPENING
        ):
            offer.status, offer.updated_at = OFFER_EXPIRED, now
            offer.case.status, offer.case.updated_at, offer.case.closed_at = domain.CASE_CLOSED, now, now
            self._note(
                session, offer.id, OFFER_EXPIRED_KIND, actor, "accepted after the deadline; offered elsewhere", now
            )
            self._note(session, offer.id, domain.CASE_CLOSED_KIND, actor, f"case {offer.case.id} closed", now)
            session.flush()
            self.announce_capacity(session)
        return True

    def handed_over_case(self, session: Session, referral_id: str) -> Case | None:
        """The live case another provider handed over to us for this referral, if it has arrived."""
        return session.scalars(
            select(Case).where(
                Case.provider_id == self.provider_id,
                Case.referral_id == referral_id,
                Case.offer_id.startswith("handover-"),
                Case.status.in_(domain.LIVE_CASE_STATUSES),
            )
        ).first()

    def attach_referral(self, session: Session, case: Case, referral: dict[str, Any], *, actor: str) -> None:
        """A case handed over to us: intake moved the allocation and disclosed the referral, so it opens."""
        now = utcnow()
        case.referral, case.status, case.updated_at = referral, domain.CASE_OPEN, now
        self._note(session, case.offer_id, domain.REFERRAL_DISCLOSED, actor, "full referral fetched from intake", now)
        self._note(session, case.offer_id, domain.CASE_OPENED, actor, f"case {case.id} open", now)
        opened = events.CaseOpened(referral_id=case.referral_id, case_id=case.id, provider_id=self.provider_id)
        add_event(session, Outbox, opened)

    def announce_capacity(self, session: Session, caseloads: list[tuple[Advocate, int]] | None = None) -> None:
        """Tell intake's directory how many places this provider has now (provider.capacity_changed).
        `caseloads`: every advocate with their live cases, when the caller has just counted them."""
        if caseloads is None:
            loads = self.caseloads(session)
            everyone = session.scalars(select(Advocate).where(Advocate.provider_id == self.provider_id)).all()
            caseloads = [(a, loads.get(a.id, 0)) for a in everyone]
        advocates = [(a, load) for a, load in caseloads if a.active]
        spare = sum(max(0, a.max_caseload - load) for a, load in advocates)
        report = events.ProviderCapacityChanged(provider_id=self.provider_id, capacity=spare, advocates=len(advocates))
        add_event(session, Outbox, report)

    @staticmethod
    def _note(session: Session, offer_id: str, kind: str, actor: str, detail: str, at: datetime) -> None:
        session.add(TimelineEntry(offer_id=offer_id, at=at, kind=kind, actor=actor, detail=detail))
