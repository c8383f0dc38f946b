"""What a charity does with offers and cases: one method per use case, shared by the API, the page, the
event handlers and the demo seed, so an offer accepted by a person and one accepted by AUTO_ACCEPT follow the
same rules and write the same rows and events.

Each works inside the caller's unit of work (services.advocacy.uow) and stages its outgoing events there: the
rows and the events commit together or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

import msgspec

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.casework.search import SearchIndex
from services.advocacy.models import Advocate, Case, Offer
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow
from shared.messaging.envelope import Event

OFFER_EXPIRED = "expired"  # intake's deadline passed before our answer reached it
OFFER_EXPIRED_KIND = "offer_expired"
AUTO_ACCEPT_ACTOR = "auto-accept"  # who accepted an offer the worker accepted on its own (AUTO_ACCEPT)
OnOpen = Callable[[AdvocacyUnitOfWork, Case, dict[str, Any]], None]


class Casework:
    def __init__(self, provider_id: str, *, on_open: OnOpen | None = None, index: SearchIndex | None = None):
        self.provider_id = provider_id
        # The blind index of names and references the page searches (casework.search), written at opening.
        self.index = index or SearchIndex()
        # Continuity of care (continuity.nrm.NrmRecords.plan_for_new_case): the NRM clocks and a child's
        # turning_18 transition start in the unit of work that opens the case.
        self.on_open = on_open

    # --- advocates ---------------------------------------------------------------------------------

    def create_advocate(
        self, uow: AdvocacyUnitOfWork, *, name: str, email: str, languages: list[str], max_caseload: int
    ) -> Advocate:
        if uow.advocates.by_email(email) is not None:
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
            role=domain.ROLE_ADVOCATE,
            created_at=now,
            updated_at=now,
        )
        uow.advocates.add(advocate)
        self.announce_capacity(uow)
        return advocate

    def _advocate_loads(self, uow: AdvocacyUnitOfWork) -> dict[str, tuple[Advocate, domain.AdvocateLoad]]:
        # Lock the provider's advocates before counting caseloads: two accepts at once must not both give the
        # last place to the same advocate.
        advocates = uow.advocates.all(lock=True)
        loads = uow.cases.caseloads()
        return {a.id: (a, domain.AdvocateLoad.of(a, loads.get(a.id, 0))) for a in advocates}

    @staticmethod
    def _choose(
        loads: dict[str, tuple[Advocate, domain.AdvocateLoad]], offer: Offer, advocate_id: str | None
    ) -> domain.AdvocateLoad:
        if advocate_id is not None:
            if advocate_id not in loads:
                raise domain.AdvocateNotFound(f"advocate {advocate_id} not found")
            chosen = loads[advocate_id][1]
            domain.ensure_can_take(chosen)
            return chosen
        choice = domain.choose_advocate((load for _, load in loads.values()), offer.summary.get("languages") or [])
        if choice is None:
            raise domain.NoAdvocateAvailable("no active advocate has room for another case")
        return choice

    # --- offers -------------------------------------------------------------------------------------

    def record_offer(self, uow: AdvocacyUnitOfWork, event: Event) -> Offer:
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
        uow.offers.add(offer)
        timeline.note(uow, offer.id, domain.OFFER_RECEIVED, event.source, f"offer {offer.id} received", now)
        return offer

    @staticmethod
    def _locked_offer(uow: AdvocacyUnitOfWork, offer_id: str) -> Offer:
        # The row lock makes accept, decline and withdrawal of one offer take turns.
        offer = uow.offers.get(offer_id, lock=True)
        if offer is None:
            raise domain.OfferNotFound(f"offer {offer_id} not found")
        return offer

    def receive_offer(self, uow: AdvocacyUnitOfWork, event: Event, *, auto_accept: bool) -> tuple[Offer, Case | None]:
        """`referral.offered`: record the offer and, with `auto_accept`, accept it in this same unit of work by the
        same rules as a person's accept. Returns the offer and its case (None while it waits for a person, or
        when no advocate has room). The advocate is chosen before the offer is written, so its one INSERT writes
        it accepted: no second statement to change its status."""
        if not auto_accept:
            return self.record_offer(uow, event), None
        loads = self._advocate_loads(uow)  # the offer is new: no lock of it to take first
        offer = self.record_offer(uow, event)
        try:
            chosen = self._choose(loads, offer, None)
        except domain.NoAdvocateAvailable:
            return offer, None
        return offer, self._accept(uow, offer, loads, chosen, AUTO_ACCEPT_ACTOR)

    def accept_offer(
        self, uow: AdvocacyUnitOfWork, offer_id: str, *, actor: str, advocate_id: str | None = None
    ) -> Case:
        offer = self._locked_offer(uow, offer_id)
        domain.ensure_pending(offer.id, offer.status)
        loads = self._advocate_loads(uow)
        return self._accept(uow, offer, loads, self._choose(loads, offer, advocate_id), actor)

    def _accept(
        self,
        uow: AdvocacyUnitOfWork,
        offer: Offer,
        loads: dict[str, tuple[Advocate, domain.AdvocateLoad]],
        chosen: domain.AdvocateLoad,
        actor: str,
    ) -> Case:
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
        # Not `offer.case = case`: the backref would first load the offer's (absent) case, a query for nothing.
        uow.cases.add(case)
        offer.status, offer.responded_at, offer.updated_at = domain.OFFER_ACCEPTED, now, now
        timeline.note(uow, offer.id, domain.OFFER_ACCEPTED_KIND, actor, f"assigned to advocate {advocate.id}", now)
        accepted = events.OfferAccepted(
            referral_id=offer.referral_id,
            offer_id=offer.id,
            provider_id=self.provider_id,
            case_id=case.id,
            advocate=events.AdvocateContact(name=advocate.name, email=advocate.email),
            accepted_at=now,
        )
        uow.stage(accepted)
        # The caseloads counted above, with this case: no second count of them.
        self.announce_capacity(uow, [(a, load.caseload + (a.id == advocate.id)) for a, load in loads.values()])
        return case

    def decline_offer(
        self, uow: AdvocacyUnitOfWork, offer_id: str, *, actor: str, reason: str, note: str | None = None
    ) -> Offer:
        offer = self._locked_offer(uow, offer_id)
        domain.ensure_pending(offer.id, offer.status)
        now = utcnow()
        offer.status, offer.responded_at, offer.updated_at = domain.OFFER_DECLINED, now, now
        offer.decline_reason, offer.decline_note = reason, note
        timeline.note(uow, offer.id, domain.OFFER_DECLINED_KIND, actor, f"reason: {reason}", now)
        declined = events.OfferDeclined(  # the free-text note stays here
            referral_id=offer.referral_id,
            offer_id=offer.id,
            provider_id=self.provider_id,
            reason=cast(events.DeclineReason, reason),  # one of DECLINE_REASONS: the API's schema checked it
            declined_at=now,
        )
        uow.stage(declined)
        return offer

    # --- cases --------------------------------------------------------------------------------------

    @staticmethod
    def case(uow: AdvocacyUnitOfWork, case_id: str) -> Case:
        found = uow.cases.get(case_id)
        if found is None:
            raise domain.CaseNotFound(f"case {case_id} not found")
        return found

    def open_case(self, uow: AdvocacyUnitOfWork, case: Case, referral: dict[str, Any], *, actor: str) -> None:
        """Intake allocated the referral to us and disclosed it: the case is open, and its NRM clocks start."""
        self._open(uow, case, referral, actor)
        if self.on_open is not None:
            self.on_open(uow, case, referral)

    def attach_referral(self, uow: AdvocacyUnitOfWork, case: Case, referral: dict[str, Any], *, actor: str) -> None:
        """A case handed over to us: intake moved the allocation and disclosed the referral, so it opens (its
        NRM record and clocks came with it)."""
        self._open(uow, case, referral, actor)

    def _open(self, uow: AdvocacyUnitOfWork, case: Case, referral: dict[str, Any], actor: str) -> None:
        now = utcnow()
        case.referral, case.status, case.updated_at = referral, domain.CASE_OPEN, now
        self.index.write(uow, case, referral)
        timeline.note(uow, case.offer_id, domain.REFERRAL_DISCLOSED, actor, "full referral fetched from intake", now)
        timeline.note(uow, case.offer_id, domain.CASE_OPENED, actor, f"case {case.id} open", now)
        # The child's local authority came with the referral (intake resolved it at referral): from here on every
        # event about the case names it (timeline.stage).
        case.local_authority_org_id = _text(referral.get("local_authority_org_id"))
        case.local_authority_name = _text(referral.get("local_authority_name"))
        timeline.stage(uow, case, events.CaseOpened)

    def withdraw_referral(self, uow: AdvocacyUnitOfWork, referral_id: str, *, actor: str) -> int:
        """The referrer withdrew the referral: a pending offer lapses, a live case closes.
        Returns how many offers here were about it."""
        offers = uow.offers.of_referral(referral_id, lock=True)
        now = utcnow()
        for offer in offers:
            if offer.status == domain.OFFER_PENDING:
                offer.status, offer.updated_at = domain.OFFER_WITHDRAWN, now
                timeline.note(uow, offer.id, domain.REFERRAL_WITHDRAWN, actor, "offer withdrawn", now)
            case = offer.case
            if case is not None and case.status in domain.LIVE_CASE_STATUSES:
                case.status, case.updated_at, case.closed_at = domain.CASE_CLOSED, now, now
                detail = "referral withdrawn by referrer"
                timeline.note(uow, offer.id, domain.REFERRAL_WITHDRAWN, actor, detail, now)
                timeline.note(uow, offer.id, domain.CASE_CLOSED_KIND, actor, f"case {case.id} closed", now)
        if any(offer.case is not None for offer in offers):
            self.announce_capacity(uow)
        return len(offers)

    def expire_offer(self, uow: AdvocacyUnitOfWork, offer_id: str, *, actor: str) -> bool:
        """Intake's deadline passed: a pending offer lapses; an acceptance that arrived too late is undone
        (intake ignores it and has moved on to another provider), so its case closes and frees the place."""
        offer = uow.offers.get(offer_id, lock=True)
        if offer is None:
            return False
        now = utcnow()
        case = offer.case
        if offer.status == domain.OFFER_PENDING:
            offer.status, offer.updated_at = OFFER_EXPIRED, now
            timeline.note(uow, offer.id, OFFER_EXPIRED_KIND, actor, "no answer before the deadline", now)
        elif offer.status == domain.OFFER_ACCEPTED and case is not None and case.status == domain.CASE_OPENING:
            offer.status, offer.updated_at = OFFER_EXPIRED, now
            case.status, case.updated_at, case.closed_at = domain.CASE_CLOSED, now, now
            detail = "accepted after the deadline; offered elsewhere"
            timeline.note(uow, offer.id, OFFER_EXPIRED_KIND, actor, detail, now)
            timeline.note(uow, offer.id, domain.CASE_CLOSED_KIND, actor, f"case {case.id} closed", now)
            self.announce_capacity(uow)
        return True

    def announce_capacity(self, uow: AdvocacyUnitOfWork, caseloads: list[tuple[Advocate, int]] | None = None) -> None:
        """Tell intake's directory how many places this provider has now (provider.capacity_changed).
        `caseloads`: every advocate with their live cases, when the caller has just counted them."""
        if caseloads is None:
            loads = uow.cases.caseloads()
            caseloads = [(a, loads.get(a.id, 0)) for a in uow.advocates.all()]
        advocates = [(a, load) for a, load in caseloads if a.active]
        spare = sum(max(0, a.max_caseload - load) for a, load in advocates)
        uow.stage(
            events.ProviderCapacityChanged(provider_id=self.provider_id, capacity=spare, advocates=len(advocates))
        )


def _text(value: Any) -> str | None:
    """A string intake sent, or None for anything else (an older intake sends no local authority)."""
    return value if isinstance(value, str) and value else None
