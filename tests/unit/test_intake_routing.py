"""Routing rules: who is eligible, how candidates are ranked, how long they have to answer, who may answer."""

from datetime import UTC, datetime, timedelta

from services.intake import routing
from services.intake.domain import ResponsePolicy
from services.intake.routing import ProviderEntry, RoutingNeeds

LONDON_ADULT = RoutingNeeds(region="london", child=False, languages=("sq",), sex="female")


def provider(pid: str, **overrides) -> ProviderEntry:
    base = {"id": pid, "regions": ["london"], "serves": ["adult", "child"], "accepting": True, "capacity": 5}
    return ProviderEntry(**{**base, **overrides})


def ranked(providers, needs=LONDON_ADULT, offered=()) -> list[str]:
    return [p.id for p in routing.rank_providers(providers, needs, offered)]


def test_more_spare_capacity_ranks_higher_and_ties_break_by_provider_id():
    assert ranked([provider("b", capacity=3), provider("a", capacity=3), provider("c", capacity=9)]) == ["c", "a", "b"]


def test_a_shared_language_outranks_spare_capacity():
    providers = [provider("big", capacity=50, languages=["en"]), provider("speaks-sq", capacity=1, languages=["sq"])]
    assert ranked(providers) == ["speaks-sq", "big"]


def test_a_matching_sex_specific_service_ranks_first_and_others_are_not_eligible_for_it():
    women_only = provider("women-only", sexes=["female"], capacity=1)
    general = provider("general", capacity=9)
    assert ranked([general, women_only]) == ["women-only", "general"]
    man = RoutingNeeds(region="london", child=False, sex="male")
    assert ranked([general, women_only], man) == ["general"]
    unknown = RoutingNeeds(region="london", child=False, sex="unknown")
    assert ranked([women_only], unknown) == []


def test_at_high_risk_of_re_trafficking_a_provider_able_to_support_elsewhere_ranks_higher():
    local = provider("local", capacity=9)
    wider = provider("wider", regions=["london", "wales"], capacity=2)
    assert ranked([local, wider]) == ["local", "wider"]
    high = RoutingNeeds(region="london", child=False, high_risk=True)
    assert ranked([local, wider], high) == ["wider", "local"]


def test_not_accepting_full_out_of_region_or_wrong_age_group_are_never_eligible():
    providers = [
        provider("closed", accepting=False),
        provider("full", capacity=0),
        provider("north", regions=["north_west"]),
        provider("adults", serves=["adult"]),
    ]
    assert ranked(providers, RoutingNeeds(region="london", child=True)) == []
    assert ranked(providers, RoutingNeeds(region="london", child=False)) == ["adults"]


def test_an_adult_only_provider_never_receives_a_child():
    adults = provider("adults", serves=["adult"], capacity=100, languages=["sq"])
    assert routing.choose_provider([adults], RoutingNeeds(region="london", child=True, languages=("sq",))) is None


def test_a_provider_is_never_offered_the_same_referral_twice():
    providers = [provider("a", capacity=9), provider("b", capacity=1)]
    assert ranked(providers, offered=["a"]) == ["b"]
    assert routing.choose_provider(providers, LONDON_ADULT, ["a", "b"]) is None


def test_routing_needs_come_from_the_body_without_identifiers():
    body = {
        "subject": {"given_name": "Kalox", "languages": ["ro"], "sex": "male"},
        "location": {"region": "wales"},
        "risk": {"re_trafficking_risk": "high"},
    }
    assert routing.routing_needs(body, child=False) == RoutingNeeds("wales", False, ("ro",), "male", True)


def test_the_response_deadline_is_24_hours_unless_the_region_says_otherwise():
    offered = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    policy = ResponsePolicy(24, {"wales": 48})
    assert policy.respond_by(offered, "london") == offered + timedelta(hours=24)
    assert policy.respond_by(offered, "wales") == offered + timedelta(hours=48)
