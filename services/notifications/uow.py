"""notifications' unit of work: one transaction over its records, with the inbox row of the event being handled.

Notifications consumes events and publishes one, erasure.completed (issue 14), through its outbox and relay.
Handlers and use cases take a `NotificationsUnitOfWork`; the worker and the API make a fresh
`SqlNotificationsUnitOfWork` per transaction from bootstrap's factory, the unit tests use a fake one.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.notifications.models import Inbox, Outbox
from services.notifications.repositories import (
    Deliveries,
    ReferralOwners,
    SqlDeliveries,
    SqlReferralOwners,
    SqlStoredResponses,
    SqlWebhookSubscriptions,
    StoredResponses,
    WebhookSubscriptions,
)
from shared.db import scrub_files
from shared.uow import SqlUnitOfWork, UnitOfWork


class NotificationsUnitOfWork(UnitOfWork):
    owners: ReferralOwners
    subscriptions: WebhookSubscriptions
    deliveries: Deliveries
    responses: StoredResponses
    # Set by an erasure: once this unit commits, the database files are scrubbed (shared.db.scrub_files).
    scrub_after_commit: bool = False


class SqlNotificationsUnitOfWork(SqlUnitOfWork, NotificationsUnitOfWork):
    inbox_table = Inbox
    outbox_table = Outbox

    def open(self, session: Session) -> None:
        self.owners = SqlReferralOwners(session)
        self.subscriptions = SqlWebhookSubscriptions(session)
        self.deliveries = SqlDeliveries(session)
        self.responses = SqlStoredResponses(session)

    def commit(self) -> None:
        super().commit()
        if self.scrub_after_commit:  # an erasure: no erased value left in SQLite's files either
            self.scrub_after_commit = False
            scrub_files(self.session.get_bind())  # type: ignore[arg-type]  # an Engine: sessions bind to one
