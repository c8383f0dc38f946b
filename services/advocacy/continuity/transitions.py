"""Transitions, the points where survivors are lost: planned ahead, with a receiving agency or provider and
a checklist, completed or flagged as missed (DESIGN 2).

A relocation keeps the advocate: only an `advocate_handover` changes who holds the case, and only when it
is completed. Completing a `provider_handover` offers it to the receiving provider; it completes, and the
case moves to that provider's instance, when the receiver accepts (`handover.py`). A relocation with a
`new_region` changes the case's region on completion, and plans a provider handover when this provider does
not serve it (`relocation.py`). Each change writes a timeline entry; planned, completed and missed are published.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.continuity.wall_clock import WallClock, today
from services.advocacy.models import Advocate, Case, Transition
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow

if TYPE_CHECKING:
    from services.advocacy.continuity.handover import Handover
    from services.advocacy.continuity.relocation import Relocation

ORIGIN_PERSON = "planned by a person"


def transition_event_data(transition: Transition) -> dict[str, Any]:
    """What `transition.*` events say: ids, kinds and dates (notifications routes `receiving_agency`)."""
    return {
        "transition_id": transition.id,
        "kind": transition.kind,
        "status": transition.status,
        "planned_for": domain.event_date(transition.kind, transition.planned_for),
        "date_basis": transition.date_basis,
        "receiving_agency": transition.receiving_agency,
        "receiving_provider_id": transition.receiving_provider_id,
    }


class Transitions:
    def __init__(self, provider_id: str, wall_clock: WallClock, *, handover: Handover, relocation: Relocation):
        self.provider_id = provider_id
        self.wall_clock = wall_clock
        self.handover = handover  # sends a completed provider_handover: wired at construction, never later
        self.relocation = relocation  # a completed relocation's new region and its clocks

    def plan(
        self,
        uow: AdvocacyUnitOfWork,
        case: Case,
        *,
        kind: str,
        planned_for: date,
        actor: str,
        receiving_agency: str | None = None,
        receiving_provider_id: str | None = None,
        to_advocate_id: str | None = None,
        date_basis: str = "exact",
        origin: str = ORIGIN_PERSON,
        new_region: str | None = None,
    ) -> Transition:
        ensure_open(case)
        domain.ensure_transition_fields(
            kind,
            receiving_provider_id=receiving_provider_id,
            to_advocate_id=to_advocate_id,
            own_provider_id=self.provider_id,
            receiving_agency=receiving_agency,
        )
        self.relocation.check_plan(kind, new_region, receiving_provider_id)
        if to_advocate_id is not None:
            self._advocate(uow, to_advocate_id)
        now = utcnow()
        transition = Transition(
            id=str(uuid.uuid4()),
            provider_id=self.provider_id,
            case_id=case.id,
            kind=kind,
            status=domain.TRANSITION_PLANNED,
            planned_for=planned_for,
            date_basis=date_basis,
            receiving_agency=receiving_agency,
            receiving_provider_id=receiving_provider_id,
            to_advocate_id=to_advocate_id,
            checklist=domain.checklist_for(kind),
            origin=origin,
            created_by=actor,
            created_at=now,
            updated_at=now,
            new_region=new_region,
        )
        uow.transitions.add(transition)
        detail = f"{kind} transition {transition.id} planned for {planned_for.isoformat()} ({date_basis}); {origin}"
        timeline.note(uow, case.offer_id, domain.TRANSITION_PLANNED_KIND, actor, detail, now)
        timeline.stage(uow, case, events.TransitionPlanned, **transition_event_data(transition))
        return transition

    def get(self, uow: AdvocacyUnitOfWork, case: Case, transition_id: str, *, lock: bool = False) -> Transition:
        found = uow.transitions.get(case.id, transition_id, lock=lock)
        if found is None:
            raise domain.TransitionNotFound(f"transition {transition_id} not found")
        return found

    def update(
        self,
        uow: AdvocacyUnitOfWork,
        case: Case,
        transition_id: str,
        *,
        actor: str,
        ticks: dict[str, bool] | None = None,
        planned_for: date | None = None,
    ) -> Transition:
        ensure_open(case)  # a closed case is read-only
        transition = self.get(uow, case, transition_id, lock=True)
        domain.ensure_open_transition(transition.id, transition.status)
        changes = []
        if ticks:
            transition.checklist = domain.tick_checklist(transition.checklist, ticks)
            transition.status = domain.status_after_ticks(transition.checklist)
            changes.append("checklist: " + ", ".join(f"{k}={'done' if v else 'not done'}" for k, v in ticks.items()))
        if planned_for is not None and planned_for != transition.planned_for:
            transition.planned_for = planned_for
            changes.append(f"planned for {planned_for.isoformat()}")
        if changes:
            transition.updated_at = utcnow()
            detail = f"{transition.kind} transition {transition.id}: " + "; ".join(changes)
            timeline.note(uow, case.offer_id, domain.TRANSITION_UPDATED_KIND, actor, detail, transition.updated_at)
        return transition

    def complete(
        self, uow: AdvocacyUnitOfWork, case: Case, transition_id: str, *, actor: str, decision: str | None = None
    ) -> Transition:
        """`decision`: turning_18's answer (casework.consent checks it): given is the re-consent on the checklist;
        refused completes it whatever is left, as that outcome."""
        ensure_open(case)
        transition = self.get(uow, case, transition_id, lock=True)
        domain.ensure_open_transition(transition.id, transition.status)
        if decision == domain.CONSENT_GIVEN:
            transition.checklist = {**transition.checklist, domain.CONSENT_REOBTAINED: True}
        if decision != domain.CONSENT_REFUSED:
            domain.ensure_checklist_complete(transition.id, transition.checklist)
        if decision is not None:
            transition.decision = decision
        if transition.kind == domain.PROVIDER_HANDOVER:
            # Offered first: it completes when the receiving provider accepts (complete_handover).
            self.handover.offer(uow, case, transition, actor=actor)
            return transition
        return self._finish(uow, case, transition, actor=actor)

    def complete_handover(self, uow: AdvocacyUnitOfWork, case: Case, transition: Transition, *, actor: str):
        """The receiving provider accepted the offered provider_handover: it completes and the case goes."""
        return self._finish(uow, case, transition, actor=actor)

    def _finish(self, uow: AdvocacyUnitOfWork, case: Case, transition: Transition, *, actor: str) -> Transition:
        now = utcnow()
        if transition.kind == domain.ADVOCATE_HANDOVER and transition.to_advocate_id:
            self._hand_to_advocate(uow, case, transition.to_advocate_id, actor)
        moved_on = today(self.wall_clock)
        if transition.kind == domain.RELOCATION:
            self.relocation.move(uow, case, transition, actor=actor, on=moved_on)
        transition.status, transition.completed_at, transition.updated_at = domain.TRANSITION_COMPLETED, now, now
        self._stop_clocks(uow, case, transition, now)
        detail = f"{transition.kind} transition {transition.id} completed"
        if transition.decision:  # turning_18: the young person's decision
            detail += f": {transition.decision}"
        timeline.note(uow, case.offer_id, domain.TRANSITION_COMPLETED_KIND, actor, detail, now)
        timeline.stage(uow, case, events.TransitionCompleted, **transition_event_data(transition))
        if transition.kind == domain.PROVIDER_HANDOVER:
            self.handover.send(uow, case, transition, actor=actor)
        if transition.kind == domain.RELOCATION and self.relocation.needs_handover(transition.new_region):
            origin = f"relocation to {transition.new_region}, not served here"
            receiver = transition.receiving_provider_id
            self.plan(
                uow, case, kind=domain.PROVIDER_HANDOVER, planned_for=moved_on, actor=actor,
                receiving_provider_id=receiver, origin=origin,
            )  # fmt: skip
        return transition

    def cancel_open(self, uow: AdvocacyUnitOfWork, case: Case, *, actor: str, now: datetime) -> list[Transition]:
        """The case is closing: what was still planned for it will not happen (no event: case.closed says so)."""
        cancelled = uow.transitions.open_of(case.id)
        for transition in cancelled:
            transition.status, transition.updated_at = domain.TRANSITION_CANCELLED, now
            detail = f"{transition.kind} transition {transition.id} cancelled: the case closed"
            timeline.note(uow, case.offer_id, domain.TRANSITION_CANCELLED_KIND, actor, detail, now)
        return cancelled

    def _stop_clocks(self, uow: AdvocacyUnitOfWork, case: Case, transition: Transition, now) -> None:
        # The clock a transition answers (turning 18's notice, the end of move-on or exit support) stops with it.
        kinds = {domain.MOVE_ON: ("move_on", "exit_period")}.get(transition.kind, ())
        for clock in uow.clocks.running(case.id, lock=True):
            if clock.transition_id == transition.id or clock.kind in kinds:
                clock.stopped_at, clock.stopped_reason = now, f"transition {transition.kind} completed"

    def _advocate(self, uow: AdvocacyUnitOfWork, advocate_id: str) -> Advocate:
        advocate = uow.advocates.get(advocate_id)
        if advocate is None:
            raise domain.AdvocateNotFound(f"advocate {advocate_id} not found")
        return advocate

    def _hand_to_advocate(self, uow: AdvocacyUnitOfWork, case: Case, advocate_id: str, actor: str) -> None:
        advocate = self._advocate(uow, advocate_id)
        if not advocate.active:
            raise domain.AdvocateUnavailable(f"advocate {advocate.id} is inactive")
        previous = case.advocate_id
        case.advocate, case.updated_at = advocate, utcnow()
        detail = f"case handed from advocate {previous} to advocate {advocate.id}"
        timeline.note(uow, case.offer_id, domain.TRANSITION_UPDATED_KIND, actor, detail, case.updated_at)


def ensure_open(case: Case) -> None:
    if case.status != domain.CASE_OPEN:
        raise domain.CaseNotOpen(f"case {case.id} is {case.status}, not open")
