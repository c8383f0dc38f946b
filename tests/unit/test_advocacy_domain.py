"""advocacy's pure rules: who takes a new case, when an offer can be answered, what an offer keeps."""

from __future__ import annotations

import pytest

from services.advocacy import domain
from services.advocacy.domain import AdvocateLoad, choose_advocate


def advocate(id: str, languages=("en",), caseload: int = 0, max_caseload: int = 10, active: bool = True):
    return AdvocateLoad(id=id, languages=tuple(languages), max_caseload=max_caseload, caseload=caseload, active=active)


def test_an_advocate_who_shares_a_language_is_preferred_even_when_busier():
    english = advocate("a", ["en"], caseload=0)
    albanian = advocate("b", ["en", "sq"], caseload=8)
    assert choose_advocate([english, albanian], ["sq"]).id == "b"


def test_among_language_matches_the_least_loaded_by_share_of_their_maximum_wins():
    small_but_half_full = advocate("a", ["sq"], caseload=2, max_caseload=4)
    big_and_a_third_full = advocate("b", ["sq"], caseload=5, max_caseload=15)
    assert choose_advocate([small_but_half_full, big_and_a_third_full], ["sq"]).id == "b"


def test_equal_share_falls_back_to_the_smaller_caseload_then_to_the_id():
    assert (
        choose_advocate([advocate("a", caseload=4, max_caseload=8), advocate("b", caseload=2, max_caseload=4)], []).id
        == "b"
    )
    assert choose_advocate([advocate("z", caseload=1), advocate("m", caseload=1)], ["en"]).id == "m"


def test_when_nobody_shares_a_language_the_least_loaded_with_room_is_chosen():
    assert choose_advocate([advocate("a", ["en"], caseload=3), advocate("b", ["ro"], caseload=1)], ["sq"]).id == "b"


def test_inactive_and_full_advocates_are_never_chosen():
    full = advocate("a", ["sq"], caseload=10, max_caseload=10)
    inactive = advocate("b", ["sq"], caseload=0, active=False)
    spare = advocate("c", ["en"], caseload=9, max_caseload=10)
    assert choose_advocate([full, inactive, spare], ["sq"]).id == "c"


def test_nobody_with_room_means_no_choice():
    assert choose_advocate([advocate("a", caseload=1, max_caseload=1), advocate("b", active=False)], ["en"]) is None
    assert choose_advocate([], ["en"]) is None


def test_language_match_ignores_case():
    assert choose_advocate([advocate("a", ["en"]), advocate("b", ["SQ"], caseload=5)], ["sq"]).id == "b"


def test_only_a_pending_offer_can_be_answered():
    domain.ensure_pending("o-1", domain.OFFER_PENDING)
    for status in (domain.OFFER_ACCEPTED, domain.OFFER_DECLINED, domain.OFFER_WITHDRAWN):
        with pytest.raises(domain.OfferNotPending, match=f"offer o-1 is {status}"):
            domain.ensure_pending("o-1", status)


def test_a_named_advocate_must_be_active_and_have_room():
    domain.ensure_can_take(advocate("a", caseload=9, max_caseload=10))
    with pytest.raises(domain.AdvocateUnavailable, match="inactive"):
        domain.ensure_can_take(advocate("a", active=False))
    with pytest.raises(domain.AdvocateUnavailable, match=r"maximum caseload \(10/10\)"):
        domain.ensure_can_take(advocate("a", caseload=10, max_caseload=10))


def test_languages_are_lower_cased_and_kept_once_in_order():
    assert domain.normalise_languages(["en", "SQ", "en", " ro "]) == ["en", "sq", "ro"]


def test_an_offer_keeps_only_the_minimised_summary_of_the_event():
    data = {
        "referral_id": "r-1",
        "offer_id": "o-1",
        "provider_id": "charity-a",
        "org_id": "met-police",
        "external_reference": "REF-1",
        "languages": ["sq"],
        "region": "london",
        "given_name": "Synthetic",  # must never be kept, even if an upstream bug sent it
        "narrative": "Synthetic narrative",
    }
    summary = domain.offer_summary(data)
    assert set(summary) == set(domain.SUMMARY_FIELDS)
    assert summary["languages"] == ["sq"] and summary["org_id"] == "met-police"
    assert "given_name" not in summary and "narrative" not in summary


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"receiving_agency": "Leeds City Council"}, "organisation id"),
        ({"receiving_agency": "leeds\x01"}, "organisation id"),
        ({"receiving_provider_id": "North Charity"}, "provider id"),
    ],
)
def test_a_transitions_ids_must_be_ids_as_the_events_that_carry_them_state(fields, reason):
    with pytest.raises(domain.TransitionInvalid, match=reason):
        domain.ensure_transition_fields(
            "relocation", own_provider_id="charity-a", to_advocate_id=None,
            **{"receiving_provider_id": None, **fields},
        )  # fmt: skip
    domain.ensure_transition_fields(
        "relocation", own_provider_id="charity-a", to_advocate_id=None, receiving_provider_id="north-charity",
        receiving_agency="leeds-city-council",
    )  # fmt: skip
