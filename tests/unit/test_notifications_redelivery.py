"""Redelivering one finished delivery, or every failed one of a subscription since a time, through a fake unit
of work (no database)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.notifications.deliveries import (
    DeliveryNotFinished,
    NoSuchDelivery,
    SubscriptionStopped,
    redeliver,
    redeliver_failed,
)
from services.notifications.egress import UrlGuard
from services.notifications.models import Delivery
from services.notifications.subscriptions import NoSuchSubscription, subscribe, unsubscribe
from shared.clock import utcnow
from support.fake_notifications import FakeNotificationsUnitOfWork

AGENCY, OTHER_AGENCY = "agency-synthetic-a", "agency-synthetic-b"
PUBLIC = UrlGuard(allow_private=False, resolve=lambda host, port: ["93.184.216.34"])


@pytest.fixture
def uow() -> FakeNotificationsUnitOfWork:
    return FakeNotificationsUnitOfWork()


def subscription_of(uow, org_id: str = AGENCY):
    return subscribe(uow, PUBLIC, org_id=org_id, url="https://hooks.example/in", events=["referral.received"])


def sent(uow, subscription, status: str, *, ago: timedelta = timedelta(0)) -> Delivery:
    """A delivery that has run its course: `failed` after ten attempts, or `delivered` at the first."""
    created = utcnow() - ago
    event_id = str(uuid.uuid4())
    delivery = Delivery(
        id=str(uuid.uuid4()),
        webhook_id=f"msg_{event_id}_{subscription.id}",
        subscription_id=subscription.id,
        org_id=subscription.org_id,
        event_type="referral.received",
        event_id=event_id,
        referral_id=str(uuid.uuid4()),
        payload='{"type":"referral.received"}',
        status=status,
        attempts={"failed": 10, "delivered": 1}.get(status, 0),
        last_status_code=503 if status == "failed" else None,
        next_attempt_at=created if status == "pending" else None,
        created_at=created,
        delivered_at=created if status == "delivered" else None,
    )
    uow.deliveries.add_pending([delivery])
    return delivery


def test_a_failed_delivery_is_queued_again_as_it_was_with_the_whole_schedule_ahead(uow):
    subscription = subscription_of(uow)
    failed = sent(uow, subscription, "failed")
    webhook_id, payload = failed.webhook_id, failed.payload

    again = redeliver(uow, org_id=AGENCY, delivery_id=failed.id)

    assert again is failed
    assert (again.status, again.attempts) == ("pending", 0)
    assert again.next_attempt_at <= utcnow()
    assert (again.webhook_id, again.payload) == (webhook_id, payload)  # the receiver can drop a duplicate
    assert len(uow.deliveries.rows) == 1


def test_a_delivered_one_may_be_redelivered_too(uow):
    delivered = sent(uow, subscription_of(uow), "delivered")
    redeliver(uow, org_id=AGENCY, delivery_id=delivered.id)
    assert (delivered.status, delivered.delivered_at) == ("pending", None)


def test_a_pending_delivery_is_not_finished_and_stays_as_it_is(uow):
    pending = sent(uow, subscription_of(uow), "pending")
    pending.attempts = 3
    with pytest.raises(DeliveryNotFinished):
        redeliver(uow, org_id=AGENCY, delivery_id=pending.id)
    assert (pending.status, pending.attempts) == ("pending", 3)
    assert uow.rollbacks == 1


def test_another_orgs_delivery_or_an_unknown_one_is_no_such_delivery(uow):
    theirs = sent(uow, subscription_of(uow, OTHER_AGENCY), "failed")
    with pytest.raises(NoSuchDelivery):
        redeliver(uow, org_id=AGENCY, delivery_id=theirs.id)
    with pytest.raises(NoSuchDelivery):
        redeliver(uow, org_id=AGENCY, delivery_id=str(uuid.uuid4()))
    assert theirs.status == "failed"


def test_a_deleted_subscriptions_delivery_is_not_sent_again(uow):
    subscription = subscription_of(uow)
    failed = sent(uow, subscription, "failed")
    unsubscribe(uow, org_id=AGENCY, subscription_id=subscription.id)
    with pytest.raises(SubscriptionStopped):
        redeliver(uow, org_id=AGENCY, delivery_id=failed.id)
    assert failed.status == "failed"


def test_every_failed_delivery_of_the_subscription_since_a_time_is_queued_again(uow):
    subscription, other = subscription_of(uow), subscription_of(uow)
    recent = [sent(uow, subscription, "failed", ago=timedelta(hours=h)) for h in (1, 30, 70)]
    older = sent(uow, subscription, "failed", ago=timedelta(days=5))
    delivered = sent(uow, subscription, "delivered", ago=timedelta(hours=2))
    elsewhere = sent(uow, other, "failed", ago=timedelta(hours=1))

    since = utcnow() - timedelta(days=3)
    queued = redeliver_failed(uow, org_id=AGENCY, subscription_id=subscription.id, since=since)

    assert queued == 3
    assert [(d.status, d.attempts) for d in recent] == [("pending", 0)] * 3
    assert (older.status, delivered.status, elsewhere.status) == ("failed", "delivered", "failed")
    assert redeliver_failed(uow, org_id=AGENCY, subscription_id=subscription.id, since=since) == 0  # none failed now


def test_redelivering_another_orgs_or_a_stopped_subscription_is_no_such_subscription(uow):
    theirs = subscription_of(uow, OTHER_AGENCY)
    failed = sent(uow, theirs, "failed")
    with pytest.raises(NoSuchSubscription):
        redeliver_failed(uow, org_id=AGENCY, subscription_id=theirs.id, since=utcnow() - timedelta(days=1))
    unsubscribe(uow, org_id=OTHER_AGENCY, subscription_id=theirs.id)
    with pytest.raises(NoSuchSubscription):
        redeliver_failed(uow, org_id=OTHER_AGENCY, subscription_id=theirs.id, since=utcnow() - timedelta(days=1))
    assert failed.status == "failed"
