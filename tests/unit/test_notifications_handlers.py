"""notifications' event handlers through a fake unit of work: which events queue which webhooks, for whom, and
which are refused. No database, no broker: the events go through the real catalogue and EventHandlers."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.notifications.handlers import UnknownReferral, subscriptions
from services.notifications.models import Subscription
from shared.clock import utcnow
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from support.events import arriving, payload
from support.fake_notifications import FakeNotificationsUnitOfWork

REFERRER, OTHER_AGENCY, RECEIVER = "agency-synthetic-a", "agency-synthetic-b", "council-synthetic-c"
# What each of intake's events says besides the referral, its org and status (contracts.events).
INTAKE_FIELDS: dict[str, dict[str, Any]] = {
    "referral.received": {"status": "received", "pathway": "nrm", "is_child": False, "region": "london"},
    "referral.allocated": {"status": "allocated", "provider_id": "charity-a", "case_id": "case-1"},
    "referral.transferred": {"status": "allocated", "provider_id": "charity-b", "from_provider_id": "charity-a"},
}
EARLIER, LATER, LATEST = "2026-12-01T09:00:00+00:00", "2026-12-01T10:00:00+00:00", "2026-12-01T11:00:00+00:00"


@pytest.fixture
def uow() -> FakeNotificationsUnitOfWork:
    return FakeNotificationsUnitOfWork()


@pytest.fixture
def handle(uow) -> EventHandlers:
    return EventHandlers("notifications", uow, subscriptions(), trusted={"guest"})


def subscribed(uow, org: str, events: list[str], *, deleted: bool = False) -> Subscription:
    created = utcnow() + timedelta(seconds=len(uow.subscriptions.rows))  # created one after another
    subscription = Subscription(
        id=str(uuid.uuid4()),
        org_id=org,
        url=f"https://hooks.{org}.example/in",
        events=events,
        secret="whsec_" + "QUFB" * 8,
        created_at=created,
        deleted_at=created if deleted else None,
    )
    uow.subscriptions.add(subscription)
    return subscription


def intake_event(event_type: str, referral_id: str, *, org: str = REFERRER, time: str = LATER, **data) -> Event:
    fields = INTAKE_FIELDS[event_type]
    news = payload(
        event_type, referral_id=referral_id, org_id=org, external_reference="REF-SYN-1", **{**fields, **data}
    )
    return arriving(news, time=time)


def case_opened(referral_id: str, provider_id: str = "charity-a") -> Event:
    """As it arrives from the provider's own broker user."""
    opened = payload("case.opened", referral_id=referral_id, case_id=str(uuid.uuid4()), provider_id=provider_id)
    return arriving(opened, publisher=f"advocacy-{provider_id}")


def test_intakes_news_queues_one_pending_delivery_per_matching_subscription_of_the_referring_org(uow, handle):
    first = subscribed(uow, REFERRER, ["referral.received", "case.opened"])
    second = subscribed(uow, REFERRER, ["referral.received"])
    subscribed(uow, REFERRER, ["case.opened"])  # another event type
    subscribed(uow, REFERRER, ["referral.received"], deleted=True)
    subscribed(uow, OTHER_AGENCY, ["referral.received"])  # another org

    event = intake_event("referral.received", str(uuid.uuid4()))
    handle(event)

    queued = uow.delivered_to(event.id)
    assert list(queued) == [first.id, second.id]  # oldest subscription first
    assert {(d.org_id, d.status, d.attempts, d.event_type) for d in queued.values()} == {
        (REFERRER, "pending", 0, "referral.received")
    }
    assert queued[first.id].webhook_id == f"msg_{event.id}_{first.id}"
    assert json.loads(queued[first.id].payload) == {
        "type": "referral.received",
        "timestamp": LATER,
        "data": {
            "referral_id": event.subject,
            "external_reference": "REF-SYN-1",
            "status": "received",
            "pathway": "nrm",
            "is_child": False,  # and no region: only whitelisted keys leave the platform
        },
    }
    assert uow.commits == 1


def test_news_nobody_subscribes_to_queues_nothing_but_the_referral_is_remembered(uow, handle):
    subscribed(uow, OTHER_AGENCY, ["referral.received"])
    referral_id = str(uuid.uuid4())
    handle(intake_event("referral.received", referral_id))
    assert uow.deliveries.rows == []
    owner = uow.owners.get(referral_id)
    assert owner is not None and (owner.org_id, owner.external_reference) == (REFERRER, "REF-SYN-1")


def test_a_redelivered_event_is_a_no_op(uow, handle):
    subscribed(uow, REFERRER, ["referral.received"])
    event = intake_event("referral.received", str(uuid.uuid4()))
    handle(event)
    handle(event)  # the broker delivers it again: the inbox has it
    assert len(uow.deliveries.rows) == 1
    assert uow.commits == 2 and uow.rollbacks == 0


def test_a_providers_event_about_a_referral_nobody_holds_yet_is_retried(uow, handle):
    subscribed(uow, REFERRER, ["case.opened"])
    referral_id = str(uuid.uuid4())
    with pytest.raises(UnknownReferral):
        handle(case_opened(referral_id))  # intake's events are still on their way
    handle(intake_event("referral.received", referral_id))
    with pytest.raises(UnknownReferral):
        handle(case_opened(referral_id))  # known, but not allocated to anyone yet
    assert uow.deliveries.rows == []
    assert uow.rollbacks == 2


def test_a_providers_event_is_taken_only_from_the_provider_holding_the_referral(uow, handle):
    subscription = subscribed(uow, REFERRER, ["case.opened"])
    referral_id = str(uuid.uuid4())
    handle(intake_event("referral.allocated", referral_id, provider_id="charity-a"))

    with pytest.raises(PermanentError, match="does not hold"):
        handle(case_opened(referral_id, provider_id="charity-b"))  # its own broker user, another's referral
    assert uow.deliveries.rows == []

    opened = case_opened(referral_id, provider_id="charity-a")
    handle(opened)
    [delivery] = uow.delivered_to(opened.id).values()
    assert (delivery.subscription_id, delivery.org_id) == (subscription.id, REFERRER)
    assert json.loads(delivery.payload)["data"]["external_reference"] == "REF-SYN-1"


def test_an_event_naming_another_org_for_a_known_referral_is_parked(uow, handle):
    subscribed(uow, OTHER_AGENCY, ["referral.allocated"])
    referral_id = str(uuid.uuid4())
    handle(intake_event("referral.received", referral_id))
    with pytest.raises(PermanentError, match="contradicts"):
        handle(intake_event("referral.allocated", referral_id, org=OTHER_AGENCY))
    owner = uow.owners.get(referral_id)
    assert owner is not None and (owner.org_id, owner.provider_id) == (REFERRER, None)
    assert uow.deliveries.rows == []


def test_a_late_older_allocation_never_wins(uow, handle):
    referral_id = str(uuid.uuid4())
    handle(intake_event("referral.transferred", referral_id, provider_id="charity-b", time=LATER))
    handle(intake_event("referral.allocated", referral_id, provider_id="charity-a", time=EARLIER))  # arrives late

    owner = uow.owners.get(referral_id)
    assert owner is not None and owner.provider_id == "charity-b"
    with pytest.raises(PermanentError, match="does not hold"):
        handle(case_opened(referral_id, provider_id="charity-a"))

    handle(intake_event("referral.transferred", referral_id, provider_id="charity-a", time=LATEST))  # newer: wins
    assert owner.provider_id == "charity-a"
    handle(case_opened(referral_id, provider_id="charity-a"))


def test_a_planned_transition_also_reaches_the_receiving_agency_without_the_referrers_reference(uow, handle):
    referrer = subscribed(uow, REFERRER, ["transition.planned"])
    receiver = subscribed(uow, RECEIVER, ["transition.planned"])
    subscribed(uow, OTHER_AGENCY, ["transition.planned"])  # named nowhere: hears nothing
    referral_id = str(uuid.uuid4())
    handle(intake_event("referral.allocated", referral_id, provider_id="charity-a"))
    planned = payload(
        "transition.planned",
        referral_id=referral_id,
        case_id=str(uuid.uuid4()),
        provider_id="charity-a",
        transition_id=str(uuid.uuid4()),
        kind="relocation",
        status="planned",
        planned_for="2026-05-01",
        date_basis="exact",
        receiving_agency=RECEIVER,
        receiving_provider_id=None,
    )
    event = arriving(planned, publisher="advocacy-charity-a")
    handle(event)

    queued = uow.delivered_to(event.id)
    assert set(queued) == {referrer.id, receiver.id}
    sent = {d.org_id: json.loads(d.payload)["data"] for d in queued.values()}
    assert sent[REFERRER]["external_reference"] == "REF-SYN-1"
    assert sent[RECEIVER]["external_reference"] is None
    assert sent[RECEIVER] | {"external_reference": "REF-SYN-1"} == sent[REFERRER]
