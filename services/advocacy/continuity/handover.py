"""A provider handover: the case moves to another provider's instance over the bus, with its timeline, so
the survivor does not retell their story, and only once that provider has agreed to take it.

Offered first (issue 12 item 6). Completing a `provider_handover` transition (its checklist done) stages
`case.handover_offered.<receiver>` with the minimised summary an intake offer carries and a deadline
(`HANDOVER_RESPONSE_HOURS`); the case stays with the sender and its advocate. The receiving instance keeps it
(`Handover` row), lists it (`GET /v1/handovers`) and accepts it, with an advocate who is active and within
their maximum caseload (the place is taken at once: the case stands `opening` on the offer row
`handover-<id>`), or declines it with a decline code. The sender hears `case.handover_accepted.<sender>` or
`case.handover_declined.<sender>`. Declined, or unanswered by its deadline (the clock scheduler's tick), the
transition is `cancelled` with its `outcome` on the timeline, and the case stays where it was.

Accepted, the sending instance stages `case.handover` addressed to the receiving provider (routing key
`case.handover.<provider_id>`, bound only by that provider's queue `advocacy.<provider_id>`), closes its own
case, frees the place and erases its full copy of the referral: it keeps ids, dates, codes and the timeline
for its own records. The event carries ids, codes and dates
(contracts.events.CaseHandover): the minimised summary an offer carries, the NRM decisions (not the NRM
reference), the open clocks and transitions, and the timeline's kinds and times (not who did what, nor its
text). It carries no names, date of birth, contact details, narrative or staff identities, and nothing that
derives from a birthday: no turning_18 clock or transition. The sender also tells intake
(`case.handed_over`); intake moves the allocation and sends the receiver `allocation.transferred`; the
receiver then fetches the full referral from intake like any allocated provider (a logged disclosure),
plans what derives from the person's details, and opens the case, so nobody asks the survivor again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import cast

import msgspec

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.casework.cases import Casework
from services.advocacy.continuity import deadlines
from services.advocacy.continuity.wall_clock import WallClock
from services.advocacy.models import (
    Advocate,
    Case,
    Clock,
    NrmDecision,
    NrmReconsideration,
    NrmRecord,
    Offer,
    TimelineEntry,
    Transition,
)
from services.advocacy.models import (
    Handover as HandoverRow,
)
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError

_SUMMARY_KEYS = {f.name for f in msgspec.structs.fields(events.ReferralSummary)}

log = logging.getLogger(__name__)
ACTOR = "handover"


class Handover:
    def __init__(self, provider_id: str, wall_clock: WallClock, *, response_hours: float = 72.0):
        self.provider_id = provider_id
        self.wall_clock = wall_clock  # deadlines are read from it, so tests move time without sleeping
        self.response_hours = response_hours
        self.places = Casework(provider_id)  # casework's rules of places: who has room, what is announced

    # --- sending: the offer, its answer, the case -------------------------------------------------------

    def offer(self, uow: AdvocacyUnitOfWork, case: Case, transition: Transition, *, actor: str) -> None:
        """Offer the case to the receiving provider: it stays here until that provider accepts."""
        if transition.offered_at is not None:
            by = transition.respond_by.isoformat() if transition.respond_by else "its deadline"
            raise domain.HandoverAwaitingAnswer(
                f"handover {transition.id} was offered to provider {transition.receiving_provider_id}: it completes "
                f"when they accept (answer due by {by})"
            )
        now = self.wall_clock.now()
        transition.offered_at, transition.respond_by = now, now + timedelta(hours=self.response_hours)
        transition.updated_at = utcnow()
        summary = case.offer.summary or {}
        to = transition.receiving_provider_id or ""
        offered = events.CaseHandoverOffered(
            handover_id=transition.id,
            referral_id=case.referral_id,
            case_id=case.id,
            from_provider_id=self.provider_id,
            to_provider_id=to,
            offered_at=now,
            respond_by=transition.respond_by,
            summary=_summary(summary),
            org_id=summary.get("org_id"),
        )
        uow.stage(offered)  # addressed: case.handover_offered.<receiving provider>
        detail = f"handover {transition.id} offered to provider {to}; answer due by {transition.respond_by.isoformat()}"
        timeline.note(uow, case.offer_id, domain.HANDOVER_OFFERED_KIND, actor, detail, transition.updated_at)

    def answered(self, uow: AdvocacyUnitOfWork, answer: events.HandoverAnswer) -> tuple[Case, Transition] | None:
        """The offered transition an answer is about, when it still awaits one; None when it no longer does
        (closed, cancelled as unanswered). The catalogue checked that the answer speaks for `to_provider_id`."""
        case = uow.cases.get(answer.case_id)
        transition = uow.transitions.get(answer.case_id, answer.handover_id, lock=True) if case else None
        if case is None or transition is None or transition.kind != domain.PROVIDER_HANDOVER:
            raise PermanentError("a handover answer names no provider handover of this provider's")
        if transition.receiving_provider_id != answer.to_provider_id:
            raise PermanentError("a handover answered by a provider it was not offered to")
        waiting = transition.offered_at is not None and transition.status in domain.OPEN_TRANSITION_STATUSES
        if not waiting or case.status != domain.CASE_OPEN:
            log.info("handover answer for a handover no longer waiting", extra={"transition_id": transition.id})
            return None
        return case, transition

    def declined(
        self, uow: AdvocacyUnitOfWork, case: Case, transition: Transition, answer: events.CaseHandoverDeclined, *,
        actor: str,
    ) -> None:  # fmt: skip
        """Declined: the case stays here with its advocate; the transition is cancelled with the reason."""
        now = utcnow()
        transition.status, transition.outcome = domain.TRANSITION_CANCELLED, domain.decline_outcome(answer.reason)
        transition.updated_at = now
        detail = f"handover {transition.id} declined by provider {answer.to_provider_id}: {answer.reason}; case stays"
        timeline.note(uow, case.offer_id, domain.HANDOVER_DECLINED_KIND, actor, detail, now)

    def unanswered(self, uow: AdvocacyUnitOfWork, transitions: list[Transition], *, actor: str) -> None:
        """Cancelled by the scheduler past their deadline (uow.transitions.claim_unanswered): the case stays."""
        cases = uow.cases.by_ids(t.case_id for t in transitions)
        now = utcnow()
        for transition in transitions:
            detail = f"handover {transition.id} unanswered by provider {transition.receiving_provider_id}; case stays"
            timeline.note(uow, cases[transition.case_id].offer_id, domain.HANDOVER_UNANSWERED_KIND, actor, detail, now)

    def send(self, uow: AdvocacyUnitOfWork, case: Case, transition: Transition, *, actor: str) -> events.CaseHandover:
        to = transition.receiving_provider_id or ""
        now = utcnow()
        timeline.note(uow, case.offer_id, domain.CASE_HANDED_OVER, actor, f"case handed over to provider {to}", now)
        summary = case.offer.summary or {}
        # What derives from the person's details (a child's 18th birthday) stays here: the receiver plans it
        # again from the referral it fetches.
        running = uow.clocks.running(case.id)
        clocks = [c for c in running if c.kind != domain.TURNING_18]
        transitions = [
            t for t in uow.transitions.open_of(case.id) if t.id != transition.id and t.kind != domain.TURNING_18
        ]
        handover = events.CaseHandover(
            referral_id=case.referral_id,
            case_id=case.id,
            transition_id=transition.id,
            from_provider_id=self.provider_id,
            to_provider_id=to,
            handed_over_at=now,
            org_id=summary.get("org_id"),
            summary=_summary(summary),
            nrm=_nrm(uow, case),
            clocks=[_clock(c) for c in clocks],
            transitions=[_transition(t) for t in transitions],
            timeline=[events.HandedOverEntry(at=e.at, kind=e.kind) for e in uow.timeline.of_offer(case.offer_id)],
        )
        uow.stage(handover)  # addressed: case.handover.<receiving provider>
        # Intake moves the allocation, so the receiving provider may fetch the referral it needs.
        handed_over = events.CaseHandedOver(
            referral_id=case.referral_id, case_id=case.id, from_provider_id=self.provider_id, to_provider_id=to
        )
        uow.stage(handed_over)
        for clock in running:
            clock.stopped_at, clock.stopped_reason = now, f"case handed over to provider {to}"
        case.status, case.closed_at, case.updated_at = domain.CASE_CLOSED, now, now
        transition.outcome = domain.OUTCOME_ACCEPTED
        # No full copy stays readable here (issue 12 item 6): the receiver fetches the referral from intake. What
        # stays is this provider's own record: ids, dates, codes and the timeline.
        case.referral = None
        detail = f"case {case.id} closed: handed over; the full referral erased here"
        timeline.note(uow, case.offer_id, domain.CASE_CLOSED_KIND, actor, detail, now)
        self.places.announce_capacity(uow)  # the advocate's place is free
        return handover

    # --- receiving: the offer, its answer, the case -----------------------------------------------------

    def record_offer(self, uow: AdvocacyUnitOfWork, event: Event) -> HandoverRow:
        """`event`: a `case.handover_offered` addressed to this provider (the catalogue checked who sent it)."""
        data: events.CaseHandoverOffered = event.data
        handover = HandoverRow(
            id=data.handover_id,
            provider_id=self.provider_id,
            from_provider_id=data.from_provider_id,
            referral_id=data.referral_id,
            from_case_id=data.case_id,
            status=domain.HANDOVER_PENDING,
            summary={"org_id": data.org_id, **msgspec.to_builtins(data.summary)},
            offered_at=data.offered_at,
            respond_by=data.respond_by,
            received_at=utcnow(),
        )
        uow.handovers.add(handover)
        return handover

    def _pending(self, uow: AdvocacyUnitOfWork, handover_id: str) -> HandoverRow:
        handover = uow.handovers.get(handover_id, lock=True)  # accept, decline and expiry take turns
        if handover is None:
            raise domain.HandoverNotFound(f"handover {handover_id} not found")
        domain.ensure_handover_pending(handover.id, handover.status, handover.respond_by, self.wall_clock.now())
        return handover

    def accept(
        self, uow: AdvocacyUnitOfWork, handover_id: str, *, actor: str, advocate_id: str | None = None
    ) -> HandoverRow:
        """Accept with an advocate who is active and within their maximum caseload (chosen as offers are when
        none is named). The place is taken now: the case stands `opening` until it arrives (case.handover)."""
        handover = self._pending(uow, handover_id)
        advocate = self._advocate(uow, advocate_id, handover.summary.get("languages") or [])
        now = utcnow()
        offer = Offer(
            id=f"{domain.HANDOVER_OFFER_PREFIX}{handover.id}",
            provider_id=self.provider_id,
            referral_id=handover.referral_id,
            status=domain.OFFER_ACCEPTED,
            summary=handover.summary,
            offered_at=handover.offered_at,
            respond_by=handover.respond_by,
            responded_at=now,
            received_at=handover.received_at,
            updated_at=now,
        )
        uow.offers.add(offer)
        case = Case(
            id=str(uuid.uuid4()),
            provider_id=self.provider_id,
            referral_id=handover.referral_id,
            offer_id=offer.id,
            advocate=advocate,
            status=domain.CASE_OPENING,
            referral=None,
            opened_at=now,
            updated_at=now,
        )
        uow.cases.add(case)
        handover.status, handover.responded_at, handover.advocate_id = domain.HANDOVER_ACCEPTED, now, advocate.id
        detail = f"handover {handover.id} offered by provider {handover.from_provider_id}"
        timeline.note(uow, offer.id, domain.HANDOVER_OFFERED_KIND, handover.from_provider_id, detail, now)
        detail = f"handover {handover.id} accepted; assigned to advocate {advocate.id}"
        timeline.note(uow, offer.id, domain.HANDOVER_ACCEPTED_KIND, actor, detail, now)
        uow.stage(events.CaseHandoverAccepted(**self._answer(handover, now)))
        self.places.announce_capacity(uow)
        return handover

    def decline(
        self, uow: AdvocacyUnitOfWork, handover_id: str, *, actor: str, reason: str, note: str | None = None
    ) -> HandoverRow:
        """`reason`: one of domain.DECLINE_REASONS (the API's schema checked it); the note stays here."""
        handover = self._pending(uow, handover_id)
        now = utcnow()
        handover.status, handover.responded_at = domain.HANDOVER_DECLINED, now
        handover.decline_reason, handover.decline_note = reason, note
        declined = events.CaseHandoverDeclined(**self._answer(handover, now), reason=cast(events.DeclineReason, reason))
        uow.stage(declined)
        log.info("handover declined", extra={"handover_id": handover.id, "reason": reason, "by": actor})
        return handover

    def _answer(self, handover: HandoverRow, now: datetime) -> dict:
        return {
            "handover_id": handover.id,
            "referral_id": handover.referral_id,
            "case_id": handover.from_case_id,
            "from_provider_id": handover.from_provider_id,
            "to_provider_id": self.provider_id,
            "answered_at": now,
        }

    def _advocate(self, uow: AdvocacyUnitOfWork, advocate_id: str | None, languages: list[str]) -> Advocate:
        # The same locks and counts as an offer's accept: two accepts cannot both take an advocate's last place.
        advocates = uow.advocates.all(lock=True)
        loads = uow.cases.caseloads()
        views = {a.id: domain.AdvocateLoad.of(a, loads.get(a.id, 0)) for a in advocates}
        if advocate_id is not None:
            if advocate_id not in views:
                raise domain.AdvocateNotFound(f"advocate {advocate_id} not found")
            domain.ensure_can_take(views[advocate_id])
            chosen = views[advocate_id]
        else:
            choice = domain.choose_advocate(views.values(), languages)
            if choice is None:
                raise domain.NoAdvocateAvailable("no active advocate has room for another case")
            chosen = choice
        return next(a for a in advocates if a.id == chosen.id)

    def receive(self, uow: AdvocacyUnitOfWork, event: Event) -> Case | None:
        """The case of a handover we accepted arrives into the `opening` case made then: it opens (case.opened)
        once intake has moved the allocation to us and we have fetched the referral (allocation.transferred),
        so nothing is said in our name about a referral intake does not yet know we hold. A case nobody here
        accepted is refused. None when it had arrived already."""
        data: events.CaseHandover = event.data
        handover = uow.handovers.get(data.transition_id, lock=True)
        if handover is None or handover.status != domain.HANDOVER_ACCEPTED:
            raise PermanentError("a case handed over without a handover this provider accepted")
        if handover.from_provider_id != data.from_provider_id or handover.referral_id != data.referral_id:
            raise PermanentError("a case handed over by another provider, or for another referral, than accepted")
        offer = uow.offers.get(f"{domain.HANDOVER_OFFER_PREFIX}{handover.id}")
        case = offer.case if offer is not None else None
        if case is None or uow.nrm.record(case.id) is not None:
            return None  # withdrawn meanwhile, or arrived already
        now = utcnow()
        sender = data.from_provider_id
        for entry in data.timeline:
            uow.timeline.add(
                TimelineEntry(offer_id=case.offer_id, at=entry.at, kind=entry.kind, actor=sender, detail="")
            )
        self._restore(uow, case, data, now)
        detail = f"case received from provider {sender}; assigned to advocate {case.advocate.id}"
        timeline.note(uow, case.offer_id, domain.CASE_RECEIVED, event.source, detail, now)
        return case

    def _restore(self, uow: AdvocacyUnitOfWork, case: Case, data: events.CaseHandover, now: datetime) -> None:
        nrm = data.nrm
        uow.nrm.add(
            NrmRecord(
                case_id=case.id,
                provider_id=self.provider_id,
                nrm_reference=None,  # the Home Office's id of the person does not travel: ask the survivor's file
                referred_on=nrm.referred_on,
                region=nrm.region,
                created_at=now,
                updated_at=now,
            )
        )
        for d in nrm.decisions:
            uow.nrm.add(
                NrmDecision(
                    id=d.id,
                    case_id=case.id,
                    stage=d.stage,
                    outcome=d.outcome,
                    decided_on=d.decided_on,
                    on_reconsideration=d.on_reconsideration,
                    recorded_by=ACTOR,
                    recorded_at=now,
                )
            )
        for r in nrm.reconsiderations:
            uow.nrm.add(
                NrmReconsideration(
                    id=r.id,
                    case_id=case.id,
                    decision_id=r.decision_id,
                    requested_on=r.requested_on,
                    recorded_by=ACTOR,
                    recorded_at=now,
                )
            )
        for t in data.transitions:
            checklist = domain.checklist_for(t.kind)
            uow.transitions.add(
                Transition(
                    id=t.id,
                    provider_id=self.provider_id,
                    case_id=case.id,
                    kind=t.kind,
                    status=t.status,
                    planned_for=t.planned_for,
                    date_basis=t.date_basis,
                    receiving_agency=t.receiving_agency,
                    receiving_provider_id=None,
                    to_advocate_id=None,
                    checklist={item: item in t.done for item in checklist},
                    origin=f"handed over by provider {data.from_provider_id}"[:60],
                    created_by=ACTOR,
                    created_at=now,
                    updated_at=now,
                )
            )
        for c in data.clocks:
            # Fired flags travel: the referring agency was told once already, and is not told again.
            uow.clocks.add(
                Clock(
                    id=str(uuid.uuid4()),
                    provider_id=self.provider_id,
                    case_id=case.id,
                    kind=c.kind,
                    nature=deadlines.nature_of(c.kind),
                    starts_on=c.starts_on,
                    due_on=c.due_on,
                    notice_on=c.notice_on,
                    policy_version=c.policy_version,
                    basis=f"continued from provider {data.from_provider_id}"[:200],
                    transition_id=c.transition_id,
                    created_at=now,
                    due_soon_fired_at=now if c.due_soon_fired else None,
                    breached_fired_at=now if c.breached_fired else None,
                )
            )


def _summary(summary: dict) -> events.ReferralSummary:
    """The minimised summary an offer carries, and nothing more, checked against the catalogue here."""
    return msgspec.convert(
        {k: v for k, v in summary.items() if k in _SUMMARY_KEYS and v is not None}, events.ReferralSummary
    )


def _nrm(uow: AdvocacyUnitOfWork, case: Case) -> events.HandedOverNrm:
    record = uow.nrm.record(case.id)
    decisions = uow.nrm.decisions_of(case.id)
    requests = uow.nrm.reconsiderations_of(case.id)
    # msgspec.convert, not the constructor: the rows' strings are checked against the catalogue's codes here,
    # at the sender, as the receiver will check them.
    return msgspec.convert(
        {
            "referred_on": record.referred_on if record else None,
            "region": record.region if record else None,
            "decisions": [
                {
                    "id": d.id,
                    "stage": d.stage,
                    "outcome": d.outcome,
                    "decided_on": d.decided_on,
                    "on_reconsideration": d.on_reconsideration,
                }
                for d in decisions
            ],
            "reconsiderations": [
                {"id": r.id, "decision_id": r.decision_id, "requested_on": r.requested_on} for r in requests
            ],
        },
        events.HandedOverNrm,
    )


def _clock(clock: Clock) -> events.HandedOverClock:
    fields = {
        "kind": clock.kind,
        "starts_on": clock.starts_on,
        "due_on": clock.due_on,
        "notice_on": clock.notice_on,
        "policy_version": clock.policy_version,
        "transition_id": clock.transition_id,
        "due_soon_fired": clock.due_soon_fired_at is not None,
        "breached_fired": clock.breached_fired_at is not None,
    }
    return msgspec.convert(fields, events.HandedOverClock)


def _transition(t: Transition) -> events.HandedOverTransition:
    fields = {
        "id": t.id,
        "kind": t.kind,
        "status": t.status,
        "planned_for": t.planned_for,
        "date_basis": t.date_basis,
        "receiving_agency": t.receiving_agency,
        "done": [item for item, done in (t.checklist or {}).items() if done],
    }
    return msgspec.convert(fields, events.HandedOverTransition)
