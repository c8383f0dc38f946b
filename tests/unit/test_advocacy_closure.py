"""Closing a case and deactivating an advocate (issue 12, item 2), over the fake unit of work: the same
charity instance as test_advocacy_use_cases, its events through the real catalogue."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest
from test_advocacy_use_cases import PROVIDER, Instance

from contracts import events
from services.advocacy import domain

NOTE = "Synthetic note: moved to a family member's home."


def close(charity: Instance, case, outcome: str = "moved_on", note: str | None = NOTE):
    with charity.uow:
        return charity.rules.closure.close(charity.uow, case, outcome=outcome, note=note, actor="advocate:test")


def test_closing_a_case_stops_every_clock_cancels_open_transitions_and_frees_the_advocates_place():
    charity = Instance()
    case = charity.open_case()
    with charity.uow:
        planned = charity.rules.transitions.plan(
            charity.uow, case, kind=domain.RELOCATION, planned_for=date(2026, 5, 1), actor="advocate:test"
        )
    assert charity.uow.clocks.running(case.id)
    assert charity.published(events.ProviderCapacityChanged)[-1].capacity == 2

    close(charity, case)

    assert case.status == domain.CASE_CLOSED and case.closed_at is not None
    assert charity.uow.clocks.running(case.id) == []
    assert all(c.stopped_reason == "case closed: moved_on" for c in charity.uow.clocks.of_case(case.id))
    assert planned.status == domain.TRANSITION_CANCELLED
    assert charity.published(events.ProviderCapacityChanged)[-1].capacity == 3
    kinds = charity.uow.timeline.kinds(case.offer_id)
    assert kinds[-2:] == [domain.TRANSITION_CANCELLED_KIND, domain.CASE_CLOSED_KIND]
    assert NOTE in charity.uow.timeline.of_offer(case.offer_id)[-1].detail  # the note stays here


def test_case_closed_carries_the_outcome_code_and_never_the_note():
    charity = Instance()
    case = charity.open_case()
    close(charity, case, outcome="declined_adult_support_at_18")
    [closed] = charity.published(events.CaseClosed)
    assert msgspec.to_builtins(closed) == {
        "referral_id": case.referral_id,
        "case_id": case.id,
        "provider_id": PROVIDER,
        "outcome": "declined_adult_support_at_18",
        "status": "closed",
        "local_authority_org_id": None,  # an adult's case: no local authority
    }


def test_a_closed_case_is_read_only():
    charity = Instance()
    case = charity.open_case()
    with charity.uow:
        planned = charity.rules.transitions.plan(
            charity.uow, case, kind=domain.RELOCATION, planned_for=date(2026, 5, 1), actor="a"
        )
    close(charity, case)
    published = len(charity.uow.published)
    rules, uow = charity.rules, charity.uow
    writes = [
        lambda: rules.closure.close(uow, case, outcome="other", actor="a"),
        lambda: rules.nrm.set_reference(uow, case, "NRM-1", actor="a"),
        lambda: rules.nrm.record_decision(
            uow, case, stage="rg", outcome="positive", decided_on=date(2026, 3, 1), actor="a"
        ),
        lambda: rules.transitions.plan(uow, case, kind=domain.RELOCATION, planned_for=date(2026, 6, 1), actor="a"),
        lambda: rules.transitions.update(uow, case, planned.id, actor="a", planned_for=date(2026, 6, 1)),
        lambda: rules.transitions.complete(uow, case, planned.id, actor="a"),
    ]
    for write in writes:
        with pytest.raises(domain.CaseNotOpen), uow:
            write()
    assert len(charity.uow.published) == published


def test_an_advocate_with_live_cases_cannot_be_deactivated_and_the_refusal_says_how_many():
    charity = Instance()
    case = charity.open_case()
    [advocate] = charity.uow.advocates.all()
    with pytest.raises(domain.AdvocateHasLiveCases, match="1 live case"), charity.uow:
        charity.rules.closure.deactivate_advocate(charity.uow, advocate.id)
    assert advocate.active

    close(charity, case)
    with charity.uow:
        charity.rules.closure.deactivate_advocate(charity.uow, advocate.id)
    assert not advocate.active
    capacity = charity.published(events.ProviderCapacityChanged)[-1]
    assert (capacity.capacity, capacity.advocates) == (0, 0)


def test_a_deactivated_advocate_takes_no_offers():
    charity = Instance(auto_accept=True)
    leaving = charity.advocate()
    with charity.uow:
        charity.rules.closure.deactivate_advocate(charity.uow, leaving.id)
    charity.offer()
    assert charity.uow.cases.rows == {}
    staying = charity.advocate()
    charity.offer()
    [case] = charity.uow.cases.rows.values()
    assert case.advocate is staying


def test_deactivating_an_unknown_advocate_is_not_found():
    charity = Instance()
    with pytest.raises(domain.AdvocateNotFound), charity.uow:
        charity.rules.closure.deactivate_advocate(charity.uow, "no-such-advocate")
