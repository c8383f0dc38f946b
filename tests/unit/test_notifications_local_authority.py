"""A child's local authority hears of the child's referral (issue 13 item 4): notifications queues its webhooks
for the org an event names as `local_authority_org_id`, for the events it hears of only, with no personal data
and without the referrer's reference. Over the fake unit of work; no database."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from services.notifications.handlers import subscriptions
from services.notifications.models import Subscription
from shared.clock import utcnow
from shared.inbox import EventHandlers
from shared.messaging.envelope import Event
from support.events import arriving, payload
from support.fake_notifications import FakeNotificationsUnitOfWork

pytestmark = pytest.mark.unit

REFERRER, LOCAL_AUTHORITY, OTHER_COUNCIL = "police-synthetic", "council-cs-synthetic", "council-cs-elsewhere"
EVERYTHING = [
    "referral.received",
    "referral.allocated",
    "referral.escalated",
    "transition.planned",
    "case.opened",
    "case.contact_overdue",
    "case.risk_raised",
]


@pytest.fixture
def uow() -> FakeNotificationsUnitOfWork:
    return FakeNotificationsUnitOfWork()


@pytest.fixture
def handle(uow) -> EventHandlers:
    return EventHandlers("notifications", uow, subscriptions(), trusted={"guest"})


def subscribed(uow, org: str) -> Subscription:
    subscription = Subscription(
        id=str(uuid.uuid4()),
        org_id=org,
        url=f"https://hooks.{org}.example/in",
        events=EVERYTHING,
        secret="whsec_" + "QUFB" * 8,
        created_at=utcnow() + timedelta(seconds=len(uow.subscriptions.rows)),
    )
    uow.subscriptions.add(subscription)
    return subscription


def news(event_type: str, referral_id: str, local_authority: str | None, **data) -> Event:
    return arriving(
        payload(
            event_type,
            referral_id=referral_id,
            org_id=REFERRER,
            external_reference="REF-SYN-LA",
            local_authority_org_id=local_authority,
            **data,
        )
    )


def received(referral_id: str, local_authority: str | None) -> Event:
    child = local_authority is not None
    return news(
        "referral.received",
        referral_id,
        local_authority,
        status="received",
        pathway="nrm",
        is_child=child,
        region="london",
    )


def turning(referral_id: str, kind: str, local_authority: str | None = LOCAL_AUTHORITY) -> Event:
    planned = payload(
        "transition.planned",
        referral_id=referral_id,
        case_id="case-la-1",
        provider_id="charity-a",
        local_authority_org_id=local_authority,
        transition_id=str(uuid.uuid4()),
        kind=kind,
        status="planned",
        planned_for="2027-03",
        date_basis="exact",
    )
    return arriving(planned, publisher="advocacy-charity-a")


def orgs_told(uow: FakeNotificationsUnitOfWork, event: Event) -> set[str]:
    return {d.org_id for d in uow.delivered_to(event.id).values()}


def test_a_childs_referral_and_allocation_reach_its_local_authority_with_ids_and_codes_only(uow, handle):
    subscribed(uow, REFERRER)
    subscribed(uow, LOCAL_AUTHORITY)
    subscribed(uow, OTHER_COUNCIL)
    referral_id = str(uuid.uuid4())
    first = received(referral_id, LOCAL_AUTHORITY)
    handle(first)
    allocated = news(
        "referral.allocated",
        referral_id,
        LOCAL_AUTHORITY,
        status="allocated",
        provider_id="charity-a",
        case_id="case-la-1",
    )
    handle(allocated)
    for event in (first, allocated):
        assert orgs_told(uow, event) == {REFERRER, LOCAL_AUTHORITY}
        sent = {d.org_id: json.loads(d.payload) for d in uow.delivered_to(event.id).values()}
        told = sent[LOCAL_AUTHORITY]["data"]
        assert told["external_reference"] is None and told["referral_id"] == referral_id
        assert told | {"external_reference": "REF-SYN-LA"} == sent[REFERRER]["data"]
        assert set(told) <= {
            "referral_id",
            "external_reference",
            "status",
            "pathway",
            "is_child",
            "provider_id",
            "case_id",
        }


def test_the_local_authority_hears_of_turning_18_but_not_of_other_transitions_or_escalations(uow, handle):
    subscribed(uow, REFERRER)
    subscribed(uow, LOCAL_AUTHORITY)
    referral_id = str(uuid.uuid4())
    handle(received(referral_id, LOCAL_AUTHORITY))
    escalated = news("referral.escalated", referral_id, LOCAL_AUTHORITY, status="escalated", reason="none_accepted")
    handle(escalated)
    handle(
        news(
            "referral.allocated",
            referral_id,
            LOCAL_AUTHORITY,
            status="allocated",
            provider_id="charity-a",
            case_id="case-la-1",
        )
    )
    eighteen, relocation = turning(referral_id, "turning_18"), turning(referral_id, "relocation")
    handle(eighteen)
    handle(relocation)
    assert orgs_told(uow, escalated) == {REFERRER}
    assert orgs_told(uow, eighteen) == {REFERRER, LOCAL_AUTHORITY}
    assert orgs_told(uow, relocation) == {REFERRER}


def test_a_childs_local_authority_hears_that_nobody_has_reached_the_child_and_of_a_high_risk(uow, handle):
    subscribed(uow, REFERRER)
    subscribed(uow, LOCAL_AUTHORITY)
    subscribed(uow, OTHER_COUNCIL)
    referral_id = str(uuid.uuid4())
    handle(received(referral_id, LOCAL_AUTHORITY))
    handle(
        news(
            "referral.allocated",
            referral_id,
            LOCAL_AUTHORITY,
            status="allocated",
            provider_id="charity-a",
            case_id="case-la-1",
        )
    )
    case = {"referral_id": referral_id, "case_id": "case-la-1", "provider_id": "charity-a"}
    overdue = payload(
        "case.contact_overdue",
        **case,
        local_authority_org_id=LOCAL_AUTHORITY,
        is_child=True,
        counted_from="2026-11-20",
        due_on="2026-11-27",
        policy_version="no_contact_child@*:2009-04-01",
    )
    risk = payload(
        "case.risk_raised",
        **case,
        local_authority_org_id=LOCAL_AUTHORITY,
        risk_id=str(uuid.uuid4()),
        kind="missing",
        level="high",
    )
    for event in (arriving(overdue, publisher="advocacy-charity-a"), arriving(risk, publisher="advocacy-charity-a")):
        handle(event)
        assert orgs_told(uow, event) == {REFERRER, LOCAL_AUTHORITY}
        sent = {d.org_id: json.loads(d.payload)["data"] for d in uow.delivered_to(event.id).values()}
        told = sent[LOCAL_AUTHORITY]
        assert told["referral_id"] == referral_id and told["external_reference"] is None, told
        ids_and_codes = {"referral_id", "external_reference", "status", "case_id", "provider_id", "is_child"}
        assert set(told) <= ids_and_codes | {"counted_from", "due_on", "risk_id", "kind", "level"}, told


def test_an_adults_referral_tells_no_local_authority(uow, handle):
    subscribed(uow, REFERRER)
    subscribed(uow, LOCAL_AUTHORITY)
    adult = received(str(uuid.uuid4()), None)
    handle(adult)
    assert orgs_told(uow, adult) == {REFERRER}


def test_a_local_authority_that_referred_the_child_itself_gets_one_webhook_with_its_reference(uow, handle):
    subscription = subscribed(uow, LOCAL_AUTHORITY)
    event = arriving(
        payload(
            "referral.received",
            referral_id=str(uuid.uuid4()),
            org_id=LOCAL_AUTHORITY,
            external_reference="LA-1",
            status="received",
            pathway="nrm",
            is_child=True,
            region="london",
            local_authority_org_id=LOCAL_AUTHORITY,
        )
    )
    handle(event)
    (delivery,) = uow.delivered_to(event.id).values()
    assert delivery.subscription_id == subscription.id
    assert json.loads(delivery.payload)["data"]["external_reference"] == "LA-1"
