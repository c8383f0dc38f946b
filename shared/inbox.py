"""The inbox: a consumer's effects happen at most once per message, however often it is delivered.

`(consumer, message_id)` is inserted with insert-or-ignore in the same transaction as the effects; a
second delivery finds the row and does nothing. Never check-then-insert: two deliveries racing would both
see "absent".
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from shared.db import UTCDateTime, insert_or_ignore
from shared.messaging.envelope import Event
from shared.outbox import utcnow

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


Handler = Callable[[Session, Event], None]


class EventHandlers:
    """Runs one handler per event type inside one transaction together with its inbox row.

    Handler keys may be glob patterns (`referral.offered.*`). Events with no handler are acknowledged
    and ignored. `after_commit` runs once the transaction is durable (e.g. to wake the outbox relay).
    """

    def __init__(
        self,
        consumer: str,
        session_factory: sessionmaker,
        inbox_model: type[InboxMixin],
        handlers: dict[str, Handler],
        after_commit: Callable[[], None] | None = None,
    ):
        self.consumer = consumer
        self._sessions = session_factory
        self._inbox = inbox_model
        self._handlers = handlers
        self._after_commit = after_commit

    def handler_for(self, event_type: str) -> Handler | None:
        if event_type in self._handlers:
            return self._handlers[event_type]
        for pattern, handler in self._handlers.items():
            if fnmatch.fnmatchcase(event_type, pattern):
                return handler
        return None

    def __call__(self, event: Event) -> None:
        handler = self.handler_for(event.type)
        if handler is None:
            log.info("no handler for event; acknowledged", extra={"event_type": event.type})
            return
        with self._sessions.begin() as session:
            if not first_delivery(session, self._inbox, self.consumer, event.id):
                log.info("duplicate delivery ignored", extra={"event_type": event.type, "event_id": event.id})
                return
            handler(session, event)
        if self._after_commit:
            self._after_commit()
