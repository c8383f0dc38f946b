"""What the advocate's page lists: each case with its next deadline (overdue first), and upcoming transitions.

A deadline is an open clock's due date or an open transition's planned date; a missed transition stays a
deadline (overdue) until it is completed or re-planned: it is exactly what must not be lost. Only a clock of
nature `deadline` can be overdue (issue 12): a minimum (the earliest CG decision) is listed until it is
reached and a support end until it ends, never as overdue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from services.advocacy import domain
from services.advocacy.continuity import deadlines as rules
from services.advocacy.models import Advocate, Case, Clock, Transition
from services.advocacy.web.labels import clock_words, transition_label

UPCOMING_DAYS = 120
OPEN_OR_MISSED = (*domain.OPEN_TRANSITION_STATUSES, domain.TRANSITION_MISSED)


@dataclass
class Deadline:
    on: date
    what: str  # what the page shows, e.g. "Earliest CG decision: from 21 Nov 2026" or "Turning 18"
    nature: str = rules.DEADLINE  # a transition's planned date is a deadline

    def overdue(self, today: date) -> bool:
        return self.nature == rules.DEADLINE and self.on < today

    @property
    def soon(self) -> str | None:
        """What the page says when it is near: a minimum is a date to prepare for, not to meet."""
        words = {rules.DEADLINE: _("Due soon"), rules.SUPPORT_END: _("Ends soon")}
        return words.get(self.nature)


def _still_ahead(clock: Clock, today: date) -> bool:
    """A reached minimum or an ended support period is past news, not a next deadline."""
    if clock.nature == rules.MINIMUM:
        return clock.due_on > today
    if clock.nature == rules.SUPPORT_END:
        return clock.due_on >= today
    return True


@dataclass
class CaseRow:
    case: Case
    label: str
    next: Deadline | None
    overdue: bool
    deadlines: list[Deadline] = field(default_factory=list)


def person_label(case: Case) -> str:
    """The name the advocate knows the person by. A Duty to Notify carries none; before disclosure there
    is none yet: the page then shows the case's short id."""
    subject = (case.referral or {}).get("subject") or {}
    name = " ".join(part for part in (subject.get("given_name"), subject.get("family_name")) if part)
    return name or _("Case %(id)s", id=case.id[:8])


def visible_cases(db: Session, advocate: Advocate) -> list[Case]:
    """An advocate sees their own live cases; a coordinator sees the whole provider's."""
    query = (
        select(Case)
        .where(Case.provider_id == advocate.provider_id, Case.status.in_(domain.LIVE_CASE_STATUSES))
        .options(selectinload(Case.advocate))
    )
    if advocate.role != domain.ROLE_COORDINATOR:
        query = query.where(Case.advocate_id == advocate.id)
    return list(db.scalars(query.order_by(Case.opened_at, Case.id)))


def caseload(db: Session, advocate: Advocate, today: date) -> list[CaseRow]:
    cases = visible_cases(db, advocate)
    ids = [c.id for c in cases]
    deadlines: dict[str, list[Deadline]] = {case_id: [] for case_id in ids}
    for clock in db.scalars(select(Clock).where(Clock.case_id.in_(ids), Clock.stopped_at.is_(None))):
        if _still_ahead(clock, today):
            what = clock_words(clock.kind, clock.nature, rules.RUNNING, clock.due_on)
            deadlines[clock.case_id].append(Deadline(clock.due_on, what, clock.nature))
    for transition in db.scalars(
        select(Transition).where(Transition.case_id.in_(ids), Transition.status.in_(OPEN_OR_MISSED))
    ):
        deadlines[transition.case_id].append(Deadline(transition.planned_for, transition_label(transition.kind)))
    rows = []
    for case in cases:
        mine = sorted(deadlines[case.id], key=lambda d: d.on)
        late = [d for d in mine if d.overdue(today)]
        first = late[0] if late else (mine[0] if mine else None)
        rows.append(CaseRow(case, person_label(case), first, bool(late), mine))
    # Overdue first (most overdue at the top), then the nearest deadline, then cases with none. The next
    # deadline is the first that can be overdue when one is, so a minimum never hides a breach.
    return sorted(rows, key=lambda r: (not r.overdue, r.next is None, r.next.on if r.next else date.max, r.case.id))


def upcoming_transitions(db: Session, advocate: Advocate, today: date) -> list[dict[str, Any]]:
    cases = {c.id: c for c in visible_cases(db, advocate)}
    horizon = today + timedelta(days=UPCOMING_DAYS)
    rows = db.scalars(
        select(Transition)
        .where(
            Transition.case_id.in_(list(cases)),
            Transition.status.in_(OPEN_OR_MISSED),
            Transition.planned_for <= horizon,
        )
        .order_by(Transition.planned_for, Transition.id)
    )
    return [
        {
            "transition": t,
            "case": cases[t.case_id],
            "label": person_label(cases[t.case_id]),
            "overdue": t.planned_for < today,
        }
        for t in rows
    ]


@dataclass
class Person:
    """What the case page says about the person, from the disclosed referral (nothing before disclosure)."""

    languages: list[str]
    interpreter_needed: bool
    age: str  # "29", "about 16 (estimated)", "age disputed", "not known"
    contact_method: str | None  # a safe_contact method code
    contact_value: str | None
    may_leave_message: bool
    external_reference: str | None


def person_details(case: Case, today: date) -> Person | None:
    referral = case.referral
    if not referral:
        return None
    subject = referral.get("subject") or {}
    contact = subject.get("safe_contact") or {}
    return Person(
        languages=list(subject.get("languages") or []),
        interpreter_needed=bool(subject.get("interpreter_needed")),
        age=_age(subject, today),
        contact_method=contact.get("method"),
        contact_value=contact.get("value"),
        may_leave_message=bool(contact.get("safe_to_leave_message")),
        external_reference=referral.get("external_reference"),
    )


def _age(subject: dict[str, Any], today: date) -> str:
    if subject.get("age_disputed"):
        return _("age disputed")
    born = subject.get("date_of_birth")
    if born:
        try:
            birth = date.fromisoformat(str(born))
        except ValueError:
            return _("not known")
        years = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
        return str(years)
    estimate = subject.get("age_estimate")
    return _("about %(num)d (estimated)", num=estimate) if isinstance(estimate, int) else _("not known")
