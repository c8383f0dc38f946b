"""The fake unit of work the unit tests hand to use cases and handlers: no database, no broker.

Each service's fake (tests/support/fake_<service>.py) subclasses it and adds in-memory repositories. Staged
events go through the real catalogue (`envelope`), so a payload the catalogue would refuse, or a routing key
it cannot build, fails the unit test as it would fail in production.
"""

from __future__ import annotations

from typing import Self

import msgspec

from shared.messaging.catalogue import EventData, envelope
from shared.messaging.envelope import Event
from shared.uow import UnitOfWork


class FakeUnitOfWork(UnitOfWork):
    """Events staged in the open unit are `pending`; a commit moves them to `published`, a rollback drops
    them. The fake is its own factory: pass `fake` where a `UnitOfWorkFactory` is wanted."""

    def __init__(self) -> None:
        self.pending: list[tuple[Event, str]] = []
        self.published: list[tuple[Event, str]] = []  # (event, routing key), in the order staged
        self.commits = 0
        self.rollbacks = 0
        self._delivered: set[tuple[str, str]] = set()

    def __call__(self) -> Self:
        return self

    def stage(self, data: EventData) -> Event:
        # Through JSON and back against its own schema: constructing a Struct checks no pattern or bound.
        msgspec.json.decode(msgspec.json.encode(data), type=type(data))
        event, routing_key = envelope(data)
        self.pending.append((event, routing_key))
        return event

    def first_delivery(self, consumer: str, message_id: str) -> bool:
        if (consumer, message_id) in self._delivered:
            return False
        self._delivered.add((consumer, message_id))
        return True

    def commit(self) -> None:
        self.published.extend(self.pending)
        self.pending.clear()
        self.commits += 1

    def rollback(self) -> None:
        self.pending.clear()
        self.rollbacks += 1

    def events(self, type_: type[EventData] | None = None) -> list[EventData]:
        """The payloads committed so far (of one type, when given)."""
        return [e.data for e, _ in self.published if type_ is None or isinstance(e.data, type_)]

    def routing_keys(self) -> list[str]:
        return [key for _, key in self.published]
