"""Consent as records at intake (issue 12 item 4), over the fake unit of work: the submission's first records,
the record in force, withdrawal told once, who may read the body, and the provider's records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_intake_use_cases import POLICE, POLICY, submit

from contracts import events
from services.intake import consent, referrals
from services.intake.bootstrap import UseCases
from services.intake.domain import ReferralRejected
from shared.auth import Principal
from shared.clock import utcnow
from shared.inbox import EventHandlers
from shared.messaging.errors import PermanentError
from shared.testing import referral_body
from support.events import arriving, payload
from support.fake_intake import FakeIntakeUnitOfWork

pytestmark = pytest.mark.unit

PROVIDER = Principal(sub="adv-1", org="demo", org_kind="provider", scopes=frozenset())
SHARED_WITH = Principal(sub="sw-1", org="leeds-city-council", org_kind="local_authority", scopes=frozenset())


@pytest.fixture
def uow() -> FakeIntakeUnitOfWork:
    return FakeIntakeUnitOfWork()


@pytest.fixture
def use(uow) -> UseCases:
    return UseCases.over(uow, POLICY)


def allocated(uow: FakeIntakeUnitOfWork, use: UseCases, **body):
    uow.provider("demo", serves=["adult", "child"])
    referral, _ = submit(use, referral_body(**body))
    offer = uow.offers.of(referral.id)[0]
    referral.accept(offer, case_id="case-1", advocate={"name": "A", "email": "a@demo.example"}, at=utcnow())
    referral.events, uow.published[:] = [], []  # what the allocation said is not under test here
    return referral


def add(use: UseCases, referral_id: str, purpose: str = "advocacy", given: bool = False, **more):
    new = consent.NewConsent(purpose=purpose, given=given, obtained_at=utcnow(), obtained_by="met-police", **more)
    return consent.record_by_referrer(use.units, POLICE, referral_id, new)


def test_the_submissions_consent_becomes_the_first_records_obtained_by_the_referring_org(uow, use):
    referral, _ = submit(use)
    records = consent.records_for(use.units, POLICE, referral.id)
    assert sorted(r.purpose for r in records) == ["advocacy", "data_sharing", "nrm_referral"]
    assert {(r.given, r.obtained_by, r.source, r.interpreter_used) for r in records} == {
        (True, "met-police", "submission", True)
    }


def test_the_submission_may_say_who_obtained_the_consent(uow, use):
    body = referral_body()
    body["consent"]["obtained_by"] = "modern slavery single point of contact"
    referral, _ = submit(use, body)
    records = consent.records_for(use.units, POLICE, referral.id)
    assert {r.obtained_by for r in records} == {"modern slavery single point of contact"}


def test_the_latest_record_of_a_purpose_is_the_one_in_force(uow, use):
    referral, _ = submit(use)
    add(use, referral.id, "nrm_referral", given=False)
    force = consent.in_force(uow.consents.of(referral.id))
    assert force["nrm_referral"].given is False and force["advocacy"].given is True


def test_a_record_names_its_bad_field_and_another_org_finds_no_referral(uow, use):
    referral, _ = submit(use)
    with pytest.raises(ReferralRejected) as future:
        new = consent.NewConsent("advocacy", True, utcnow() + timedelta(hours=1), "met-police")
        consent.record_by_referrer(use.units, POLICE, referral.id, new)
    assert future.value.field == "obtained_at"
    with pytest.raises(ReferralRejected) as recipients:
        add(use, referral.id, "advocacy", recipients=("leeds-city-council",))
    assert recipients.value.field == "recipients"
    other = Principal(sub="x", org="other-force", org_kind="police", scopes=frozenset())
    with pytest.raises(consent.ConsentNotFound):
        consent.record_by_referrer(use.units, other, referral.id, consent.NewConsent("advocacy", False, utcnow(), "x"))
    with pytest.raises(consent.ConsentNotFound):
        consent.records_for(use.units, other, referral.id)
    assert len(uow.consents.of(referral.id)) == 3


def test_withdrawing_advocacy_consent_tells_the_provider_holding_the_case_and_the_referrer_once(uow, use):
    referral = allocated(uow, use)
    add(use, referral.id, "advocacy", given=False)
    add(use, referral.id, "advocacy", given=False)  # again: nothing in force changes
    assert uow.routing_keys() == ["consent.withdrawn.demo", "referral.consent_withdrawn"]
    withdrawn, told = uow.events()
    assert isinstance(withdrawn, events.ConsentWithdrawn)
    assert (withdrawn.case_id, withdrawn.by, withdrawn.purpose) == ("case-1", "referrer", "advocacy")
    assert isinstance(told, events.ReferralConsentWithdrawn) and told.org_id == "met-police"


def test_withdrawing_data_sharing_consent_closes_nothing(uow, use):
    referral = allocated(uow, use)
    add(use, referral.id, "data_sharing", given=False)
    assert uow.routing_keys() == []


def test_the_provider_reads_the_body_only_while_advocacy_consent_is_in_force(uow, use):
    referral = allocated(uow, use)
    assert referrals.read(use.units, PROVIDER, referral.id)[2] is True
    add(use, referral.id, "advocacy", given=False)
    with pytest.raises(referrals.NotFound):
        referrals.read(use.units, PROVIDER, referral.id)
    assert consent.records_for(use.units, PROVIDER, referral.id)  # it may still see the consent records


def test_a_child_is_disclosed_to_the_provider_without_consent(uow, use):
    referral = allocated(uow, use, child=True)
    assert uow.consents.of(referral.id) == []
    assert referrals.read(use.units, PROVIDER, referral.id)[2] is True


def test_an_org_named_in_the_data_sharing_record_reads_the_body_and_nobody_else(uow, use):
    referral = allocated(uow, use)
    with pytest.raises(referrals.NotFound):
        referrals.read(use.units, SHARED_WITH, referral.id)
    add(use, referral.id, "data_sharing", given=True, recipients=("leeds-city-council",))
    assert referrals.read(use.units, SHARED_WITH, referral.id)[2] is True
    assert uow.disclosures.rows[-1].purpose == "data_sharing"
    bystander = Principal(sub="b", org="another-council", org_kind="local_authority", scopes=frozenset())
    with pytest.raises(referrals.NotFound):
        referrals.read(use.units, bystander, referral.id)


def deliver(use: UseCases, event) -> None:
    """As intake's consumer delivers it: the catalogue's checks (routing key, publisher, schema), the inbox."""
    EventHandlers("intake", use.units, use.handlers, trusted={"guest"})(event)


def recorded(referral_id: str, provider: str = "demo", **data):
    fields = {"case_id": "case-1", "purpose": "advocacy", "given": True, "obtained_at": utcnow().isoformat()}
    news = payload("case.consent_recorded", referral_id=referral_id, provider_id=provider, **{**fields, **data})
    return arriving(news, publisher=f"advocacy-{provider}")


def test_the_provider_holding_the_case_adds_records_and_its_withdrawal_is_told_back_to_it(uow, use):
    referral = allocated(uow, use)
    deliver(use, recorded(referral.id, given=False, obtained_by="advocate-7"))
    last = uow.consents.of(referral.id)[-1]
    assert (last.source, last.obtained_by, last.recorded_by, last.given) == ("provider", "advocate-7", "demo", False)
    (withdrawn, _) = uow.events()
    assert isinstance(withdrawn, events.ConsentWithdrawn) and withdrawn.by == "provider"


def test_a_provider_not_holding_the_case_cannot_record_consent(uow, use):
    referral = allocated(uow, use)
    with pytest.raises(PermanentError):
        deliver(use, recorded(referral.id, provider="other-charity"))
    with pytest.raises(PermanentError):
        deliver(use, recorded(referral.id, case_id="case-2"))
    assert len(uow.consents.of(referral.id)) == 3
