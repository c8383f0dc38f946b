"""notifications' unit of work: one transaction over its records, with the inbox row of the event being handled.

Notifications consumes events and publishes none, so it has an inbox and no outbox: `stage()` refuses.
Handlers and use cases take a `NotificationsUnitOfWork`; the worker and the API make a fresh
`SqlNotificationsUnitOfWork` per transaction from bootstrap's factory, the unit tests use a fake one.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.notifications.models import Inbox
from services.notifications.repositories import (
    Deliveries,
    ReferralOwners,
    SqlDeliveries,
    SqlReferralOwners,
    SqlWebhookSubscriptions,
    WebhookSubscriptions,
)
from shared.uow import SqlUnitOfWork, UnitOfWork


class NotificationsUnitOfWork(UnitOfWork):
    owners: ReferralOwners
    subscriptions: WebhookSubscriptions
    deliveries: Deliveries


class SqlNotificationsUnitOfWork(SqlUnitOfWork, NotificationsUnitOfWork):
    inbox_table = Inbox

    def open(self, session: Session) -> None:
        self.owners = SqlReferralOwners(session)
        self.subscriptions = SqlWebhookSubscriptions(session)
        self.deliveries = SqlDeliveries(session)
