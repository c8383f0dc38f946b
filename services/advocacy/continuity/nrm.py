"""A case's NRM record and the clocks it starts: the referral, reasonable-grounds and conclusive-grounds
decisions, reconsideration requests; and, when a case opens, its `turning_18` transition for a child.

The durations come from the versioned policy table (`policy.py`), the rules from `deadlines.py`. Every clock
row records the policy version it was computed with, so a later policy change never moves an old deadline.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.continuity import deadlines
from services.advocacy.continuity.policy import Policy, PolicyError
from services.advocacy.continuity.transitions import Transitions, ensure_open
from services.advocacy.continuity.wall_clock import today
from services.advocacy.models import Case, Clock, NrmDecision, NrmReconsideration, NrmRecord
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow

ORIGIN_CHILD = "child's case opened"
ORIGIN_POSITIVE_CG = "positive CG decision"
ORIGIN_NEGATIVE_CG = "negative CG decision: exit from NRM support"
SYSTEM = "advocacy"


class NrmRecords:
    def __init__(self, provider_id: str, policy: Policy, transitions: Transitions):
        self.provider_id = provider_id
        self.policy = policy
        self.transitions = transitions

    @property
    def wall_clock(self):
        return self.transitions.wall_clock

    # --- when a case opens ------------------------------------------------------------------------------

    def plan_for_new_case(self, uow: AdvocacyUnitOfWork, case: Case, referral: dict[str, Any], *, actor: str = SYSTEM):
        """Called in the transaction that opens the case: the NRM record (and its RG clock) for an NRM
        referral; a `turning_18` transition for a child. A Duty to Notify has neither an NRM referral nor a
        date of birth, so it starts no clock here."""

        def offered(key: str) -> Any:  # the offer's summary, loaded only for a field the referral lacks
            return (case.offer.summary or {}).get(key)

        referred_on = _date(referral.get("referred_at")) or _date(referral.get("received_at")) or today(self.wall_clock)
        region = (referral.get("location") or {}).get("region") or offered("region")
        pathway = referral.get("pathway") or offered("pathway")
        record = self.record(uow, case, create=True, referred_on=referred_on, region=region)
        if pathway == "nrm":
            self.start(uow, case, deadlines.on_nrm_referral(self.policy, referred_on, record.region), actor)
        is_child = referral["is_child"] if "is_child" in referral else offered("is_child")
        if is_child:
            self._plan_turning_18(uow, case, referral.get("subject") or {}, referred_on, record.region, actor)

    def plan_from_referral(self, uow: AdvocacyUnitOfWork, case: Case, referral: dict[str, Any], *, actor: str = SYSTEM):
        """A case received by provider handover: its NRM record and clocks came with it, but what derives from
        the person's details did not travel (events carry no birthday): plan a child's turning_18 here."""
        if not referral.get("is_child", (case.offer.summary or {}).get("is_child")):
            return
        record = self.record(uow, case)
        # An age estimate is counted from the referral date: without one (never on a real referral), today.
        referred_on = _date(referral.get("referred_at")) or record.referred_on or today(self.wall_clock)
        self._plan_turning_18(uow, case, referral.get("subject") or {}, referred_on, record.region, actor)

    def _plan_turning_18(
        self, uow: AdvocacyUnitOfWork, case: Case, subject, referred_on: date, region, actor: str
    ) -> None:
        birthday = deadlines.eighteenth_birthday(subject, referred_on)
        now = utcnow()
        if birthday is None:
            detail = "turning_18 not planned: no date of birth or age estimate (age disputed); plan it once assessed"
            timeline.note(uow, case.offer_id, domain.TRANSITION_NOT_PLANNED, actor, detail, now)
            return
        transition = self.transitions.plan(
            uow,
            case,
            kind=domain.TURNING_18,
            planned_for=birthday.on,
            actor=actor,
            date_basis=birthday.basis,
            origin=ORIGIN_CHILD
            + ("; date approximate, from an age estimate" if birthday.basis == "approximate" else ""),
        )
        spec = deadlines.on_turning_18(self.policy, birthday, region=region, today=today(self.wall_clock))
        self.start(uow, case, [spec], actor, transition_id=transition.id)

    # --- the record -----------------------------------------------------------------------------------

    def record(
        self,
        uow: AdvocacyUnitOfWork,
        case: Case,
        *,
        create: bool = False,
        referred_on: date | None = None,
        region: str | None = None,
    ) -> NrmRecord:
        found = uow.nrm.record(case.id)
        if found is None:
            now = utcnow()
            found = NrmRecord(
                case_id=case.id,
                provider_id=self.provider_id,
                referred_on=referred_on or case.opened_at.date(),
                # The offer's summary is loaded only when the referral gave no region.
                region=region or (case.offer.summary or {}).get("region"),
                created_at=now,
                updated_at=now,
            )
            uow.nrm.add(found)
        return found

    def set_reference(self, uow: AdvocacyUnitOfWork, case: Case, reference: str | None, *, actor: str) -> NrmRecord:
        ensure_open(case)
        record = self.record(uow, case)
        record.nrm_reference, record.updated_at = reference, utcnow()
        # The reference is an id of the Home Office's, not personal data; the timeline says it changed.
        timeline.note(
            uow, case.offer_id, domain.NRM_REFERENCE_RECORDED, actor, "NRM reference recorded", record.updated_at
        )
        return record

    def record_decision(
        self,
        uow: AdvocacyUnitOfWork,
        case: Case,
        *,
        stage: str,
        outcome: str,
        decided_on: date,
        actor: str,
        on_reconsideration: bool = False,
    ) -> NrmDecision:
        ensure_open(case)
        uow.cases.lock(case)  # two requests recording a decision for one case take turns
        if not on_reconsideration and any(d.stage == stage for d in uow.nrm.decisions_of(case.id)):
            raise domain.DecisionAlreadyRecorded(
                f"case {case.id} has a {stage.upper()} decision already: record a later outcome with on_reconsideration"
            )
        record = self.record(uow, case)
        now = utcnow()
        decision = NrmDecision(
            id=str(uuid.uuid4()),
            case_id=case.id,
            stage=stage,
            outcome=outcome,
            decided_on=decided_on,
            on_reconsideration=on_reconsideration,
            recorded_by=actor,
            recorded_at=now,
        )
        uow.nrm.add(decision)
        label = f"{outcome} {stage.upper()} decision dated {decided_on.isoformat()}"
        detail = label + (" (on reconsideration)" if on_reconsideration else "")
        timeline.note(uow, case.offer_id, domain.NRM_DECISION_RECORDED, actor, detail, now)
        self._stop(uow, case, deadlines.STOPPED_BY_DECISION.get(stage, ()), f"{stage.upper()} decision recorded")
        try:
            self.start(uow, case, deadlines.on_decision(self.policy, stage, outcome, decided_on, record.region), actor)
            if stage == deadlines.CG:
                self._plan_leaving_support(uow, case, outcome, decided_on, record.region, actor)
        except (PolicyError, OverflowError):  # the caller's transaction rolls back: nothing is half-written
            raise domain.DecisionUndatable(
                f"no NRM rule covers a decision dated {decided_on.isoformat()}, or its deadlines fall past the calendar"
            ) from None
        return decision

    def _plan_leaving_support(
        self, uow: AdvocacyUnitOfWork, case: Case, outcome: str, decided_on: date, region, actor: str
    ):
        """A positive CG plans `move_on` at the end of move-on support; a negative CG plans it at the end of
        the exit period: leaving NRM support is a transition too (DESIGN 2)."""
        key, origin = (
            ("move_on", ORIGIN_POSITIVE_CG) if outcome == deadlines.POSITIVE else ("exit_period", ORIGIN_NEGATIVE_CG)
        )
        days = self.policy.days(key, on=decided_on, region=region)
        existing = [
            t
            for t in uow.transitions.of_case(case.id)
            if t.kind == domain.MOVE_ON and t.status in domain.OPEN_TRANSITION_STATUSES
        ]
        if existing:  # a reconsidered CG moves the planned date rather than planning twice
            self.transitions.update(uow, case, existing[0].id, actor=actor, planned_for=decided_on + _days(days))
            return
        self.transitions.plan(
            uow, case, kind=domain.MOVE_ON, planned_for=decided_on + _days(days), actor=actor, origin=origin
        )

    def request_reconsideration(
        self, uow: AdvocacyUnitOfWork, case: Case, *, decision_id: str, requested_on: date, actor: str
    ) -> NrmReconsideration:
        ensure_open(case)
        decision = uow.nrm.decision(decision_id)
        if decision is None or decision.case_id != case.id:
            raise domain.DecisionNotOfCase(f"decision {decision_id} is not a decision of case {case.id}")
        now = utcnow()
        request = NrmReconsideration(
            id=str(uuid.uuid4()),
            case_id=case.id,
            decision_id=decision.id,
            requested_on=requested_on,
            recorded_by=actor,
            recorded_at=now,
        )
        uow.nrm.add(request)
        detail = (
            f"reconsideration of the {decision.outcome} {decision.stage.upper()} requested {requested_on.isoformat()}"
        )
        timeline.note(uow, case.offer_id, domain.RECONSIDERATION_REQUESTED, actor, detail, now)
        # The window to ask for it closes: a request made in time is not a missed deadline.
        self._stop(uow, case, (deadlines.RECONSIDERATION_WINDOW,), "reconsideration requested")
        return request

    # --- clocks ---------------------------------------------------------------------------------------

    def start(
        self, uow: AdvocacyUnitOfWork, case: Case, specs: list[deadlines.ClockSpec], actor: str, *, transition_id=None
    ) -> None:
        now = utcnow()
        for spec in specs:
            uow.clocks.add(clock_from(spec, case, now, transition_id=transition_id))
            detail = f"{spec.kind} clock due {spec.due_on.isoformat()} ({spec.basis}; policy {spec.policy_version})"
            timeline.note(uow, case.offer_id, domain.CLOCK_STARTED, actor, detail, now)

    def _stop(self, uow: AdvocacyUnitOfWork, case: Case, kinds, reason: str) -> None:
        if not kinds:
            return
        now = utcnow()
        for clock in uow.clocks.running(case.id, kinds=kinds):
            clock.stopped_at, clock.stopped_reason = now, reason
            timeline.note(
                uow, case.offer_id, domain.CLOCK_STOPPED, SYSTEM, f"{clock.kind} clock stopped: {reason}", now
            )


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def _date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).date() if "T" in value else date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def clock_from(spec: deadlines.ClockSpec, case: Case, now: datetime, *, transition_id: str | None = None) -> Clock:
    """The row of a clock that starts now, as `spec` computed it."""
    return Clock(
        id=str(uuid.uuid4()),
        provider_id=case.provider_id,
        case_id=case.id,
        kind=spec.kind,
        nature=spec.nature,
        starts_on=spec.starts_on,
        due_on=spec.due_on,
        notice_on=spec.notice_on,
        policy_version=spec.policy_version,
        basis=spec.basis[:200],
        transition_id=transition_id,
        created_at=now,
    )
