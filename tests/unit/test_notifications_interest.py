"""Which events are worth a transaction in notifications (services/notifications/interest.py): only one a
subscription of an org it concerns wants, or one that records who holds a referral; and the worker's view of
the subscriptions, read again at most once a second and only when an event asks."""

from __future__ import annotations

import uuid

import pytest

from services.notifications.handlers import effect_check
from services.notifications.interest import Interest, has_effect, wanted_by
from shared.messaging.catalogue import envelope
from support.events import payload

pytestmark = pytest.mark.unit

WANTED = wanted_by([("met-police", ["referral.allocated", "case.opened"]), ("kent-police", ["referral.received"])])


def test_an_event_no_subscription_wants_has_no_effect():
    assert not has_effect("referral.withdrawn", ["met-police"], WANTED, keeps_records=False)
    assert not has_effect("case.closed", None, WANTED, keeps_records=False)
    assert not has_effect("referral.received", ["met-police"], {}, keeps_records=False)


def test_a_type_wanted_only_by_another_org_has_no_effect_for_this_ones_referral():
    assert not has_effect("referral.received", ["met-police"], WANTED, keeps_records=False)
    assert has_effect("referral.received", ["met-police", "kent-police"], WANTED, keeps_records=False)


def test_when_the_orgs_are_known_only_from_the_database_any_subscription_to_the_type_counts():
    assert has_effect("case.opened", None, WANTED, keeps_records=False)


def test_an_event_that_changes_a_kept_record_has_an_effect_whoever_subscribes():
    assert has_effect("referral.transferred", ["met-police"], {}, keeps_records=True)


def test_wanted_by_maps_each_event_type_to_the_orgs_subscribed_to_it():
    both = wanted_by([("a", ["x", "y"]), ("b", ["y"]), ("c", [])])
    assert both == {"x": frozenset({"a"}), "y": frozenset({"a", "b"})}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Subscriptions:
    """The live subscriptions as the database would answer, counting the reads."""

    def __init__(self, *rows: tuple[str, list[str]]):
        self.rows, self.reads = list(rows), 0

    def load(self):
        self.reads += 1
        return wanted_by(self.rows)


def test_the_subscriptions_are_read_at_the_first_event_then_at_most_once_per_max_age():
    clock, stored = Clock(), Subscriptions(("met-police", ["referral.allocated"]))
    interest = Interest(stored.load, max_age=1.0, clock=clock)
    assert stored.reads == 0  # nothing read until an event asks
    assert interest.wanted() == {"referral.allocated": frozenset({"met-police"})}
    stored.rows.append(("kent-police", ["referral.received"]))
    clock.now += 0.5
    assert "referral.received" not in interest.wanted() and stored.reads == 1
    clock.now += 0.5
    assert interest.wanted()["referral.received"] == frozenset({"kent-police"}) and stored.reads == 2


def test_a_change_made_in_this_process_is_read_at_the_next_event():
    clock, stored = Clock(), Subscriptions()
    interest = Interest(stored.load, clock=clock)
    assert interest.wanted() == {}
    stored.rows.append(("met-police", ["case.opened"]))
    interest.changed()
    assert interest.wanted() == {"case.opened": frozenset({"met-police"})}


def test_a_failed_read_is_the_events_failure_and_is_tried_again_at_the_next():
    clock, stored = Clock(), Subscriptions(("met-police", ["case.opened"]))
    down = True

    def load():
        if down:
            raise ConnectionError("database down")
        return stored.load()

    interest = Interest(load, clock=clock)
    with pytest.raises(ConnectionError):
        interest.wanted()
    down = False
    assert interest.wanted() == {"case.opened": frozenset({"met-police"})}


# --- the handlers' check, on the events as they arrive --------------------------------------------------------


def accepted(event_type: str, **data):
    """The event as a handler gets it: accepted, its payload typed."""
    event, _key = envelope(payload(event_type, **data))
    return event


def referral_news(event_type: str, org: str = "met-police", **fields):
    return accepted(event_type, referral_id=str(uuid.uuid4()), org_id=org, external_reference="REF-SYN-1", **fields)


def check_with(*rows: tuple[str, list[str]]):
    stored = Subscriptions(*rows)
    return effect_check(Interest(stored.load, clock=Clock())), stored


def test_intakes_news_counts_the_referring_orgs_subscriptions_only():
    check, _ = check_with(("kent-police", ["referral.received"]))
    received = dict(status="received", pathway="nrm", is_child=False, region="london")
    assert not check(referral_news("referral.received", **received))
    assert check(referral_news("referral.received", org="kent-police", **received))


def test_a_childs_local_authority_counts_for_the_events_it_hears_of():
    check, _ = check_with(("kent-children", ["referral.received"]))
    received = dict(status="received", pathway="nrm", is_child=True, region="south_east")
    assert check(referral_news("referral.received", local_authority_org_id="kent-children", **received))
    assert not check(referral_news("referral.received", **received))


def test_who_holds_a_referral_is_recorded_without_reading_the_subscriptions():
    check, stored = check_with()
    allocated = dict(status="allocated", provider_id="charity-a", case_id="case-1")
    assert check(referral_news("referral.allocated", **allocated))
    assert stored.reads == 0


def test_a_providers_news_counts_any_subscription_to_its_type():
    check, _ = check_with(("west-yorkshire-police", ["case.opened"]))
    case = dict(referral_id=str(uuid.uuid4()), case_id="case-1", provider_id="charity-a")
    assert check(accepted("case.opened", **case))
    assert not check(accepted("case.closed", outcome="moved_on", **case))
