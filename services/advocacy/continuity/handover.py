"""A provider handover: the case moves to another provider's instance over the bus, with its timeline, so
the survivor does not retell their story.

The sending instance, when a `provider_handover` transition is completed, stages `case.handover` addressed
to the receiving provider (routing key `case.handover.<provider_id>`, bound only by that provider's queue
`advocacy.<provider_id>`) and closes its own case. The event carries ids, codes and dates
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
from datetime import datetime

import msgspec

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.continuity import deadlines
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
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow
from shared.messaging.envelope import Event

_SUMMARY_KEYS = {f.name for f in msgspec.structs.fields(events.ReferralSummary)}

log = logging.getLogger(__name__)
ACTOR = "handover"


class Handover:
    def __init__(self, provider_id: str):
        self.provider_id = provider_id

    # --- sending ----------------------------------------------------------------------------------------

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
            summary=msgspec.convert(
                {k: v for k, v in summary.items() if k in _SUMMARY_KEYS and v is not None}, events.ReferralSummary
            ),
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
        timeline.note(uow, case.offer_id, domain.CASE_CLOSED_KIND, actor, f"case {case.id} closed: handed over", now)
        return handover

    # --- receiving --------------------------------------------------------------------------------------

    def receive(self, uow: AdvocacyUnitOfWork, event: Event) -> Case:
        """The case arrives `opening`: it opens (case.opened) once intake has moved the allocation to us and we
        have fetched the referral (allocation.transferred), so nothing is said in our name about a referral
        intake does not yet know we hold."""
        data: events.CaseHandover = event.data
        sender = data.from_provider_id
        now = utcnow()
        summary = {"org_id": data.org_id, **msgspec.to_builtins(data.summary)}
        offer = Offer(
            id=f"{domain.HANDOVER_OFFER_PREFIX}{data.transition_id}",
            provider_id=self.provider_id,
            referral_id=data.referral_id,
            status=domain.OFFER_ACCEPTED,
            summary=summary,
            offered_at=data.handed_over_at,
            respond_by=None,
            responded_at=now,
            received_at=now,
            updated_at=now,
        )
        uow.offers.add(offer)
        for entry in data.timeline:
            uow.timeline.add(TimelineEntry(offer_id=offer.id, at=entry.at, kind=entry.kind, actor=sender, detail=""))
        case = Case(
            id=str(uuid.uuid4()),
            provider_id=self.provider_id,
            referral_id=offer.referral_id,
            offer_id=offer.id,
            advocate=self._advocate(uow, summary.get("languages") or []),
            status=domain.CASE_OPENING,
            referral=None,
            opened_at=now,
            updated_at=now,
        )
        uow.cases.add(case)
        self._restore(uow, case, data, now)
        detail = f"case received from provider {sender}; assigned to advocate {case.advocate.id}"
        timeline.note(uow, offer.id, domain.CASE_RECEIVED, event.source, detail, now)
        return case

    def _advocate(self, uow: AdvocacyUnitOfWork, languages: list[str]) -> Advocate:
        """The receiving provider agreed to take the case: it goes to the best advocate with room, else to
        the least loaded active one (a coordinator can hand it on) rather than being refused."""
        advocates = uow.advocates.all(lock=True)
        loads = uow.cases.caseloads()
        views = [domain.AdvocateLoad.of(a, loads.get(a.id, 0)) for a in advocates]
        chosen = domain.choose_advocate(views, languages) or min(
            (v for v in views if v.active), key=lambda v: (v.caseload, v.id), default=None
        )
        if chosen is None:
            raise RuntimeError("no active advocate to receive a handed-over case yet")  # retried later
        return next(a for a in advocates if a.id == chosen.id)

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
