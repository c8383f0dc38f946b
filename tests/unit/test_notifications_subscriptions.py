"""Subscribing a webhook URL, stopping a subscription, pinging it and rotating its secret, through a fake unit of
work (no database)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest

from services.notifications.domain import UnsafeWebhookUrl, secret_problem, signing_secrets
from services.notifications.egress import UrlGuard
from services.notifications.models import Delivery
from services.notifications.subscriptions import NoSuchSubscription, ping, rotate_secret, subscribe, unsubscribe
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


# --- ping -------------------------------------------------------------------------------------------------


def test_a_ping_queues_a_signed_test_webhook_naming_only_the_subscription(uow):
    subscription = subscribe(uow, PUBLIC, org_id=AGENCY, url="https://hooks.agency-a.example/in", events=["x"])

    delivery = ping(uow, org_id=AGENCY, subscription_id=subscription.id)

    assert uow.deliveries.rows == [delivery]
    assert (delivery.event_type, delivery.status, delivery.attempts) == ("webhook.ping", "pending", 0)
    assert (delivery.subscription_id, delivery.org_id, delivery.referral_id) == (subscription.id, AGENCY, None)
    assert delivery.webhook_id == f"msg_{delivery.event_id}_{subscription.id}"
    body = json.loads(delivery.payload)
    assert body["type"] == "webhook.ping" and body["data"] == {"subscription_id": subscription.id}
    assert delivery.next_attempt_at <= utcnow()
    again = ping(uow, org_id=AGENCY, subscription_id=subscription.id)
    assert again.webhook_id != delivery.webhook_id  # each ping is a webhook of its own
    assert uow.commits == 3


def test_another_orgs_or_a_stopped_subscription_cannot_be_pinged(uow):
    theirs = subscribe(uow, PUBLIC, org_id=OTHER_AGENCY, url="https://hooks.b.example/in", events=["x"])
    with pytest.raises(NoSuchSubscription):
        ping(uow, org_id=AGENCY, subscription_id=theirs.id)
    unsubscribe(uow, org_id=OTHER_AGENCY, subscription_id=theirs.id)
    with pytest.raises(NoSuchSubscription):
        ping(uow, org_id=OTHER_AGENCY, subscription_id=theirs.id)
    assert uow.deliveries.rows == []


# --- secret rotation -------------------------------------------------------------------------------------


def test_rotating_a_secret_keeps_the_old_one_signing_for_the_overlap(uow):
    subscription = subscribe(uow, PUBLIC, org_id=AGENCY, url="https://hooks.agency-a.example/in", events=["x"])
    first = subscription.secret
    before = utcnow()

    rotated = rotate_secret(uow, org_id=AGENCY, subscription_id=subscription.id, overlap=timedelta(hours=24))

    assert rotated is subscription
    assert rotated.secret != first and secret_problem(rotated.secret) is None
    assert rotated.previous_secret == first
    assert timedelta(hours=24) <= rotated.previous_secret_expires_at - before <= timedelta(hours=24, seconds=5)
    assert signing_secrets(rotated.secret, rotated.previous_secret, rotated.previous_secret_expires_at, utcnow()) == (
        rotated.secret,
        first,
    )
    assert uow.commits == 2


def test_a_second_rotation_within_the_overlap_drops_the_oldest_secret(uow):
    subscription = subscribe(uow, PUBLIC, org_id=AGENCY, url="https://hooks.agency-a.example/in", events=["x"])
    first = subscription.secret
    rotate_secret(uow, org_id=AGENCY, subscription_id=subscription.id, overlap=timedelta(hours=24))
    second = subscription.secret
    rotate_secret(uow, org_id=AGENCY, subscription_id=subscription.id, overlap=timedelta(hours=24))
    assert subscription.previous_secret == second
    assert first not in (subscription.secret, subscription.previous_secret)


def test_another_orgs_subscription_keeps_its_secret(uow):
    theirs = subscribe(uow, PUBLIC, org_id=OTHER_AGENCY, url="https://hooks.b.example/in", events=["x"])
    secret = theirs.secret
    with pytest.raises(NoSuchSubscription):
        rotate_secret(uow, org_id=AGENCY, subscription_id=theirs.id, overlap=timedelta(hours=24))
    assert (theirs.secret, theirs.previous_secret) == (secret, None)
