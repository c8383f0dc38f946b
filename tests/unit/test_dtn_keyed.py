"""An unlinkable Duty to Notify (issue 15 part 3): what an anonymous referral keeps of its body and its
external reference are HMACs under the deployment's key, recomputable with the key and not without it; no event
carries its reference; a retry is still recognised, and a reuse with another body still refused."""

from __future__ import annotations

import hashlib
import hmac
import json

import msgspec
import pytest

from contracts import events
from services.intake import referrals
from services.intake.bootstrap import UseCases
from services.intake.config import IntakeConfig, dtn_hmac_key
from services.intake.domain import ResponsePolicy
from services.intake.referral_keys import DEV_KEY, ReferralKeys
from services.intake.schemas import ReferralInSchema
from shared.config import ConfigError, Settings
from shared.testing import referral_body
from support.fake_intake import FakeIntakeUnitOfWork

pytestmark = pytest.mark.unit

NEITHER = {"nrm_referral": False, "advocacy": False, "data_sharing": False}
KEYS = ReferralKeys("a-deployment-secret-of-at-least-32-characters")


@pytest.fixture
def uow() -> FakeIntakeUnitOfWork:
    fake = FakeIntakeUnitOfWork()
    fake.provider("demo")
    return fake


def submit(uow: FakeIntakeUnitOfWork, raw: dict, keys: ReferralKeys = KEYS):
    use = UseCases.over(uow, ResponsePolicy())
    digest = referrals.request_hash(raw)
    submission = referrals.Submission("met-police", ReferralInSchema().load(raw), digest, "police", keys)
    return referrals.submit(use.units, use.offering, submission)


def canonical(raw: dict) -> bytes:
    return json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()


def test_the_stored_hash_is_not_the_sha256_of_the_body_and_needs_the_key_to_recompute(uow):
    raw = referral_body(consent=NEITHER)
    referral, _ = submit(uow, raw)
    assert referral.pathway == "duty_to_notify"
    plain = hashlib.sha256(canonical(raw)).hexdigest()
    assert referral.request_hash != plain
    assert referral.request_hash != ReferralKeys(DEV_KEY).request_hash(plain)  # another deployment's key
    with_key = hmac.new(KEYS.secret.encode(), b"request\x00" + plain.encode(), hashlib.sha256).hexdigest()
    assert referral.request_hash == with_key


def test_an_anonymous_referral_keeps_only_a_keyed_hash_of_its_reference(uow):
    raw = referral_body(consent=NEITHER)
    referral, _ = submit(uow, raw)
    reference = raw["external_reference"]
    assert referral.reference_keyed and referral.reference_for_referrer is None
    assert referral.external_reference == KEYS.reference("met-police", reference)
    assert reference not in json.dumps(referral.body) and referral.body["referrer"] == {"role": "detective constable"}
    assert referral.external_reference != hashlib.sha256(reference.encode()).hexdigest()


def test_no_event_about_an_anonymous_referral_carries_its_reference(uow):
    raw = referral_body(consent=NEITHER)
    referral, _ = submit(uow, raw)
    staged = uow.events()
    assert [type(e) for e in staged] == [events.ReferralReceived]
    for event in staged:
        assert raw["external_reference"].encode() not in msgspec.json.encode(event)
        assert event.external_reference is None


def test_a_routed_referral_still_tells_its_referrer_its_reference(uow):
    raw = referral_body()
    referral, _ = submit(uow, raw)
    assert not referral.reference_keyed and referral.external_reference == raw["external_reference"]
    received = uow.events(events.ReferralReceived)[0]
    assert received.external_reference == raw["external_reference"]


def test_a_retry_of_an_anonymous_referral_returns_it_and_another_body_under_its_reference_is_refused(uow):
    raw = referral_body(consent=NEITHER)
    first, created = submit(uow, raw)
    again, created_again = submit(uow, json.loads(json.dumps(raw)))
    assert (created, created_again, again.id) == (True, False, first.id)
    with pytest.raises(referrals.ReferralConflict):
        submit(uow, raw | {"narrative": "Another synthetic narrative."})
    with pytest.raises(referrals.ReferralConflict):  # the same reference taking a routed pathway this time
        submit(uow, raw | {"consent": {"nrm_referral": True, "advocacy": True, "data_sharing": True}})
    assert len(uow.referrals.rows) == 1


def test_the_key_is_required_where_a_real_identity_provider_issues_tokens():
    production = Settings.from_env("intake", {"AUTH_TOKEN_URL": "https://idp.example.org/token"})
    with pytest.raises(ConfigError, match="DTN_HMAC_KEY is not set"):
        IntakeConfig.from_settings(production)
    with pytest.raises(ConfigError, match="at least 32"):
        dtn_hmac_key(Settings.from_env("intake", {"DTN_HMAC_KEY": "short"}))
    assert IntakeConfig.from_settings(Settings.from_env("intake", {})).keys == ReferralKeys(DEV_KEY)


def test_an_anonymous_referral_keeps_the_referring_organisation_not_the_officer(uow):
    consent = NEITHER | {"obtained_by": "DC Synthetic-Officer Tester"}
    raw = referral_body(consent=consent)
    referral, _ = submit(uow, raw)
    kept = json.dumps(referral.body)
    for detail in ("DC Synthetic-Officer Tester", raw["referrer"]["name"], raw["referrer"]["email"], "+44 20"):
        assert detail not in kept
    records = uow.consents.of(referral.id)
    assert records and {r.obtained_by for r in records} == {"met-police"} and referral.org_id == "met-police"
