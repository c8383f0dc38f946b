"""The Duty to Notify: which rule binds a referrer where (duty_to_notify_rules.csv), what the anonymous record
holds, and the submission use case over the fake unit of work for each pathway an adult without NRM consent
can take, inside and outside the rule."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from services.intake import duty_to_notify, referrals
from services.intake.bootstrap import UseCases
from services.intake.domain import ResponsePolicy
from services.intake.schemas import ReferralInSchema
from shared.testing import referral_body
from support.fake_intake import FakeIntakeUnitOfWork

pytestmark = pytest.mark.unit

TODAY = date(2026, 12, 1)
ADVOCACY_ONLY = {"nrm_referral": False, "advocacy": True, "data_sharing": True}
NEITHER = {"nrm_referral": False, "advocacy": False, "data_sharing": False}
STATISTICAL_FIELDS = {
    "rule", "notifying_authority_kind", "notified_month", "region", "local_authority", "nationality", "sex",
    "exploitation_types", "exploitation_locations", "exploited_as_child",
}  # fmt: skip


@pytest.mark.parametrize(
    ("org_kind", "region", "rule"),
    [
        ("police", "london", "mlsa2015_s52"),
        ("local_authority", "wales", "mlsa2015_s52"),
        ("police", "north_west", "mlsa2015_s52"),
        ("first_responder", "london", None),  # an NGO first responder: s52 binds public authorities only
        ("provider", "london", None),
        ("police", "scotland", None),  # s38 of the Scottish Act: commencement not verified
        ("police", "northern_ireland", None),  # s13 of the NI Act: commencement not verified
    ],
)
def test_the_duty_binds_the_authorities_and_nations_the_law_names(org_kind, region, rule):
    found = duty_to_notify.applicable_rule(org_kind, region, TODAY)
    assert (found.id if found else None) == rule


def test_the_duty_did_not_bind_before_section_52_came_into_force():
    assert duty_to_notify.applicable_rule("police", "london", date(2015, 10, 31)) is None
    assert duty_to_notify.applicable_rule("police", "london", date(2015, 11, 1)) is not None


def test_every_shipped_rule_cites_its_source_and_one_not_in_force_says_why():
    rules = duty_to_notify.load_rules()
    assert {r.id for r in rules} == {"mlsa2015_s52", "htea_scotland2015_s38", "htea_ni2015_s13"}
    for rule in rules:
        assert rule.source and rule.note and rule.regions and rule.org_kinds
        if rule.in_force_from is None:
            assert "NOT" in rule.note and "verified" in rule.note


def test_the_anonymous_record_holds_statistical_codes_and_a_month_only():
    body = ReferralInSchema().load(referral_body(consent=NEITHER, seed=7))
    rule = duty_to_notify.applicable_rule("police", "london", TODAY)
    assert rule is not None
    at = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    record = duty_to_notify.notification(body, rule=rule, org_kind="police", referred_at=at)
    assert set(record) == STATISTICAL_FIELDS
    assert record["notified_month"] == "2026-11" and record["nationality"] == "AL"
    assert record["exploitation_types"] == ["labour"] and record["exploited_as_child"] is False
    kept = json.dumps(record)
    for identifier in (body["subject"]["given_name"], body["subject"]["family_name"], body["external_reference"]):
        assert identifier not in kept
    assert "referrer@example.org" not in kept and "Synthetic narrative" not in kept


# --- the submission, over the fake unit of work ----------------------------------------------------------


@pytest.fixture
def uow() -> FakeIntakeUnitOfWork:
    fake = FakeIntakeUnitOfWork()
    fake.provider("demo")
    return fake


@pytest.fixture
def use(uow) -> UseCases:
    return UseCases.over(uow, ResponsePolicy())


def submit(use: UseCases, raw: dict, org_kind: str = "police"):
    submission = referrals.Submission("an-org", ReferralInSchema().load(raw), referrals.request_hash(raw), org_kind)
    return referrals.submit(use.units, use.offering, submission)


def test_advocacy_only_is_routed_with_the_consented_details_and_an_unlinked_anonymous_record(uow, use):
    raw = referral_body(consent=ADVOCACY_ONLY)
    referral, _ = submit(use, raw)
    assert (referral.pathway, referral.status, referral.duty_to_notify_rule) == (
        "advocacy_only",
        "offered",
        "mlsa2015_s52",
    )
    assert referral.duty_to_notify_recorded
    assert referral.body["subject"]["given_name"] == raw["subject"]["given_name"]  # what they agreed to share
    assert referral.body["narrative"] == raw["narrative"]
    (offered,) = uow.events()[1:]
    assert offered.summary.pathway == "advocacy_only"
    (record,) = uow.duty_to_notify.rows
    assert record.id != referral.id and record.notified_month == referral.referred_at.strftime("%Y-%m")
    kept = json.dumps({c: getattr(record, c) for c in STATISTICAL_FIELDS | {"id"}})
    for link in (referral.id, referral.external_reference, referral.request_hash, raw["subject"]["given_name"]):
        assert link not in kept


def test_an_adult_with_neither_consent_under_the_duty_is_recorded_anonymously_with_the_record(uow, use):
    raw = referral_body(consent=NEITHER)
    referral, _ = submit(use, raw, org_kind="local_authority")
    assert (referral.pathway, referral.status) == ("duty_to_notify", "recorded")
    assert referral.duty_to_notify_recorded and referral.duty_to_notify_rule == "mlsa2015_s52"
    assert set(referral.body["subject"]) == {"sex", "nationality"}
    assert referral.body["referrer"] == {"role": raw["referrer"]["role"]}  # the org and role: not the officer
    assert raw["subject"]["given_name"] not in json.dumps(referral.body)
    assert uow.offers.rows == {}
    (record,) = uow.duty_to_notify.rows
    assert record.notifying_authority_kind == "local_authority"


def test_an_ngo_first_responder_makes_no_notification_and_advocacy_consent_still_routes(uow, use):
    raw = referral_body(consent=ADVOCACY_ONLY)
    referral, _ = submit(use, raw, org_kind="first_responder")
    assert (referral.pathway, referral.status, referral.duty_to_notify_rule) == ("not_notified", "offered", None)
    assert not referral.duty_to_notify_recorded
    assert referral.body["subject"]["given_name"] == raw["subject"]["given_name"]
    assert uow.duty_to_notify.rows == []


def test_outside_the_duty_without_advocacy_consent_it_is_recorded_with_no_personal_data(uow, use):
    raw = referral_body(consent=NEITHER, location={"region": "scotland"})
    referral, _ = submit(use, raw)
    assert (referral.pathway, referral.status, referral.duty_to_notify_recorded) == ("not_notified", "recorded", False)
    assert raw["subject"]["given_name"] not in json.dumps(referral.body)
    assert uow.duty_to_notify.rows == [] and uow.offers.rows == {}


def test_an_nrm_referral_names_the_rule_but_makes_no_separate_record(uow, use):
    referral, _ = submit(use, referral_body())
    assert (referral.pathway, referral.duty_to_notify_rule, referral.duty_to_notify_recorded) == (
        "nrm",
        "mlsa2015_s52",
        False,
    )
    assert uow.duty_to_notify.rows == []


def test_a_replay_makes_no_second_record(uow, use):
    raw = referral_body(consent=ADVOCACY_ONLY)
    submit(use, raw)
    _, created = submit(use, dict(raw))
    assert not created and len(uow.duty_to_notify.rows) == 1
