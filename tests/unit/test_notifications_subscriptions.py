"""Subscribing a webhook URL and stopping a subscription, through a fake unit of work (no database)."""

from __future__ import annotations

import base64
import uuid

import pytest

from services.notifications.domain import UnsafeWebhookUrl
from services.notifications.egress import UrlGuard
from services.notifications.models import Delivery
from services.notifications.subscriptions import NoSuchSubscription, subscribe, unsubscribe
from shared.clock import utcnow
from support.fake_notifications import FakeNotificationsUnitOfWork

AGENCY, OTHER_AGENCY = "agency-synthetic-a", "agency-synthetic-b"
PUBLIC = UrlGuard(allow_private=False, resolve=lambda host, port: ["93.184.216.34"])
REBOUND = UrlGuard(allow_private=False, resolve=lambda host, port: ["10.0.0.7"])


@pytest.fixture
def uow() -> FakeNotificationsUnitOfWork:
    return FakeNotificationsUnitOfWork()


def queued(uow, subscription_id: str, status: str = "pending") -> Delivery:
    now = utcnow()
    event_id = str(uuid.uuid4())
    delivery = Delivery(
        id=str(uuid.uuid4()),
        webhook_id=f"msg_{event_id}_{subscription_id}",
        subscription_id=subscription_id,
        org_id=AGENCY,
        event_type="referral.received",
        event_id=event_id,
        referral_id=str(uuid.uuid4()),
        payload="{}",
        status=status,
        attempts=0,
        next_attempt_at=now if status == "pending" else None,
        created_at=now,
    )
    uow.deliveries.add_pending([delivery])
    return delivery


def test_subscribing_stores_the_orgs_subscription_with_a_generated_secret(uow):
    events = ["referral.received", "case.opened", "referral.received"]
    subscription = subscribe(uow, PUBLIC, org_id=AGENCY, url="https://hooks.agency-a.example/in", events=events)

    assert uow.subscriptions.get(subscription.id) is subscription
    assert (subscription.org_id, subscription.url) == (AGENCY, "https://hooks.agency-a.example/in")
    assert subscription.events == ["referral.received", "case.opened"]  # once each, in the order given
    assert subscription.secret.startswith("whsec_")
    assert len(base64.b64decode(subscription.secret[6:], validate=True)) == 32
    assert subscription.deleted_at is None
    assert uow.commits == 1
    assert uow.subscriptions.matching([AGENCY], "case.opened") == [subscription]


def test_a_given_secret_is_kept(uow):
    secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    subscription = subscribe(uow, PUBLIC, org_id=AGENCY, url="https://hooks.example/in", events=["x"], secret=secret)
    assert subscription.secret == secret


def test_a_url_resolving_to_a_private_address_is_refused_and_nothing_is_stored(uow):
    with pytest.raises(UnsafeWebhookUrl, match="private"):
        subscribe(uow, REBOUND, org_id=AGENCY, url="https://hooks.agency-a.example/in", events=["case.opened"])
    assert uow.subscriptions.rows == {}
    assert uow.commits == 0


def test_unsubscribing_stops_the_subscription_and_fails_only_its_pending_deliveries(uow):
    url = "https://hooks.agency-a.example/in"
    stopped = subscribe(uow, PUBLIC, org_id=AGENCY, url=url, events=["referral.received"])
    kept = subscribe(uow, PUBLIC, org_id=AGENCY, url=url, events=["referral.received"])
    pending, sent, elsewhere = queued(uow, stopped.id), queued(uow, stopped.id, "delivered"), queued(uow, kept.id)

    unsubscribe(uow, org_id=AGENCY, subscription_id=stopped.id)

    assert stopped.deleted_at is not None
    assert (pending.status, pending.next_attempt_at, pending.last_error) == ("failed", None, "subscription deleted")
    assert sent.status == "delivered" and sent.last_error is None
    assert elsewhere.status == "pending"
    assert uow.subscriptions.matching([AGENCY], "referral.received") == [kept]
    assert uow.commits == 3


def test_another_orgs_subscription_an_unknown_one_and_a_stopped_one_are_no_such_subscription(uow):
    theirs = subscribe(uow, PUBLIC, org_id=OTHER_AGENCY, url="https://hooks.b.example/in", events=["case.opened"])
    pending = queued(uow, theirs.id)
    with pytest.raises(NoSuchSubscription):
        unsubscribe(uow, org_id=AGENCY, subscription_id=theirs.id)
    assert theirs.deleted_at is None and pending.status == "pending"

    with pytest.raises(NoSuchSubscription):
        unsubscribe(uow, org_id=AGENCY, subscription_id=str(uuid.uuid4()))
    unsubscribe(uow, org_id=OTHER_AGENCY, subscription_id=theirs.id)
    with pytest.raises(NoSuchSubscription):
        unsubscribe(uow, org_id=OTHER_AGENCY, subscription_id=theirs.id)  # already stopped
    assert uow.rollbacks == 3
