"""Rectification at intake (issue 14 item 3) over the fake unit of work: a JSON Merge Patch of the correctable
sections, validated as a new referral, recorded without its values, and the charity holding the case told."""

from __future__ import annotations

import pytest

from contracts import events
from services.intake import consent, rectification, referrals
from services.intake.bootstrap import UseCases
from services.intake.domain import InvalidState, ReferralErased, ReferralRejected, ResponsePolicy
from services.intake.schemas import ReferralInSchema
from shared.auth import Principal
from shared.clock import utcnow
from shared.testing import date_of_birth_for_age, referral_body
from support.fake_intake import FakeIntakeUnitOfWork

pytestmark = pytest.mark.unit

POLICE = Principal(sub="officer-1", org="met-police", org_kind="police", scopes=frozenset({"referrals:write"}))
CHARITY = Principal(sub="svc", org="demo", org_kind="provider", scopes=frozenset({"referrals:read"}))


@pytest.fixture
def uow() -> FakeIntakeUnitOfWork:
    return FakeIntakeUnitOfWork()


@pytest.fixture
def use(uow) -> UseCases:
    return UseCases.over(uow, ResponsePolicy())


def allocated(uow: FakeIntakeUnitOfWork, use: UseCases, **body):
    uow.provider("demo")
    raw = referral_body(**body)
    submission = referrals.Submission(POLICE.org, ReferralInSchema().load(raw), referrals.request_hash(raw), "police")
    referral, _ = referrals.submit(use.units, use.offering, submission)
    (offer,) = uow.offers.of(referral.id)
    with uow:  # the allocation and its events committed, as intake's handler of offer.accepted leaves them
        referral.accept(offer, case_id="case-1", advocate={"name": "A", "email": "a@demo.example"}, at=utcnow())
    uow.published.clear()
    return referral


def test_merge_patch_merges_objects_removes_nulls_and_replaces_the_rest():
    target = {"subject": {"given_name": "A", "aliases": ["x"], "sex": "female"}, "needs": ["legal"]}
    patch = {"subject": {"given_name": "B", "aliases": None}, "needs": ["health"]}
    assert rectification.merge_patch(target, patch) == {
        "subject": {"given_name": "B", "sex": "female"},
        "needs": ["health"],
    }
    assert target["subject"]["given_name"] == "A"  # the target is left as it was


def test_a_corrected_name_is_stored_recorded_without_values_and_the_holder_told(uow, use):
    referral = allocated(uow, use)
    corrected, _ = rectification.rectify(use.units, POLICE, referral.id, {"subject": {"given_name": "Corrected"}})
    assert corrected.body["subject"]["given_name"] == "Corrected"
    assert corrected.body["subject"]["sex"] == "female"  # the rest of the subject as it was
    (row,) = uow.rectifications.rows
    assert (row.referral_id, row.org_id, row.sub, row.sections) == (referral.id, "met-police", "officer-1", ["subject"])
    (told,) = uow.events(events.ReferralRectified)
    assert (told.recipient, told.sections) == ("provider.demo", ["subject"])
    assert uow.routing_keys() == ["referral.rectified.provider.demo"]
    assert "Corrected" not in repr(told) and uow.referrals.locked[-1] == referral.id


def test_the_same_patch_again_changes_nothing_and_tells_nobody(uow, use):
    referral = allocated(uow, use)
    patch = {"needs": ["health"], "risk": {"re_trafficking_risk": "high"}}
    rectification.rectify(use.units, POLICE, referral.id, patch)
    rectification.rectify(use.units, POLICE, referral.id, patch)
    assert [r.sections for r in uow.rectifications.rows] == [["needs", "risk"]]
    assert len(uow.events(events.ReferralRectified)) == 1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"narrative": "x"}, "narrative"),
        ({"location": {"region": "wales"}}, "location"),
        ({"subject": {"sex": "other"}}, "subject.sex"),
        ({"referrer": {"email": None}}, "referrer.email"),
        ({"needs": ["flying"]}, "needs.0"),
        ({"subject": {"date_of_birth": date_of_birth_for_age(15)}}, "subject.date_of_birth"),
    ],
)
def test_a_patch_outside_the_sections_or_breaking_the_rules_is_refused_naming_the_field(uow, use, patch, field):
    referral = allocated(uow, use)
    before = dict(referral.body)
    with pytest.raises(ReferralRejected) as refused:
        rectification.rectify(use.units, POLICE, referral.id, patch)
    assert refused.value.field == field
    assert referral.body == before and uow.rectifications.rows == [] and uow.published == []


def test_another_org_cannot_rectify_and_an_anonymous_record_holds_nothing_to_correct(uow, use):
    referral = allocated(uow, use)
    other = Principal(sub="x", org="other-force", org_kind="police", scopes=frozenset())
    with pytest.raises(referrals.NotFound):
        rectification.rectify(use.units, other, referral.id, {"needs": []})
    with pytest.raises(referrals.NotFound):
        rectification.rectify(use.units, CHARITY, referral.id, {"needs": []})
    raw = referral_body(consent={"nrm_referral": False, "advocacy": False, "data_sharing": False})
    submission = referrals.Submission(POLICE.org, ReferralInSchema().load(raw), referrals.request_hash(raw), "police")
    recorded, _ = referrals.submit(use.units, use.offering, submission)
    with pytest.raises(InvalidState):
        rectification.rectify(use.units, POLICE, recorded.id, {"subject": {"sex": "male"}})


def test_nobody_is_told_when_no_charity_may_read_it(uow, use):
    referral = allocated(uow, use)
    referrals.withdraw(use.units, POLICE, referral.id)
    uow.published.clear()
    rectification.rectify(use.units, POLICE, referral.id, {"needs": ["health"]})
    assert uow.events(events.ReferralRectified) == [] and len(uow.rectifications.rows) == 1


def test_the_holder_fetching_after_a_rectification_is_a_disclosure_with_that_purpose(uow, use):
    referral = allocated(uow, use)
    _, _, shown = referrals.read(use.units, CHARITY, referral.id, purpose=consent.RECTIFICATION)
    referrals.read(use.units, CHARITY, referral.id)
    assert shown and [d.purpose for d in uow.disclosures.rows][-2:] == ["rectification", "case_opening"]


def test_an_erased_referral_cannot_be_rectified(uow, use):
    referral = allocated(uow, use)
    referral.erased_at = utcnow()
    with pytest.raises(ReferralErased):
        rectification.rectify(use.units, POLICE, referral.id, {"needs": ["health"]})
    assert uow.rectifications.rows == []
