"""The inbox: a consumer's effects happen at most once per message, however often it is delivered.

`(consumer, message_id)` is inserted with insert-or-ignore in the same transaction as the effects; a
second delivery finds the row and does nothing (and says so to the consumer, which counts it as a duplicate in
`referrals_messages_consumed_total`). Never check-then-insert: two deliveries racing would both see "absent".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.clock import utcnow
from shared.db import UTCDateTime, insert_or_ignore
from shared.messaging.catalogue import Handler, Refused, Subscriptions
from shared.messaging.consumer import DUPLICATE
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError

if TYPE_CHECKING:
    from shared.uow import UnitOfWorkFactory

log = logging.getLogger(__name__)


class InboxMixin:
    __tablename__ = "inbox"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def first_delivery(session: Session, model: type[InboxMixin], consumer: str, message_id: str) -> bool:
    statement = insert_or_ignore(
        model.__table__,  # type: ignore[attr-defined]
        ("consumer", "message_id", "received_at"),
        conflict=("consumer", "message_id"),
        returning="message_id",
    )
    # RETURNING, not rowcount: psycopg 3 reports -1 for a single INSERT ... ON CONFLICT here.
    values = {"consumer": consumer, "message_id": message_id, "received_at": utcnow()}
    return session.execute(statement, values).first() is not None


class EventHandlers:
    """Accepts each event against the catalogue, then runs its handler inside one unit of work together
    with its inbox row.

    An event that breaks its contract (routing key, publisher, source, schema) or that this consumer does not
    handle is refused before any handler runs: PermanentError, so the consumer parks it with the reason.
    Each handler is called as `handler(uow, event)`; the unit commits when it returns.
    """

    def __init__(
        self, consumer: str, units: UnitOfWorkFactory, subscriptions: Subscriptions, *, trusted: Iterable[str]
    ):
        self.consumer = consumer
        self.subscriptions = subscriptions
        self._units = units
        self._trusted = frozenset(trusted)

    @property
    def event_types(self) -> frozenset[str]:
        """Every event type of the catalogue: the values the consumer's metrics may give their event_type label."""
        return frozenset(entry.name for entry in self.subscriptions.catalogue)

    def accept(self, event: Event) -> tuple[Event, Handler]:
        """The event with its payload typed, and its handler; PermanentError with the reason if refused."""
        catalogue = self.subscriptions.catalogue
        try:
            accepted = catalogue.accept(
                event, trusted=self._trusted, address=self.subscriptions.address, consumer=self.subscriptions.consumer
            )
        except Refused as exc:
            raise PermanentError(str(exc)) from None
        handler = self.subscriptions.handler_for(accepted.type)
        if handler is None:
            raise PermanentError(f"{accepted.type} is not handled by {self.consumer}")
        return accepted, handler

    def __call__(self, event: Event) -> str | None:
        """Handle `event` once; DUPLICATE if it had been handled before (nothing done)."""
        event, handler = self.accept(event)
        with self._units() as uow:
            if not uow.first_delivery(self.consumer, event.id):
                log.info("duplicate delivery ignored", extra={"event_type": event.type, "event_id": event.id})
                return DUPLICATE
            handler(uow, event)
        return None
