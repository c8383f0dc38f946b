"""The contact log and the no-contact rule (DESIGN 5, issue 13 items 2-3).

An advocate logs each attempt to reach the person: when, how, and what came of it. Only `reached` is a
successful contact. Nothing notices a survivor nobody has reached for weeks, the moment re-trafficking happens,
unless something counts: the no-contact rule (the policy table's `no_contact_adult` and `no_contact_child`,
practice guidance rather than statute) announces `case.contact_overdue` once per episode. An episode starts
when the rule lapses, counted from the last reached contact (or the case's opening), and ends with a reached
contact that brings the case back within the rule; the next lapse is a new episode. The scheduler finds lapsed
cases with the clocks' exactly-once claim (uow.contacts.claim_overdue).

A contact's note is special-category: it is kept here and shown to the charity only, never put in an event, a
log line or the timeline (which says how and with what outcome, nothing more).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.continuity.policy import Policy, PolicyError
from services.advocacy.continuity.transitions import ensure_open
from services.advocacy.continuity.wall_clock import LONDON, WallClock
from services.advocacy.models import Case, CaseContact
from services.advocacy.uow import AdvocacyUnitOfWork

METHODS = ("phone", "in_person", "video", "text", "email", "via_third_party")
OUTCOMES = ("reached", "no_answer", "unsafe_to_talk", "message_left", "wrong_number")
REACHED = "reached"
NO_CONTACT_ADULT, NO_CONTACT_CHILD = "no_contact_adult", "no_contact_child"
CONTACT_LOGGED_KIND, CONTACT_OVERDUE_KIND = "contact_logged", "contact_overdue"
# How far ahead of this server's clock a contact's `at` may be (a browser's or a laptop's clock).
CLOCK_SKEW = timedelta(minutes=5)
ACTOR = "scheduler"


class CareInvalid(domain.CaseworkError):
    """A contact, note or risk flag breaks a rule; `field` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def is_child(case: Case) -> bool:
    """A child's case by the referral disclosed (the same flag the claim query reads)."""
    return bool((case.referral or {}).get("is_child"))


def counted_from(case: Case) -> datetime:
    return case.last_reached_at or case.opened_at


class Contacts:
    def __init__(self, policy: Policy, wall_clock: WallClock):
        self.policy = policy
        self.wall_clock = wall_clock

    def rule_days(self, child: bool, now: datetime) -> tuple[int, str]:
        """The rule in force on `now`'s day: its days and its version, e.g. `no_contact_adult@*:2009-04-01`."""
        key = NO_CONTACT_CHILD if child else NO_CONTACT_ADULT
        rule = self.policy.duration(key, on=now.astimezone(LONDON).date(), region=None)
        if rule.unit != "days":  # counted in calendar days from a moment, not in working days
            raise PolicyError(f"{key} is in {rule.unit}, not days")
        return rule.value, rule.version

    def lapsed(self, case: Case, now: datetime) -> bool:
        days, _ = self.rule_days(is_child(case), now)
        return counted_from(case) < now - timedelta(days=days)

    def log(
        self,
        uow: AdvocacyUnitOfWork,
        case: Case,
        *,
        at: datetime,
        method: str,
        outcome: str,
        actor: str,
        interpreter_used: bool = False,
        note: str | None = None,
    ) -> CaseContact:
        """`method` and `outcome`: one of METHODS and OUTCOMES (the API's schema checks them)."""
        ensure_open(case)  # a closed case is read-only
        now = self.wall_clock.now()
        if at > now + CLOCK_SKEW:
            raise CareInvalid("at", "at is in the future")
        if method not in METHODS:
            raise CareInvalid("method", f"method must be one of {', '.join(METHODS)}")
        if outcome not in OUTCOMES:
            raise CareInvalid("outcome", f"outcome must be one of {', '.join(OUTCOMES)}")
        contact = CaseContact(
            id=str(uuid.uuid4()),
            provider_id=case.provider_id,
            case_id=case.id,
            at=at,
            method=method,
            outcome=outcome,
            interpreter_used=interpreter_used,
            note=note,
            recorded_by=actor,
            recorded_at=now,
        )
        uow.contacts.add(contact)
        if outcome == REACHED:
            uow.cases.lock(case)  # the scheduler's claim and this take turns on the case's episode
            ensure_open(case)
            if case.last_reached_at is None or at > case.last_reached_at:
                case.last_reached_at = at
            if case.contact_overdue_at is not None and not self.lapsed(case, now):
                case.contact_overdue_at = None  # the episode ends; the next lapse is announced again
        detail = f"contact by {method.replace('_', ' ')}: {outcome.replace('_', ' ')}"
        timeline.note(uow, case.offer_id, CONTACT_LOGGED_KIND, actor, detail, now)
        return contact

    def announce_overdue(self, uow: AdvocacyUnitOfWork, now: datetime, limit: int) -> list[Case]:
        """The scheduler's step: claim the cases whose rule lapsed and stage `case.contact_overdue` for each."""
        adult_days, _ = self.rule_days(False, now)
        child_days, _ = self.rule_days(True, now)
        claimed = uow.contacts.claim_overdue(
            now - timedelta(days=adult_days), now - timedelta(days=child_days), now, limit
        )
        for case in claimed:
            child = is_child(case)
            days, version = self.rule_days(child, now)
            since = counted_from(case).astimezone(LONDON).date()
            due_on = since + timedelta(days=days)
            timeline.stage(
                uow,
                case,
                events.CaseContactOverdue,
                is_child=child,
                counted_from=since.isoformat(),
                due_on=due_on.isoformat(),
                policy_version=version,
            )
            detail = f"no successful contact since {since.isoformat()}: over {days} days ({version})"
            timeline.note(uow, case.offer_id, CONTACT_OVERDUE_KIND, ACTOR, detail, now)
        return claimed
