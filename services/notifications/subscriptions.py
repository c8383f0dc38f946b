"""Use cases of an org's webhook subscriptions: subscribe a URL to event types, and stop a subscription.

Each takes a unit of work and the org acting; the API turns JSON into a call and the refusals below into
statuses (api.REFUSALS). Listing is a read and stays in the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from services.notifications.domain import new_secret
from services.notifications.egress import UrlGuard
from services.notifications.models import Subscription
from services.notifications.uow import NotificationsUnitOfWork
from shared.clock import utcnow


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


def unsubscribe(uow: NotificationsUnitOfWork, *, org_id: str, subscription_id: str) -> None:
    """Stop the org's subscription: its deliveries stay visible, the pending ones are failed and never sent."""
    with uow:
        subscription = uow.subscriptions.get(subscription_id)
        if subscription is None or subscription.org_id != org_id or subscription.deleted_at is not None:
            raise NoSuchSubscription(subscription_id)
        subscription.deleted_at = utcnow()
        uow.deliveries.fail_pending(subscription.id, "subscription deleted")
