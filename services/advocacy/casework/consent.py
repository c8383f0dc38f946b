"""Consent at the provider (DESIGN 5, issue 12 item 4): intake owns consent records; an advocate records the
person's consent here, which keeps a copy for the case and sends it to intake (`case.consent_recorded`: ids,
codes and dates, the advocate by id, never a name).

A case lists what it has: the advocate's own records, plus a withdrawal the referrer recorded at intake, which
arrives as `consent.withdrawn` and closes the case with `consent_withdrawn` (through the one closure use case:
the place is freed, clocks stop, transitions are cancelled, `case.closed` goes out). A withdrawal the advocate
recorded comes back the same way, so both sides close the case alike; a second one finds it closed.

At 18 the young person decides (DESIGN 2; 70% drop out at this point today): a `turning_18` transition is
completed with `consent_given` (an advocacy record, the case continues as an adult's) or `consent_refused`
(the transition completes with that outcome and the case closes `declined_adult_support_at_18`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.casework.closure import Closure
from services.advocacy.continuity.transitions import Transitions, ensure_open
from services.advocacy.models import Case, CaseConsentRecord, Transition
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow
from shared.messaging.envelope import Event

log = logging.getLogger(__name__)

PURPOSES = events.CONSENT_PURPOSES
ADVOCACY, DATA_SHARING = "advocacy", "data_sharing"
FROM_ADVOCATE, FROM_INTAKE = "advocate", "intake"
CONSENT_RECORDED_KIND = "consent_recorded"
# How far ahead of this server's clock an `obtained_at` may be (a browser's or a laptop's clock).
CLOCK_SKEW = timedelta(minutes=5)


class ConsentInvalid(domain.CaseworkError):
    """A consent record or a turning_18 decision breaks a rule; `field` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check(purpose: str, recipients: Sequence[str], obtained_at: datetime, now: datetime) -> None:
    if purpose not in PURPOSES:
        raise ConsentInvalid("purpose", f"purpose must be one of {', '.join(PURPOSES)}")
    if recipients and purpose != DATA_SHARING:
        raise ConsentInvalid("recipients", "recipients are only for purpose data_sharing")
    if obtained_at > now + CLOCK_SKEW:
        raise ConsentInvalid("obtained_at", "obtained_at is in the future")


def check_decision(kind: str, decision: str | None) -> None:
    """turning_18 needs the young person's decision; no other kind takes one."""
    if kind == domain.TURNING_18 and decision not in domain.TURNING_18_DECISIONS:
        choices = ", ".join(domain.TURNING_18_DECISIONS)
        raise ConsentInvalid("decision", f"turning_18 is completed with a decision: {choices}")
    if kind != domain.TURNING_18 and decision is not None:
        raise ConsentInvalid("decision", "only a turning_18 transition is completed with a decision")


class CaseConsent:
    def __init__(self, transitions: Transitions, closure: Closure):
        self.transitions = transitions
        self.closure = closure

    def record(
        self,
        uow: AdvocacyUnitOfWork,
        case: Case,
        *,
        purpose: str,
        given: bool,
        obtained_at: datetime,
        actor: str,
        obtained_by: str | None = None,
        interpreter_used: bool = False,
        recipients: Sequence[str] = (),
    ) -> CaseConsentRecord:
        """The advocate's record, kept for the case and sent to intake. `obtained_by`: an advocate's id (the
        case's advocate when omitted)."""
        ensure_open(case)  # a closed case is read-only
        now = utcnow()
        check(purpose, recipients, obtained_at, now)
        if obtained_by is not None and (uow.advocates.get(obtained_by) is None):
            raise ConsentInvalid("obtained_by", "obtained_by must be the id of one of this provider's advocates")
        row = CaseConsentRecord(
            id=str(uuid.uuid4()),
            provider_id=case.provider_id,
            case_id=case.id,
            purpose=purpose,
            given=given,
            obtained_at=obtained_at,
            obtained_by=obtained_by or case.advocate_id,
            interpreter_used=interpreter_used,
            recipients=list(recipients),
            source=FROM_ADVOCATE,
            recorded_by=actor,
            recorded_at=now,
        )
        uow.consents.add(row)
        detail = f"consent {purpose} {'given' if given else 'not given'}, obtained {obtained_at.isoformat()}"
        timeline.note(uow, case.offer_id, CONSENT_RECORDED_KIND, actor, detail, now)
        uow.stage(
            events.CaseConsentRecorded(
                referral_id=case.referral_id,
                case_id=case.id,
                provider_id=case.provider_id,
                purpose=purpose,  # type: ignore[arg-type]  # checked against PURPOSES above
                given=given,
                obtained_at=obtained_at,
                interpreter_used=interpreter_used,
                recipients=list(recipients),
                obtained_by=row.obtained_by,
            )
        )
        return row

    def on_withdrawn(self, uow: AdvocacyUnitOfWork, event: Event) -> Case | None:
        """intake says the advocacy consent in force is withdrawn: close the case (once; a closed one stays)."""
        withdrawn: events.ConsentWithdrawn = event.data
        case = _live_case(uow, withdrawn.referral_id)
        if case is None or case.status == domain.CASE_CLOSED:  # nothing to close, or closed already
            log.info("consent withdrawn for no live case here", extra={"referral_id": withdrawn.referral_id})
            return None
        if case.status == domain.CASE_OPENING:  # its allocation is still being opened: try again shortly
            raise LookupError(f"case {case.id} is still opening")
        if withdrawn.by == "referrer":  # the advocate's own withdrawal is on the case already
            uow.consents.add(
                CaseConsentRecord(
                    id=str(uuid.uuid4()),
                    provider_id=case.provider_id,
                    case_id=case.id,
                    purpose=withdrawn.purpose,
                    given=False,
                    obtained_at=withdrawn.obtained_at,
                    obtained_by="referrer",
                    interpreter_used=False,
                    recipients=[],
                    source=FROM_INTAKE,
                    recorded_by=event.source,
                    recorded_at=utcnow(),
                )
            )
        return self.closure.close(uow, case, outcome="consent_withdrawn", actor=event.source)

    def complete_transition(
        self, uow: AdvocacyUnitOfWork, case: Case, transition_id: str, *, actor: str, decision: str | None = None
    ) -> Transition:
        """Complete a transition; a turning_18 one with the young person's decision (check_decision)."""
        ensure_open(case)
        check_decision(self.transitions.get(uow, case, transition_id).kind, decision)
        done = self.transitions.complete(uow, case, transition_id, actor=actor, decision=decision)
        if decision == domain.CONSENT_GIVEN:
            self.record(uow, case, purpose=ADVOCACY, given=True, obtained_at=utcnow(), actor=actor)
        elif decision == domain.CONSENT_REFUSED:
            self.closure.close(uow, case, outcome="declined_adult_support_at_18", actor=actor)
        return done


def _live_case(uow: AdvocacyUnitOfWork, referral_id: str) -> Case | None:
    """This provider's case for the referral: the live one, else the last (already closed)."""
    cases = [offer.case for offer in uow.offers.of_referral(referral_id) if offer.case is not None]
    live = [c for c in cases if c.status in domain.LIVE_CASE_STATUSES]
    return live[-1] if live else (cases[-1] if cases else None)
