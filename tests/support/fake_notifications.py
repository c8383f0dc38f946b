"""notifications' unit of work in memory, for the unit tests of its handlers and use cases: no database.

The records are the service's own model objects, kept in dicts; each repository answers as its SQL one does
(services/notifications/repositories.py): first writer wins for an owner, one delivery per (subscription,
event), deleted subscriptions match nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from services.notifications.models import FAILED, PENDING, Delivery, ReferralOwner, Subscription
from services.notifications.repositories import (
    ERASED_BODY,
    Deliveries,
    ReferralOwners,
    StoredResponses,
    WebhookSubscriptions,
)
from services.notifications.uow import NotificationsUnitOfWork
from shared.clock import utcnow
from support.uow import FakeUnitOfWork


class FakeReferralOwners(ReferralOwners):
    def __init__(self) -> None:
        self.rows: dict[str, ReferralOwner] = {}

    def get(self, referral_id: str) -> ReferralOwner | None:
        return self.rows.get(referral_id)

    def remember(self, referral_id: str, org_id: str, external_reference: str | None) -> ReferralOwner:
        return self.rows.setdefault(
            referral_id,
            ReferralOwner(
                referral_id=referral_id, org_id=org_id, external_reference=external_reference, first_seen_at=utcnow()
            ),
        )

    def forget_reference(self, referral_id: str) -> bool:
        owner = self.rows.get(referral_id)
        if owner is not None:
            owner.external_reference = None
        return owner is not None


class FakeStoredResponses(StoredResponses):
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}  # stored response bodies, by key id

    def forget_naming(self, text: str) -> None:
        self.bodies = {k: b for k, b in self.bodies.items() if text.encode() not in b}


class FakeWebhookSubscriptions(WebhookSubscriptions):
    def __init__(self) -> None:
        self.rows: dict[str, Subscription] = {}

    def add(self, subscription: Subscription) -> None:
        self.rows[subscription.id] = subscription

    def get(self, subscription_id: str) -> Subscription | None:
        return self.rows.get(subscription_id)

    def matching(self, orgs: Collection[str], event_type: str) -> list[Subscription]:
        live = [s for s in self.rows.values() if s.org_id in orgs and s.deleted_at is None and event_type in s.events]
        return sorted(live, key=lambda s: s.created_at)


class FakeDeliveries(Deliveries):
    def __init__(self) -> None:
        self.rows: list[Delivery] = []

    def add_pending(self, deliveries: Sequence[Delivery]) -> None:
        queued = {(d.subscription_id, d.event_id) for d in self.rows}
        self.rows += [d for d in deliveries if (d.subscription_id, d.event_id) not in queued]

    def fail_pending(self, subscription_id: str, reason: str) -> None:
        for delivery in self.rows:
            if delivery.subscription_id == subscription_id and delivery.status == PENDING:
                delivery.status, delivery.next_attempt_at, delivery.last_error = FAILED, None, reason

    def get(self, delivery_id: str) -> Delivery | None:
        return next((d for d in self.rows if d.id == delivery_id), None)

    def requeue_failed(self, subscription_id: str, since: datetime, now: datetime) -> int:
        mine = [d for d in self.rows if d.subscription_id == subscription_id]
        failed = [d for d in mine if d.status == FAILED and d.created_at >= since and d.payload != ERASED_BODY]
        for delivery in failed:
            delivery.requeue(now)
        return len(failed)

    def erase_of(self, referral_id: str, reason: str) -> int:
        mine = [d for d in self.rows if d.referral_id == referral_id]
        for delivery in mine:
            if delivery.status == PENDING:
                delivery.status, delivery.next_attempt_at, delivery.last_error = FAILED, None, reason
            delivery.payload, delivery.traceparent, delivery.tracestate = ERASED_BODY, None, None
        return len(mine)


class FakeNotificationsUnitOfWork(FakeUnitOfWork, NotificationsUnitOfWork):
    """Records outlive a rollback here (the fake keeps no snapshot): tests of a refused event assert on
    `commits` and `rollbacks`, and on what the refusal left unchanged."""

    owners: FakeReferralOwners
    subscriptions: FakeWebhookSubscriptions
    deliveries: FakeDeliveries
    responses: FakeStoredResponses

    def __init__(self) -> None:
        super().__init__()
        self.owners = FakeReferralOwners()
        self.subscriptions = FakeWebhookSubscriptions()
        self.deliveries = FakeDeliveries()
        self.responses = FakeStoredResponses()

    def delivered_to(self, event_id: str) -> dict[str, Delivery]:
        """The deliveries queued for one event, by subscription id."""
        return {d.subscription_id: d for d in self.deliveries.rows if d.event_id == event_id}
