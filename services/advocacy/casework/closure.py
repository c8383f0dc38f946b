"""How casework ends: a case closed with its outcome, an advocate who leaves deactivated (DESIGN 5, issue 12).

A closed case is read-only: its clocks stop, its open transitions are cancelled, and every later write to it
is refused (`continuity.transitions.ensure_open`). Closing frees the advocate's place, so the provider's
capacity is announced; the referrer hears `case.closed` with the outcome code only (the note stays here).
"""

from __future__ import annotations

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.casework.cases import Casework
from services.advocacy.continuity.transitions import Transitions, ensure_open
from services.advocacy.models import Advocate, Case
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow


class Closure:
    def __init__(self, casework: Casework, transitions: Transitions):
        self.casework = casework
        self.transitions = transitions

    def close(self, uow: AdvocacyUnitOfWork, case: Case, *, outcome: str, actor: str, note: str | None = None) -> Case:
        """`outcome`: one of domain.CLOSURE_OUTCOMES (the API's schema and the page check it)."""
        ensure_open(case)
        uow.cases.lock(case)  # a closure and another write to the case take turns
        ensure_open(case)
        now = utcnow()
        for clock in uow.clocks.running(case.id, lock=True):
            clock.stopped_at, clock.stopped_reason = now, f"case closed: {outcome}"
        self.transitions.cancel_open(uow, case, actor=actor, now=now)
        case.status, case.closed_at, case.updated_at = domain.CASE_CLOSED, now, now
        detail = f"case {case.id} closed: {outcome}" + (f"; note: {note}" if note else "")
        timeline.note(uow, case.offer_id, domain.CASE_CLOSED_KIND, actor, detail, now)
        timeline.stage(uow, case, events.CaseClosed, outcome=outcome)
        self.casework.announce_capacity(uow)
        return case

    def deactivate_advocate(self, uow: AdvocacyUnitOfWork, advocate_id: str) -> Advocate:
        """Only an advocate whose cases have all been handed over (or closed) leaves; from then on they take
        no offers (domain.choose_advocate skips them) and the provider's places are announced without theirs."""
        # The same locks an accept takes: no case can be given to them while they are being deactivated.
        advocate = next((a for a in uow.advocates.all(lock=True) if a.id == advocate_id), None)
        if advocate is None:
            raise domain.AdvocateNotFound(f"advocate {advocate_id} not found")
        domain.ensure_no_live_cases(advocate.id, uow.cases.caseloads().get(advocate.id, 0))
        if advocate.active:
            advocate.active, advocate.updated_at = False, utcnow()
            self.casework.announce_capacity(uow)
        return advocate
