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


# Every combination: (child, nrm consent, advocacy consent, a Duty to Notify rule binds the referrer there)
# -> (pathway, routed, an anonymous DtN record is made, the stored body is stripped).
PATHWAYS = [
    (True, None, None, True, "nrm", True, False, False),
    (True, None, None, False, "nrm", True, False, False),
    (True, False, False, True, "nrm", True, False, False),  # a child needs no consent
    (False, True, True, True, "nrm", True, False, False),
    (False, True, True, False, "nrm", True, False, False),
    (False, True, False, True, "nrm", False, False, False),
    (False, True, False, False, "nrm", False, False, False),
    (False, False, True, True, "advocacy_only", True, True, False),
    (False, False, True, False, "not_notified", True, False, False),
    (False, False, False, True, "duty_to_notify", False, True, True),
    (False, False, False, False, "not_notified", False, False, True),
]


@pytest.mark.parametrize(("child", "nrm", "advocacy", "duty", "pathway", "routed", "notified", "anonymous"), PATHWAYS)
def test_each_combination_of_age_consent_and_duty_takes_its_pathway(
    child, nrm, advocacy, duty, pathway, routed, notified, anonymous
):
    consent = None if nrm is None else {**CONSENT_ALL, "nrm_referral": nrm, "advocacy": advocacy}
    decided = domain.decide_pathway(child, consent, duty_to_notify=duty)
    assert (decided.pathway, decided.is_child, decided.routed) == (pathway, child, routed)
    assert decided.duty_to_notify_recorded is notified
    assert decided.anonymous is anonymous
    assert decided.initial_status == ("received" if routed else "recorded")


def test_an_adult_without_consent_is_rejected_on_the_consent_field():
    with pytest.raises(ReferralRejected) as raised:
        domain.decide_pathway(False, None, duty_to_notify=True)
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
    assert set(stripped["subject"]) == {"sex", "nationality"}
    assert "narrative" not in stripped and "referrer" not in stripped
    assert stripped["risk"] == {"re_trafficking_risk": "high"}  # what decides a coordinator's alert, no notes
    assert "Kalox" not in repr(stripped) and "Officer" not in repr(stripped)
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
