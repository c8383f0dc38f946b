"""A child's local authority on the case (issue 13 item 4): advocacy learns it with the referral intake
discloses, keeps it on the case, and names it on every case.* and transition.* event it publishes. Over the
fake unit of work of test_advocacy_use_cases; events through the real catalogue."""

from __future__ import annotations

import pytest
from test_advocacy_use_cases import Instance, StubIntake

from contracts import events
from services.advocacy import domain

pytestmark = pytest.mark.unit

COUNCIL = "westminster-cs-synthetic"


class IntakeWithLocalAuthority(StubIntake):
    """intake's referral of a child found in a local authority its directory's children's services cover."""

    def fetch_referral(self, referral_id: str) -> dict:
        referral = super().fetch_referral(referral_id)
        return referral | {"local_authority_org_id": COUNCIL, "local_authority_name": "Westminster Children's Services"}


def test_a_childs_case_keeps_its_local_authority_and_names_it_on_its_events():
    charity = Instance(intake=IntakeWithLocalAuthority(child=True))
    case = charity.open_case()
    assert (case.local_authority_org_id, case.local_authority_name) == (COUNCIL, "Westminster Children's Services")
    [opened] = charity.published(events.CaseOpened)
    assert opened.local_authority_org_id == COUNCIL
    planned = [t for t in charity.published(events.TransitionPlanned) if t.kind == domain.TURNING_18]
    assert planned and all(t.local_authority_org_id == COUNCIL for t in planned)
    with charity.uow:
        charity.rules.closure.close(charity.uow, case, outcome="moved_on", actor="advocate:test")
    [closed] = charity.published(events.CaseClosed)
    assert closed.local_authority_org_id == COUNCIL


def test_an_adults_case_names_no_local_authority():
    charity = Instance()
    case = charity.open_case()
    assert case.local_authority_org_id is None and case.local_authority_name is None
    assert charity.published(events.CaseOpened)[0].local_authority_org_id is None
