"""intake's event handlers over the fake unit of work, each event delivered as the consumer delivers it
(shared.inbox.EventHandlers: the catalogue's checks, the inbox, one unit per event). No database, no broker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import events
from services.intake import referrals
from services.intake.bootstrap import UseCases
from services.intake.domain import ResponsePolicy
from services.intake.models import Offer, Referral
from services.intake.schemas import ReferralInSchema
from services.intake.worker import QUEUE
from shared.clock import utcnow
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.testing import referral_body
from support.events import ADVOCATE, answer, arriving, payload
from support.fake_intake import FakeIntakeUnitOfWork

pytestmark = pytest.mark.unit


@pytest.fixture
def uow() -> FakeIntakeUnitOfWork:
    fake = FakeIntakeUnitOfWork()
    fake.provider("provider-a", capacity=9)
    fake.provider("provider-b", capacity=5)
    return fake


@pytest.fixture
def use(uow) -> UseCases:
    return UseCases.over(uow, ResponsePolicy())


@pytest.fixture
def offered(uow, use) -> tuple[Referral, Offer]:
    """A referral offered to provider-a, with provider-b also eligible."""
    raw = referral_body()
    submission = referrals.Submission("met-police", ReferralInSchema().load(raw), referrals.request_hash(raw), "police")
    referral, _ = referrals.submit(use.units, use.offering, submission)
    (offer,) = uow.offers.of(referral.id)
    assert offer.provider_id == "provider-a"
    uow.published.clear()
    uow.referrals.locked.clear()
    return referral, offer


def deliver(use: UseCases, event: Event) -> None:
    EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})(event)


def test_an_accepted_offer_allocates_the_referral_and_tells_the_referrer_and_that_provider_alone(uow, use, offered):
    referral, offer = offered
    deliver(use, answer("offer.accepted", referral.id, offer.id))
    assert (referral.status, referral.provider_id, referral.case_id) == ("allocated", "provider-a", "case-1")
    assert referral.advocate == ADVOCATE and referral.accepted_at == offer.responded_at
    assert offer.status == "accepted"
    assert uow.routing_keys() == ["referral.allocated", "allocation.confirmed.provider-a"]
    allocated = uow.events(events.ReferralAllocated)[0]
    assert (allocated.status, allocated.provider_id, allocated.case_id) == ("allocated", "provider-a", "case-1")
    assert uow.referrals.locked == [referral.id]  # the referral first, then its offer


def test_a_declined_offer_goes_to_the_next_provider_then_escalates_when_none_is_left(uow, use, offered):
    referral, offer = offered
    deliver(use, answer("offer.declined", referral.id, offer.id, reason="no_capacity"))
    assert (offer.status, offer.decline_reason) == ("declined", "no_capacity")
    (second,) = uow.offers.pending_for(referral.id)
    assert second.provider_id == "provider-b" and uow.routing_keys() == ["referral.offered.provider-b"]
    deliver(use, answer("offer.declined", referral.id, second.id, provider="provider-b", reason="no_single_sex_place"))
    assert referral.status == "escalated"
    assert [e.reason for e in uow.escalations.rows] == ["none_accepted"]
    assert uow.events(events.ReferralEscalated)[0].reason == "none_accepted"


def test_an_answer_naming_another_providers_offer_is_permanent_and_changes_nothing(uow, use, offered):
    referral, offer = offered
    with pytest.raises(PermanentError, match="not made to that provider"):
        deliver(use, answer("offer.accepted", referral.id, offer.id, provider="provider-b"))
    assert referral.status == "offered" and offer.status == "pending"
    assert uow.published == [] and uow.rollbacks == 1


def test_an_answer_to_an_offer_withdrawn_meanwhile_is_ignored(uow, use, offered):
    referral, offer = offered
    offer.close("withdrawn", utcnow())
    deliver(use, answer("offer.accepted", referral.id, offer.id))
    assert referral.status == "offered" and referral.provider_id is None
    assert uow.published == []


def test_the_same_answer_delivered_twice_has_one_effect(uow, use, offered):
    referral, offer = offered
    accepted = answer("offer.accepted", referral.id, offer.id)
    deliver(use, accepted)
    deliver(use, accepted)
    assert uow.routing_keys() == ["referral.allocated", "allocation.confirmed.provider-a"]


def capacity(provider_id: str, places: int, **overrides) -> Event:
    report = payload("provider.capacity_changed", provider_id=provider_id, capacity=places, advocates=2)
    return arriving(report, publisher=f"advocacy-{provider_id}", **overrides)


def test_a_providers_capacity_follows_its_own_report_and_an_older_report_never_wins(uow, use):
    deliver(use, capacity("provider-a", 2))
    provider = uow.providers.get("provider-a")
    assert provider is not None and provider.capacity == 2 and provider.capacity_reported_at
    older = (provider.capacity_reported_at - timedelta(minutes=5)).isoformat()
    deliver(use, capacity("provider-a", 7, time=older))
    assert provider.capacity == 2
    deliver(use, capacity("unlisted-charity", 3))  # not in the directory: ignored
    assert uow.providers.get("unlisted-charity") is None
    assert uow.published == []


def test_a_full_provider_is_passed_over_by_routing(uow, use):
    deliver(use, capacity("provider-a", 0))
    raw = referral_body()
    submission = referrals.Submission("met-police", ReferralInSchema().load(raw), referrals.request_hash(raw), "police")
    referral, _ = referrals.submit(use.units, use.offering, submission)
    assert uow.offers.pending_for(referral.id)[0].provider_id == "provider-b"


def handed_over(referral_id: str, sender: str, receiver: str = "provider-b") -> Event:
    handover = payload(
        "case.handed_over", referral_id=referral_id, case_id="case-1", from_provider_id=sender, to_provider_id=receiver
    )
    return arriving(handover, publisher=f"advocacy-{sender}")


def test_a_case_handed_over_moves_the_allocation_and_tells_the_referrer_and_the_receiver(uow, use, offered):
    referral, offer = offered
    deliver(use, answer("offer.accepted", referral.id, offer.id))
    uow.published.clear()
    deliver(use, handed_over(referral.id, "provider-a"))
    assert (referral.status, referral.provider_id, referral.case_id, referral.advocate) == (
        "allocated",
        "provider-b",
        None,
        None,
    )
    assert uow.routing_keys() == ["referral.transferred", "allocation.transferred.provider-b"]
    transferred = uow.events(events.ReferralTransferred)[0]
    assert (transferred.provider_id, transferred.from_provider_id) == ("provider-b", "provider-a")


def test_a_handover_by_a_provider_not_holding_the_referral_or_to_an_unknown_one_is_permanent(uow, use, offered):
    referral, offer = offered
    deliver(use, answer("offer.accepted", referral.id, offer.id))
    uow.published.clear()
    with pytest.raises(PermanentError, match="does not hold"):
        deliver(use, handed_over(referral.id, "provider-b", receiver="provider-a"))
    with pytest.raises(PermanentError, match="unknown referral or receiving provider"):
        deliver(use, handed_over(referral.id, "provider-a", receiver="not-listed"))
    assert referral.provider_id == "provider-a" and uow.published == []


def test_a_handover_of_a_referral_no_longer_allocated_is_ignored(uow, use, offered):
    referral, offer = offered
    deliver(use, answer("offer.accepted", referral.id, offer.id))
    referral.withdraw(uow.offers.of(referral.id), utcnow())
    referral.events.clear()
    uow.published.clear()
    deliver(use, handed_over(referral.id, "provider-a"))
    assert (referral.status, referral.provider_id) == ("withdrawn", "provider-a") and uow.published == []
