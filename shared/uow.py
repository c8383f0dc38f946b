"""The unit of work: one transaction, and the events staged in it, kept or discarded together.

A use case or an event handler is handed a unit of work (cosmicpython's `unit_of_work.py`). It reads and
changes its service's records through the unit's repositories, and stages each event that reports the
change with `uow.stage(payload)`. Which table holds the event until the relay publishes it, its routing
key and its envelope are the unit's business (and the catalogue's), not the caller's. Leaving the `with`
block normally commits; an exception rolls back the records and the events together.

    with uow_factory() as uow:
        referral = uow.referrals.get(referral_id)
        referral.withdraw(...)
        uow.stage(events.ReferralWithdrawn(...))

`SqlUnitOfWork` is the real one over a service's own database: each service subclasses it, naming its
outbox and inbox tables and making its repositories in `open()`. Unit tests hand the same use cases a fake
(tests/support/uow.py) that keeps records in dicts and staged events in a list: no database.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from functools import cache
from typing import ClassVar, Self

from opentelemetry import propagate
from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session, sessionmaker

from shared.clock import utcnow
from shared.inbox import InboxMixin, first_deliveries, first_delivery
from shared.messaging.catalogue import EventData, envelope
from shared.messaging.envelope import Event
from shared.messaging.notify import announce
from shared.outbox import OutboxMixin


class UnitOfWork(abc.ABC):
    """What every service's unit of work can do, whatever its repositories."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    @abc.abstractmethod
    def stage(self, data: EventData) -> Event:
        """Stage the event `data` is the payload of, to be published if (and only if) this unit commits."""

    @abc.abstractmethod
    def first_delivery(self, consumer: str, message_id: str) -> bool:
        """Record that `consumer` handles message `message_id` here; False when it already has (the inbox)."""

    def first_deliveries(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        """`first_delivery` for several messages at once (a consumer's batch): the ids not handled before."""
        return {message_id for message_id in dict.fromkeys(message_ids) if self.first_delivery(consumer, message_id)}

    def end_event(self) -> None:  # noqa: B027  # a hook: most units have nothing to settle
        """One event's handler has returned, in a unit that may hold other events after it (a consumer's batch):
        settle what it recorded while its own trace context is current. Nothing to do by default."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class SqlUnitOfWork(UnitOfWork):
    """A unit of work over one SQLAlchemy session. A fresh one per transaction (`factory()`): it is not
    shared between threads, and `after_commit` runs once each commit is durable (e.g. to wake the relay)."""

    outbox_table: ClassVar[type[OutboxMixin] | None] = None
    inbox_table: ClassVar[type[InboxMixin] | None] = None
    session: Session

    def __init__(self, sessions: sessionmaker, *, after_commit: Callable[[], None] | None = None):
        self._sessions = sessions
        self._after_commit = after_commit

    def __enter__(self) -> Self:
        self.session = self._sessions()
        self.session.begin()
        self.open(self.session)
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            super().__exit__(exc_type, exc, traceback)
        finally:
            self.session.close()

    def open(self, session: Session) -> None:
        """Make the repositories over `session` (a subclass's work; the kit has none)."""

    def commit(self) -> None:
        self.session.commit()
        if self._after_commit is not None:
            self._after_commit()

    def rollback(self) -> None:
        self.session.rollback()

    def stage(self, data: EventData) -> Event:
        if self.outbox_table is None:
            raise TypeError(f"{type(self).__name__} has no outbox: it publishes no events")
        event, routing_key = envelope(data)
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the trace continues at the relay, across the gap between commit and publish
        now = utcnow()
        # A Core INSERT built once, executed now: no ORM object to track and flush for a row nobody reads back in
        # this transaction, and a later statement in it (an erasure forgetting a referral's messages) sees it.
        self.session.execute(
            _outbox_insert(self.outbox_table.__table__),  # type: ignore[attr-defined]  # a mapped class's table
            {
                "id": event.id,
                "type": event.type,
                "routing_key": routing_key,
                "payload": event.to_json().decode(),
                "traceparent": carrier.get("traceparent"),
                "tracestate": None,  # foreign vendor state stays at the edge (shared.telemetry.EdgeTraceContext)
                "created_at": now,
                "next_attempt_at": now,
                "attempts": 0,
            },
        )
        announce(self.session, self.outbox_table.__tablename__)  # PostgreSQL wakes the relay at commit
        return event

    def first_delivery(self, consumer: str, message_id: str) -> bool:
        if self.inbox_table is None:
            raise TypeError(f"{type(self).__name__} has no inbox: it consumes no events")
        return first_delivery(self.session, self.inbox_table, consumer, message_id)

    def first_deliveries(self, consumer: str, message_ids: Sequence[str]) -> set[str]:
        if self.inbox_table is None:
            raise TypeError(f"{type(self).__name__} has no inbox: it consumes no events")
        return first_deliveries(self.session, self.inbox_table, consumer, message_ids)


@cache
def _outbox_insert(table: Table) -> Insert:
    return insert(table)
