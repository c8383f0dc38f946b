"""Pathway rules: who is a child, which pathway a referral takes, what a Duty to Notify may hold."""

from datetime import UTC, date, datetime

import pytest

from services.intake import domain
from services.intake.domain import Pathway, ReferralRejected

REFERRED = datetime(2026, 6, 1, tzinfo=UTC)
CONSENT_ALL = {"nrm_referral": True, "advocacy": True, "data_sharing": True}


def test_a_person_one_day_short_of_18_is_a_child():
    assert domain.is_child({"date_of_birth": date(2008, 6, 2)}, REFERRED)


def test_a_person_18_today_is_an_adult():
    assert not domain.is_child({"date_of_birth": date(2008, 6, 1)}, REFERRED)


def test_a_disputed_age_is_presumed_a_child_whatever_the_estimate():
    assert domain.is_child({"age_disputed": True, "age_estimate": 25}, REFERRED)


def test_an_age_estimate_decides_when_there_is_no_date_of_birth():
    assert domain.is_child({"age_estimate": 17}, REFERRED)
    assert not domain.is_child({"age_estimate": 18}, REFERRED)


def test_no_age_at_all_is_rejected_on_the_date_of_birth_field():
    with pytest.raises(ReferralRejected) as raised:
        domain.is_child({}, REFERRED)
    assert raised.value.field == "subject.date_of_birth"


def test_a_child_is_routed_into_the_nrm_without_consent():
    assert domain.decide_pathway(True, None) == Pathway("nrm", True, True)


def test_an_adult_consenting_to_nrm_and_advocacy_is_routed():
    assert domain.decide_pathway(False, CONSENT_ALL) == Pathway("nrm", False, True)


def test_an_adult_without_nrm_consent_is_a_duty_to_notify():
    pathway = domain.decide_pathway(False, {**CONSENT_ALL, "nrm_referral": False})
    assert pathway.pathway == "duty_to_notify"
    assert pathway.routed  # advocacy consent still routes them to an advocate


def test_an_adult_without_advocacy_consent_is_recorded_not_routed():
    pathway = domain.decide_pathway(False, {**CONSENT_ALL, "advocacy": False})
    assert not pathway.routed
    assert pathway.initial_status == "recorded"


def test_an_adult_without_consent_is_rejected_on_the_consent_field():
    with pytest.raises(ReferralRejected) as raised:
        domain.decide_pathway(False, None)
    assert raised.value.field == "consent"


def test_adult_without_nrm_consent_is_recorded_without_identifiers():
    body = {
        "subject": {
            "given_name": "Kalox",
            "family_name": "Synthetic-Mizux",
            "aliases": ["Zux"],
            "date_of_birth": "1990-01-01",
            "safe_contact": {"method": "phone", "value": "+44 7700 900000"},
            "sex": "male",
            "nationality": "VN",
            "languages": ["vi"],
        },
        "narrative": "Kalox said ...",
        "risk": {"notes": "Kalox lives at ...", "re_trafficking_risk": "high"},
        "referrer": {"name": "Officer", "email": "o@example.org"},
    }
    stripped = domain.without_identifiers(body)
    assert set(stripped["subject"]) == {"sex", "nationality", "languages"}
    assert "narrative" not in stripped and "notes" not in stripped["risk"]
    assert "Kalox" not in repr(stripped)
    assert body["subject"]["given_name"] == "Kalox"  # the input is not mutated


def test_an_offer_summary_carries_what_a_provider_decides_on_and_no_identifier():
    body = {
        "subject": {
            "given_name": "Kalox",
            "date_of_birth": "2010-01-01",
            "languages": ["sq"],
            "sex": "female",
        },
        "location": {"region": "london", "local_authority": "E09000033"},
        "exploitation": [{"type": "sexual"}, {"type": "labour"}, {"type": "sexual"}],
        "risk": {"immediate_danger": True, "notes": "Kalox ..."},
        "needs": ["legal"],
    }
    summary = domain.offer_summary(body, Pathway("nrm", True, True))
    assert summary["exploitation_types"] == ["labour", "sexual"]
    assert summary["immediate_danger"] is True
    assert "Kalox" not in repr(summary) and "2010" not in repr(summary)
