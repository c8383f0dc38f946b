"""intake's agency directory over the fake unit of work: a child's local authority resolved at referral, and
named on every later event about the child (issue 13 item 4). No database."""

from __future__ import annotations

import pytest

from contracts import events
from services.intake import agencies, referrals
from services.intake.bootstrap import UseCases
from services.intake.domain import ResponsePolicy
from services.intake.schemas import AgencyInSchema, ReferralInSchema
from shared.auth import Principal
from shared.testing import referral_body
from support.fake_intake import FakeIntakeUnitOfWork

pytestmark = pytest.mark.unit

POLICE = Principal(sub="officer-1", org="met-police", org_kind="police", scopes=frozenset({"referrals:write"}))
POLICY = ResponsePolicy(default_hours=24, by_region={})
WESTMINSTER = "E09000033"  # shared.testing.referral_body's local authority


@pytest.fixture
def uow() -> FakeIntakeUnitOfWork:
    return FakeIntakeUnitOfWork()


@pytest.fixture
def use(uow) -> UseCases:
    return UseCases.over(uow, POLICY)


def register(use: UseCases, org_id: str, kind: str = "childrens_services", codes=(WESTMINSTER,), name=None):
    entry = AgencyInSchema().load({"name": name or org_id, "kind": kind, "local_authority_codes": list(codes)})
    return agencies.register(use.units, org_id, entry)


def submit(use: UseCases, raw: dict):
    submission = referrals.Submission(POLICE.org, ReferralInSchema().load(raw), referrals.request_hash(raw), "police")
    referral, _ = referrals.submit(use.units, use.offering, submission)
    return referral


def test_registering_an_agency_creates_it_then_updates_it_keeping_each_code_once(uow, use):
    agency, created = register(use, "westminster-cs", codes=[WESTMINSTER, "E09000001", WESTMINSTER])
    assert created and agency.local_authority_codes == [WESTMINSTER, "E09000001"]
    again, created_again = register(use, "westminster-cs", name="Westminster Children's Services")
    assert not created_again and again is agency and agency.name == "Westminster Children's Services"
    assert agency.local_authority_codes == [WESTMINSTER]


def test_a_childs_referral_names_the_childrens_services_covering_its_local_authority_on_every_event(uow, use):
    uow.provider("for-children", serves=["child"])
    register(use, "met-police-agency", kind="police")  # covers the code, but does not lead for a child
    register(use, "westminster-cs")
    referral = submit(use, referral_body(child=True))
    assert referral.local_authority_org_id == "westminster-cs"
    (received,) = uow.events(events.ReferralReceived)
    assert received.local_authority_org_id == "westminster-cs"
    (offer,) = uow.offers.of(referral.id)
    with uow:
        referral.accept(offer, case_id="case-1", advocate={"name": "A", "email": "a@example.org"}, at=offer.offered_at)
    (allocated,) = uow.events(events.ReferralAllocated)
    assert allocated.local_authority_org_id == "westminster-cs"
    referrals.withdraw(use.units, POLICE, referral.id)
    (withdrawn,) = uow.events(events.ReferralWithdrawn)
    assert withdrawn.local_authority_org_id == "westminster-cs"


def test_an_adults_referral_names_no_local_authority(uow, use):
    uow.provider("for-adults")
    register(use, "westminster-cs")
    referral = submit(use, referral_body())
    assert referral.local_authority_org_id is None
    assert uow.events(events.ReferralReceived)[0].local_authority_org_id is None


def test_a_child_without_a_code_or_in_an_area_nobody_covers_names_none(uow, use):
    register(use, "camden-cs", codes=["E09000007"])
    body = referral_body(child=True)
    uncovered = submit(use, body)
    no_code = submit(use, referral_body(child=True, location={"region": "london"}))
    assert uncovered.local_authority_org_id is None and no_code.local_authority_org_id is None
    assert [e.local_authority_org_id for e in uow.events(events.ReferralEscalated)] == [None, None]


def test_two_childrens_services_covering_one_code_resolve_to_the_first_by_org_id(uow, use):
    register(use, "zz-cs")
    register(use, "aa-cs")
    with uow:
        assert agencies.childrens_services_for(uow, True, {"local_authority": WESTMINSTER}) == "aa-cs"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "kind": "childrens_services", "local_authority_codes": []}, "local_authority_codes"),
        ({"name": "X", "kind": "childrens_services", "local_authority_codes": ["E0900003"]}, "local_authority_codes"),
        ({"name": "X", "kind": "school", "local_authority_codes": [WESTMINSTER]}, "kind"),
        ({"name": "X", "kind": "police", "local_authority_codes": []}, "local_authority_codes"),
        ({"name": "", "kind": "police", "local_authority_codes": [WESTMINSTER]}, "name"),
        ({"kind": "police", "local_authority_codes": [WESTMINSTER]}, "name"),
    ],
)
def test_an_agency_entry_that_breaks_a_rule_names_its_field(body, field):
    errors = AgencyInSchema().validate(body)
    assert field in errors
