"""The inbox: a consumer's effects happen at most once per message, however often it is delivered.

`(consumer, message_id)` is inserted with insert-or-ignore in the same transaction as the effects; a
second delivery finds the row and does nothing (and says so to the consumer, which counts it as a duplicate in
`referrals_messages_consumed_total`). Never check-then-insert: two deliveries racing would both see "absent".

A consumer may hand several events to one unit of work (`EventHandlers.batch`): their inbox rows go in with one
multi-row insert-or-ignore, whose RETURNING says which are new; an event already there, or a second copy in
the same batch, does nothing. Handlers share that unit with the other events of the batch, so a handler that
waits on another service (and would hold the batch's locks while it waits) is marked `alone`: the consumer
gives it a unit of work of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.clock import utcnow
from shared.db import UTCDateTime, insert_or_ignore
from shared.messaging.catalogue import Handler, Refused, Subscriptions
from shared.messaging.envelope import Event
from shared.messaging.errors import DUPLICATE, PermanentError

if TYPE_CHECKING:
    from shared.uow import UnitOfWork, UnitOfWorkFactory

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


def first_deliveries(session: Session, model: type[InboxMixin], consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Record that `consumer` handles each of `message_ids`, in one statement; the ids it had not handled before."""
    unique = list(dict.fromkeys(message_ids))
    if not unique:
        return set()
    statement = insert_or_ignore(
        model.__table__,  # type: ignore[attr-defined]
        ("consumer", "message_id", "received_at"),
        conflict=("consumer", "message_id"),
        returning="message_id",
        rows=len(unique),
    )
    now = utcnow()
    values: dict[str, object] = {}
    for row, message_id in enumerate(unique):
        values |= {f"consumer_{row}": consumer, f"message_id_{row}": message_id, f"received_at_{row}": now}
    return set(session.scalars(statement, values))


ALONE = "runs_alone"


def alone(handler: Handler) -> Handler:
    """Mark `handler` as needing a unit of work of its own: never batched with other events (it waits on another
    service, and would hold the batch's row locks, and have it fetch again for all if one failed)."""

    def run_alone(uow: Any, event: Event) -> None:
        handler(uow, event)

    setattr(run_alone, ALONE, True)
    return run_alone


class Batch:
    """Events handled in one unit of work (EventHandlers.batch). The inbox rows of all of them are inserted at
    the first `handle`, so that statement runs inside the first event's span."""

    def __init__(self, consumer: str, uow: UnitOfWork, events: Sequence[Event]):
        self._consumer, self._uow = consumer, uow
        self._ids = [event.id for event in events]
        self._new: set[str] | None = None

    def handle(self, event: Event, handler: Handler) -> str | None:
        """Run the accepted `event`'s handler in the batch's unit; DUPLICATE if the inbox had it (nothing done)."""
        if without_effect(handler, event):
            return None  # not even its inbox row: a batch of such events opens no transaction
        if self._new is None:
            self._new = self._uow.first_deliveries(self._consumer, self._ids)
        if event.id not in self._new:
            log.info("duplicate delivery ignored", extra={"event_type": event.type, "event_id": event.id})
            return DUPLICATE
        self._new.discard(event.id)  # a second copy later in this batch is a duplicate too
        handler(self._uow, event)
        self._uow.end_event()
        return None


EFFECT = "has_effect"


def effect_checked(handler: Handler, has_effect: Callable[[Event], bool]) -> Handler:
    """`handler`, for events that may have no effect in this consumer: an accepted event of which `has_effect`
    says False is acked with no unit of work and no inbox row (it did nothing, so a redelivery has nothing to
    repeat). For a consumer that would otherwise spend a transaction on events nobody wants (notifications)."""

    def checked(uow, event: Event) -> None:
        handler(uow, event)

    setattr(checked, EFFECT, has_effect)
    return checked


def without_effect(handler: Handler, event: Event) -> bool:
    """Whether `handler` (effect_checked) says the accepted `event` needs no unit of work."""
    check = getattr(handler, EFFECT, None)
    return check is not None and not check(event)


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

    def runs_alone(self, event_type: str | None) -> bool:
        """Whether an event of this type must have a unit of work of its own: its handler is marked `alone`, or
        the type is not known before the message is parsed (a missing AMQP type property)."""
        if event_type is None:
            return True
        handler = self.subscriptions.handler_for(event_type)
        return bool(getattr(handler, ALONE, False))

    @contextmanager
    def batch(self, events: Sequence[Event]) -> Iterator[Batch]:
        """One unit of work for `events` (each accepted already): `batch.handle(event, handler)` for each, in
        order; it commits when the block ends, and rolls back everything if the block raises."""
        with self._units() as uow:
            yield Batch(self.consumer, uow, events)

    def __call__(self, event: Event) -> str | None:
        """Handle `event` once; DUPLICATE if it had been handled before (nothing done)."""
        event, handler = self.accept(event)
        if without_effect(handler, event):
            log.debug("event without effect here: acked with no transaction", extra={"event_type": event.type})
            return None
        with self._units() as uow:
            if not uow.first_delivery(self.consumer, event.id):
                log.info("duplicate delivery ignored", extra={"event_type": event.type, "event_id": event.id})
                return DUPLICATE
            handler(uow, event)
        return None
