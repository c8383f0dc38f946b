"""The rules of one charity's casework, with no Flask or SQLAlchemy: statuses, who may take a case.

Each rule that can fail has its own exception; `api.py` maps each to one HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from contracts.events import CLOSURE_OUTCOMES as CLOSURE_OUTCOMES  # the codes a case.closed carries
from contracts.events import DECLINE_REASONS as DECLINE_REASONS  # the codes an offer.declined carries
from contracts.events import ORG_ID_PATTERN, PROVIDER_ID_PATTERN

OFFER_PENDING, OFFER_ACCEPTED, OFFER_DECLINED, OFFER_WITHDRAWN = (
    "pending",
    "accepted",
    "declined",
    "withdrawn",
)
OFFER_STATUSES = (OFFER_PENDING, OFFER_ACCEPTED, OFFER_DECLINED, OFFER_WITHDRAWN)

# A case is `opening` from acceptance until intake confirms the allocation and the referral is disclosed.
CASE_OPENING, CASE_OPEN, CASE_CLOSED = "opening", "open", "closed"
CASE_STATUSES = (CASE_OPENING, CASE_OPEN, CASE_CLOSED)
LIVE_CASE_STATUSES = (CASE_OPENING, CASE_OPEN)  # what counts towards an advocate's caseload
HANDOVER_OFFER_PREFIX = "handover-"  # a case handed over to us stands on an offer row of this id prefix


# Timeline kinds (what happened to an offer and the case it became).
OFFER_RECEIVED = "offer_received"
OFFER_ACCEPTED_KIND = "offer_accepted"
OFFER_DECLINED_KIND = "offer_declined"
OFFER_WITHDRAWN_KIND = "offer_withdrawn"
REFERRAL_DISCLOSED = "referral_disclosed"
CASE_OPENED = "case_opened"
REFERRAL_WITHDRAWN = "referral_withdrawn"
CASE_CLOSED_KIND = "case_closed"

# What an offer keeps from `referral.offered`: the minimum a charity needs to decide (DESIGN 2: share
# the minimum). Anything else in the event is dropped, so a mistake upstream cannot land personal data here.
SUMMARY_FIELDS = (
    "org_id",
    "is_child",
    "pathway",
    "region",
    "local_authority",
    "languages",
    "interpreter_needed",
    "sex",
    "exploitation_types",
    "needs",
    "immediate_danger",
    "re_trafficking_risk",
)


class CaseworkError(Exception):
    """A rule of casework refused the request; the message says why."""


class OfferNotFound(CaseworkError):
    pass


class AdvocateNotFound(CaseworkError):
    pass


class CaseNotFound(CaseworkError):
    pass


class OfferNotPending(CaseworkError):
    pass


class AdvocateUnavailable(CaseworkError):
    """The advocate named to take a case is inactive or at their maximum caseload."""


class NoAdvocateAvailable(CaseworkError):
    """Nobody active has room for another case."""


class AdvocateEmailTaken(CaseworkError):
    pass


class AdvocateHasLiveCases(CaseworkError):
    """An advocate is deactivated only once every case they hold has been handed over or closed."""


def ensure_no_live_cases(advocate_id: str, live_cases: int) -> None:
    if live_cases:
        cases = "case" if live_cases == 1 else "cases"
        raise AdvocateHasLiveCases(
            f"advocate {advocate_id} still holds {live_cases} live {cases}: hand them over before deactivating"
        )


@dataclass(frozen=True)
class AdvocateLoad:
    """An advocate as the choice of who takes a case sees them."""

    id: str
    languages: tuple[str, ...]
    max_caseload: int
    caseload: int
    active: bool = True

    @classmethod
    def of(cls, advocate: Any, caseload: int) -> AdvocateLoad:
        """From an advocate's record (anything with their id, languages, max_caseload and active)."""
        return cls(advocate.id, tuple(advocate.languages), advocate.max_caseload, caseload, advocate.active)

    @property
    def has_room(self) -> bool:
        return self.active and self.caseload < self.max_caseload

    @property
    def load(self) -> float:
        return self.caseload / self.max_caseload


def ensure_pending(offer_id: str, status: str) -> None:
    """Only a pending offer can be answered: an answer is final, and a withdrawn offer is gone."""
    if status != OFFER_PENDING:
        raise OfferNotPending(f"offer {offer_id} is {status}, not pending: it can no longer be answered")


def ensure_can_take(advocate: AdvocateLoad) -> None:
    if not advocate.active:
        raise AdvocateUnavailable(f"advocate {advocate.id} is inactive")
    if not advocate.has_room:
        load = f"{advocate.caseload}/{advocate.max_caseload}"
        raise AdvocateUnavailable(f"advocate {advocate.id} is at their maximum caseload ({load})")


def choose_advocate(advocates: Iterable[AdvocateLoad], languages: Sequence[str]) -> AdvocateLoad | None:
    """Who takes a new case: among active advocates with room, prefer one who shares a language with the
    survivor (fewer interpreted conversations), then the least loaded (by share of their own maximum,
    then by count), ties broken by id so the choice is reproducible. None when nobody has room."""
    wanted = {language.lower() for language in languages}
    candidates = [advocate for advocate in advocates if advocate.has_room]
    if not candidates:
        return None

    def rank(advocate: AdvocateLoad) -> tuple[bool, float, int, str]:
        shares_language = bool(wanted & {language.lower() for language in advocate.languages})
        return (not shares_language, advocate.load, advocate.caseload, advocate.id)

    return min(candidates, key=rank)


def normalise_languages(languages: Iterable[str]) -> list[str]:
    """ISO 639-1 codes in lower case, each once, in the order given."""
    seen: list[str] = []
    for language in languages:
        code = language.strip().lower()
        if code not in seen:
            seen.append(code)
    return seen


def offer_summary(data: dict[str, Any]) -> dict[str, Any]:
    """The minimised referral summary an offer keeps from its `referral.offered` payload."""
    return {name: data.get(name) for name in SUMMARY_FIELDS}


# --- continuity of care (issue 4): NRM decisions and transitions -----------------------------------------

ROLE_ADVOCATE, ROLE_COORDINATOR = "advocate", "coordinator"
ROLES = (ROLE_ADVOCATE, ROLE_COORDINATOR)

TURNING_18, RELOCATION, MOVE_ON, ADVOCATE_HANDOVER, PROVIDER_HANDOVER = (
    "turning_18",
    "relocation",
    "move_on",
    "advocate_handover",
    "provider_handover",
)
TRANSITION_KINDS = (TURNING_18, RELOCATION, MOVE_ON, ADVOCATE_HANDOVER, PROVIDER_HANDOVER)
TRANSITION_PLANNED, TRANSITION_IN_PROGRESS, TRANSITION_COMPLETED, TRANSITION_MISSED, TRANSITION_CANCELLED = (
    "planned",
    "in_progress",
    "completed",
    "missed",
    "cancelled",  # its case closed first
)
TRANSITION_STATUSES = (
    TRANSITION_PLANNED,
    TRANSITION_IN_PROGRESS,
    TRANSITION_COMPLETED,
    TRANSITION_MISSED,
    TRANSITION_CANCELLED,
)
OPEN_TRANSITION_STATUSES = (TRANSITION_PLANNED, TRANSITION_IN_PROGRESS)

# The checklist of a transition. Re-consent applies only at 18: a child needs no consent to be referred,
# an adult does (DESIGN 2), and 70% of young people drop out at this point today.
CONSENT_REOBTAINED = "consent_reobtained"
# The young person's decision that completes a turning_18 transition (casework.consent): consent given, the case
# continues as an adult's; refused, the transition completes and the case closes, never a forced `missed`.
CONSENT_GIVEN, CONSENT_REFUSED = "consent_given", "consent_refused"
TURNING_18_DECISIONS = (CONSENT_GIVEN, CONSENT_REFUSED)
CHECKLIST_ITEMS = (
    CONSENT_REOBTAINED,
    "receiving_agency_informed",
    "accommodation_confirmed",
    "handover_summary_written",
)

# Timeline kinds of the continuity records.
NRM_REFERENCE_RECORDED = "nrm_reference_recorded"
NRM_DECISION_RECORDED = "nrm_decision_recorded"
RECONSIDERATION_REQUESTED = "reconsideration_requested"
CLOCK_STARTED = "clock_started"
CLOCK_STOPPED = "clock_stopped"
CLOCK_DUE_SOON = "clock_due_soon"
CLOCK_BREACHED = "clock_breached"
TRANSITION_PLANNED_KIND = "transition_planned"
TRANSITION_UPDATED_KIND = "transition_updated"
TRANSITION_COMPLETED_KIND = "transition_completed"
TRANSITION_MISSED_KIND = "transition_missed"
TRANSITION_CANCELLED_KIND = "transition_cancelled"
TRANSITION_NOT_PLANNED = "transition_not_planned"
CASE_HANDED_OVER = "case_handed_over"
CASE_RECEIVED = "case_received"


class TransitionNotFound(CaseworkError):
    pass


class TransitionInvalid(CaseworkError):
    """The transition lacks what its kind needs (a receiving provider, an advocate to hand over to)."""


class TransitionClosed(CaseworkError):
    """A completed or missed transition cannot change."""


class ChecklistIncomplete(CaseworkError):
    pass


class CaseNotOpen(CaseworkError):
    """NRM records and transitions belong to an open case; a closed case is read-only."""


class DecisionUndatable(CaseworkError):
    """No NRM rule in the policy table covers the decision's date (or its deadlines fall past the calendar)."""

    field = "decided_on"


class DecisionAlreadyRecorded(CaseworkError):
    """The case has a decision of this stage already: a second one is a retried request or a mistake; a later
    outcome is recorded `on_reconsideration`."""


class DecisionNotOfCase(CaseworkError):
    """A reconsideration names a decision that is not one of the case's."""

    field = "decision_id"


# --- provider handover offers and relocation (issue 12 item 6) --------------------------------------------

HANDOVER_PENDING, HANDOVER_ACCEPTED, HANDOVER_DECLINED, HANDOVER_EXPIRED = "pending", "accepted", "declined", "expired"
HANDOVER_STATUSES = (HANDOVER_PENDING, HANDOVER_ACCEPTED, HANDOVER_DECLINED, HANDOVER_EXPIRED)
# Timeline kinds of a handover, at the sender and at the receiver.
HANDOVER_OFFERED_KIND = "handover_offered"
HANDOVER_ACCEPTED_KIND = "handover_accepted"
HANDOVER_DECLINED_KIND = "handover_declined"
HANDOVER_UNANSWERED_KIND = "handover_unanswered"
CASE_RELOCATED = "case_relocated"
# What a sender's provider_handover transition records when it did not happen (its `outcome`).
OUTCOME_UNANSWERED = "unanswered"
OUTCOME_ACCEPTED = "accepted"


class HandoverNotFound(CaseworkError):
    pass


class HandoverNotPending(CaseworkError):
    """Only a pending handover, within its deadline, can be answered: an answer is final."""


class HandoverAwaitingAnswer(CaseworkError):
    """A provider handover has been offered: it completes when the receiving provider accepts."""


class RegionUnknown(CaseworkError):
    """A relocation's new_region is not a region (contracts.events.Region), or a transition of another kind
    names one."""

    field = "new_region"


class RegionNotServed(CaseworkError):
    """A relocation to a region this provider does not serve needs the provider the case hands over to."""

    field = "receiving_provider_id"


def ensure_handover_pending(handover_id: str, status: str, respond_by, now) -> None:
    if status != HANDOVER_PENDING:
        raise HandoverNotPending(f"handover {handover_id} is {status}: it can no longer be answered")
    if now > respond_by:
        raise HandoverNotPending(f"handover {handover_id} was to be answered by {respond_by.isoformat()}: too late")


def serves(regions: Iterable[str], region: str | None) -> bool:
    """Whether a provider serving `regions` serves `region`: an empty set means no regions are configured."""
    wanted = set(regions)
    return not wanted or region is None or region in wanted


def decline_outcome(reason: str) -> str:
    return f"declined: {reason}"


def checklist_for(kind: str) -> dict[str, bool]:
    return {item: False for item in CHECKLIST_ITEMS if item != CONSENT_REOBTAINED or kind == TURNING_18}


def ensure_transition_fields(
    kind: str,
    *,
    receiving_provider_id: str | None,
    to_advocate_id: str | None,
    own_provider_id: str,
    receiving_agency: str | None = None,
) -> None:
    # They travel in transition.* and case.handover: ids as the catalogue states them, from every path (the
    # API's schema, the page's form), or the event would be parked at its consumer.
    if receiving_agency is not None and not re.match(ORG_ID_PATTERN, receiving_agency):
        raise TransitionInvalid("receiving_agency must be an organisation id, e.g. leeds-city-council")
    if receiving_provider_id is not None and not re.match(PROVIDER_ID_PATTERN, receiving_provider_id):
        raise TransitionInvalid("receiving_provider_id must be a provider id: 2-63 of a-z, 0-9 and -")
    if kind == PROVIDER_HANDOVER:
        if not receiving_provider_id:
            raise TransitionInvalid("a provider_handover needs receiving_provider_id")
        if receiving_provider_id == own_provider_id:
            raise TransitionInvalid("a provider_handover goes to another provider, not to this one")
    if kind == ADVOCATE_HANDOVER and not to_advocate_id:
        raise TransitionInvalid("an advocate_handover needs to_advocate_id: the advocate changes only explicitly")


def ensure_open_transition(transition_id: str, status: str) -> None:
    if status not in OPEN_TRANSITION_STATUSES:
        raise TransitionClosed(f"transition {transition_id} is {status}: it can no longer change")


def tick_checklist(checklist: dict[str, bool], ticks: dict[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(ticks) - set(checklist))
    if unknown:
        raise TransitionInvalid(f"not on this transition's checklist: {', '.join(unknown)}")
    return {**checklist, **{item: bool(done) for item, done in ticks.items()}}


def status_after_ticks(checklist: dict[str, bool]) -> str:
    return TRANSITION_IN_PROGRESS if any(checklist.values()) else TRANSITION_PLANNED


def ensure_checklist_complete(transition_id: str, checklist: dict[str, bool]) -> None:
    """A transition is complete when every item on its checklist is done: a survivor is lost at a handover
    that skipped telling the receiving agency or writing the summary."""
    left = [item for item, done in checklist.items() if not done]
    if left:
        raise ChecklistIncomplete(f"transition {transition_id} still needs: {', '.join(left)}")


def event_date(kind: str, day: date) -> str:
    """How a date goes out in an event. An 18th birthday is a date of birth by another name, and events carry
    no dates of birth (DESIGN 3): for turning 18, only the month leaves the service."""
    return day.strftime("%Y-%m") if kind == TURNING_18 else day.isoformat()
