"""Consent at the provider (issue 12 item 4), over the fake unit of work: the advocate's record goes to intake
with no names, intake's withdrawal closes the case once, and turning 18 ends with the young person's decision."""

from __future__ import annotations

from datetime import date, timedelta

import msgspec
import pytest
from test_advocacy_use_cases import PROVIDER, Instance

from contracts import events
from services.advocacy import domain
from services.advocacy.casework.consent import ConsentInvalid
from shared.clock import utcnow
from support.events import arriving, payload

pytestmark = pytest.mark.unit


def record(charity: Instance, case, **fields):
    values = {"purpose": "advocacy", "given": True, "obtained_at": utcnow(), **fields}
    with charity.uow:
        return charity.rules.consent.record(charity.uow, case, actor="advocate:test", **values)


def withdrawal(case, by: str = "referrer"):
    data = {"referral_id": case.referral_id, "provider_id": PROVIDER, "case_id": case.id, "purpose": "advocacy"}
    return arriving(payload("consent.withdrawn", **data, obtained_at=utcnow().isoformat(), by=by))


def test_the_advocates_record_is_kept_and_sent_to_intake_by_ids_codes_and_dates():
    charity = Instance()
    case = charity.open_case()
    row = record(charity, case, purpose="data_sharing", recipients=["leeds-city-council"], interpreter_used=True)
    assert charity.uow.consents.of_case(case.id) == [row] and row.obtained_by == case.advocate_id
    [sent] = charity.published(events.CaseConsentRecorded)
    wire = msgspec.to_builtins(sent)
    assert wire | {"obtained_at": None} == {
        "referral_id": case.referral_id,
        "case_id": case.id,
        "provider_id": PROVIDER,
        "purpose": "data_sharing",
        "given": True,
        "obtained_at": None,
        "interpreter_used": True,
        "recipients": ["leeds-city-council"],
        "obtained_by": case.advocate_id,  # an id, never a name
    }
    assert "Synthetic" not in repr(wire)
    assert case.status == domain.CASE_OPEN  # a record alone closes nothing: intake's withdrawal does


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"recipients": ["leeds-city-council"]}, "recipients"),
        ({"obtained_at": utcnow() + timedelta(hours=1)}, "obtained_at"),
        ({"obtained_by": "not-an-advocate-here"}, "obtained_by"),
        ({"purpose": "marketing"}, "purpose"),
    ],
)
def test_a_bad_record_names_its_field(fields, field):
    charity = Instance()
    case = charity.open_case()
    with pytest.raises(ConsentInvalid) as refused:
        record(charity, case, **fields)
    assert refused.value.field == field and charity.uow.consents.of_case(case.id) == []


def test_intakes_withdrawal_closes_the_case_once_with_consent_withdrawn():
    charity = Instance()
    case = charity.open_case()
    event = withdrawal(case)
    charity.consume(event)
    charity.consume(withdrawal(case))  # a second withdrawal: the case is closed already
    assert case.status == domain.CASE_CLOSED and charity.uow.clocks.running(case.id) == []
    [closed] = charity.published(events.CaseClosed)
    assert closed.outcome == "consent_withdrawn"
    assert charity.published(events.ProviderCapacityChanged)[-1].capacity == 3  # the place is free again
    [kept] = charity.uow.consents.of_case(case.id)
    assert (kept.source, kept.given, kept.obtained_by) == ("intake", False, "referrer")


def test_the_advocates_own_withdrawal_comes_back_without_a_second_copy():
    charity = Instance()
    case = charity.open_case()
    record(charity, case, given=False)
    charity.consume(withdrawal(case, by="provider"))
    assert case.status == domain.CASE_CLOSED
    assert [r.source for r in charity.uow.consents.of_case(case.id)] == ["advocate"]
    with pytest.raises(domain.CaseNotOpen):  # a closed case is read-only
        record(charity, case)


def turning_18(charity: Instance, case):
    with charity.uow:
        return charity.rules.transitions.plan(
            charity.uow, case, kind=domain.TURNING_18, planned_for=date(2026, 6, 1), actor="a"
        )


def complete(charity: Instance, case, transition, decision: str | None):
    with charity.uow:
        return charity.rules.consent.complete_transition(charity.uow, case, transition.id, actor="a", decision=decision)


def test_a_young_person_who_consents_at_18_continues_with_an_advocacy_record_sent_to_intake():
    charity = Instance()
    case = charity.open_case()
    transition = turning_18(charity, case)
    with charity.uow:
        rest = {item: True for item in transition.checklist if item != domain.CONSENT_REOBTAINED}
        charity.rules.transitions.update(charity.uow, case, transition.id, actor="a", ticks=rest)
    complete(charity, case, transition, domain.CONSENT_GIVEN)
    assert (transition.status, transition.decision) == (domain.TRANSITION_COMPLETED, domain.CONSENT_GIVEN)
    assert case.status == domain.CASE_OPEN
    [sent] = charity.published(events.CaseConsentRecorded)
    assert (sent.purpose, sent.given) == ("advocacy", True)


def test_a_refusal_at_18_completes_the_transition_and_closes_the_case_never_missed():
    charity = Instance()
    case = charity.open_case()
    transition = turning_18(charity, case)
    complete(charity, case, transition, domain.CONSENT_REFUSED)  # the checklist is moot: they said no
    assert (transition.status, transition.decision) == (domain.TRANSITION_COMPLETED, domain.CONSENT_REFUSED)
    assert case.status == domain.CASE_CLOSED
    [closed] = charity.published(events.CaseClosed)
    assert closed.outcome == "declined_adult_support_at_18"
    [done] = charity.published(events.TransitionCompleted)
    assert done.kind == "turning_18"
    assert charity.published(events.TransitionMissed) == []


def test_turning_18_needs_a_decision_and_no_other_kind_takes_one():
    charity = Instance()
    case = charity.open_case()
    transition = turning_18(charity, case)
    with pytest.raises(ConsentInvalid) as missing:
        complete(charity, case, transition, None)
    assert missing.value.field == "decision" and transition.status == domain.TRANSITION_PLANNED
    with charity.uow:
        move = charity.rules.transitions.plan(
            charity.uow, case, kind=domain.RELOCATION, planned_for=date(2026, 6, 1), actor="a"
        )
    with pytest.raises(ConsentInvalid) as extra:
        complete(charity, case, move, domain.CONSENT_GIVEN)
    assert extra.value.field == "decision"
