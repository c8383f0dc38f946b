"""Use cases of an org's webhook subscriptions: subscribe a URL to event types, stop a subscription, send it a
test webhook (ping), and rotate its signing secret.

Each takes a unit of work and the org acting; the API turns JSON into a call and the refusals below into
statuses (api.REFUSALS). Listing is a read and stays in the API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import timedelta

from services.notifications.domain import PING, new_secret, ping_body, webhook_id
from services.notifications.egress import UrlGuard
from services.notifications.models import PENDING, Delivery, Subscription
from services.notifications.uow import NotificationsUnitOfWork
from shared.clock import utcnow
from shared.telemetry import carrier_from_current


class NoSuchSubscription(Exception):
    """No live subscription of the org by that id. Another org's is "no such" too: a refusal that said
    otherwise would confirm it exists."""


def subscribe(
    uow: NotificationsUnitOfWork,
    guard: UrlGuard,
    *,
    org_id: str,
    url: str,
    events: Iterable[str],
    secret: str | None = None,
) -> Subscription:
    """The org's new subscription, with its signing secret (generated when none is given). UnsafeWebhookUrl
    when webhooks may not go to `url` (checked again before each delivery: DNS may change)."""
    guard.check(url)
    subscription = Subscription(
        id=str(uuid.uuid4()),
        org_id=org_id,
        url=url,
        events=list(dict.fromkeys(events)),
        secret=secret or new_secret(),
        created_at=utcnow(),
    )
    with uow:
        uow.subscriptions.add(subscription)
    return subscription


def live_subscription(uow: NotificationsUnitOfWork, org_id: str, subscription_id: str) -> Subscription:
    """The org's subscription by that id, not stopped; else NoSuchSubscription. Inside the caller's unit."""
    subscription = uow.subscriptions.get(subscription_id)
    if subscription is None or subscription.org_id != org_id or subscription.deleted_at is not None:
        raise NoSuchSubscription(subscription_id)
    return subscription


def unsubscribe(uow: NotificationsUnitOfWork, *, org_id: str, subscription_id: str) -> None:
    """Stop the org's subscription: its deliveries stay visible, the pending ones are failed and never sent."""
    with uow:
        subscription = live_subscription(uow, org_id, subscription_id)
        subscription.deleted_at = utcnow()
        uow.deliveries.fail_pending(subscription.id, "subscription deleted")


def ping(uow: NotificationsUnitOfWork, *, org_id: str, subscription_id: str) -> Delivery:
    """Queue a `webhook.ping` to the org's subscription, whatever event types it takes: the dispatcher signs and
    sends it like any webhook, so an agency can check its endpoint and its verification end to end."""
    now = utcnow()
    event_id = str(uuid.uuid4())  # no event caused it: its own id, so each ping is a webhook of its own
    carrier = carrier_from_current()  # the request's trace continues in the ping, as an event's does
    with uow:
        subscription = live_subscription(uow, org_id, subscription_id)
        delivery = Delivery(
            id=str(uuid.uuid4()),
            webhook_id=webhook_id(event_id, subscription.id),
            subscription_id=subscription.id,
            org_id=org_id,
            event_type=PING,
            event_id=event_id,
            referral_id=None,
            payload=json.dumps(ping_body(subscription.id, now.isoformat()), separators=(",", ":")),
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            traceparent=carrier.get("traceparent"),
            tracestate=carrier.get("tracestate"),
        )
        uow.deliveries.add_pending([delivery])
    return delivery


def rotate_secret(
    uow: NotificationsUnitOfWork, *, org_id: str, subscription_id: str, overlap: timedelta
) -> Subscription:
    """A new signing secret for the org's subscription, returned only here. For `overlap` webhooks carry a
    signature by the previous secret too, so the agency can deploy the new one without losing a webhook."""
    with uow:
        subscription = live_subscription(uow, org_id, subscription_id)
        subscription.rotate(new_secret(), utcnow(), overlap)
    return subscription
