"""Use cases of an org's deliveries: send again one that has finished, or every one of a subscription that
failed since a time (an agency back from an outage longer than the retry schedule).

A redelivery sends the same bytes with the same `webhook-id`, so a receiver that already processed it can
drop it (Standard Webhooks: the id is "the same when a message is retried").
"""

from __future__ import annotations

from datetime import datetime

from services.notifications.models import Delivery
from services.notifications.subscriptions import live_subscription
from services.notifications.uow import NotificationsUnitOfWork
from shared.clock import utcnow


class NoSuchDelivery(Exception):
    """No delivery of the org by that id (another org's is "no such" too)."""


class DeliveryNotFinished(Exception):
    """The delivery is still pending: its retry schedule will send it."""


class SubscriptionStopped(Exception):
    """The delivery's subscription was deleted: nothing is sent to it any more."""


def redeliver(uow: NotificationsUnitOfWork, *, org_id: str, delivery_id: str) -> Delivery:
    """Queue the org's delivery again, failed or delivered (a receiver may have lost what it processed), with
    the whole retry schedule ahead of it."""
    with uow:
        delivery = uow.deliveries.get(delivery_id)
        if delivery is None or delivery.org_id != org_id:
            raise NoSuchDelivery(delivery_id)
        if not delivery.finished:
            raise DeliveryNotFinished(delivery_id)
        subscription = uow.subscriptions.get(delivery.subscription_id)
        if subscription is None or subscription.deleted_at is not None:
            raise SubscriptionStopped(delivery.subscription_id)
        delivery.requeue(utcnow())
    return delivery


def redeliver_failed(uow: NotificationsUnitOfWork, *, org_id: str, subscription_id: str, since: datetime) -> int:
    """Queue again every failed delivery of the org's subscription created at or after `since`; how many."""
    with uow:
        subscription = live_subscription(uow, org_id, subscription_id)
        return uow.deliveries.requeue_failed(subscription.id, since, utcnow())
