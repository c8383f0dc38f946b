"""A catalogue of made-up events for the messaging kit's own tests (outbox, relay, inbox), apart from the
platform's: the kit is exercised without any service's meaning."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.inbox import InboxMixin
from shared.messaging.catalogue import Catalogue, EventData, Voice
from shared.outbox import OutboxMixin
from shared.uow import SqlUnitOfWork

PLATFORM = "platform"
KIT = Catalogue([Voice(PLATFORM, service="kit", source="/kit")])


class Thing(EventData, frozen=True):
    referral_id: str = "ref-1"
    n: int = 0
    poison: bool = False


def _kit_event(name: str):
    return KIT.define(name, publisher=PLATFORM, consumers=["kit"], description=f"the kit's test event {name}")


@_kit_event("thing.happened")
class ThingHappened(Thing, frozen=True):
    pass


@_kit_event("nobody.listens")
class NobodyListens(Thing, frozen=True):
    pass


@_kit_event("thing.refused")
class ThingRefused(Thing, frozen=True):
    pass


@_kit_event("thing.refused.elsewhere")
class ThingRefusedElsewhere(Thing, frozen=True):
    pass


TYPES = {entry.name: entry.data for entry in KIT}


def thing(kind: str = "thing.happened", **data) -> Thing:
    """The payload of kit event `kind`: stage it with `uow.stage`."""
    return TYPES[kind](**data)


class Base(DeclarativeBase):
    pass


class Outbox(Base, OutboxMixin):
    pass


class Inbox(Base, InboxMixin):
    pass


class KitUnitOfWork(SqlUnitOfWork):
    """The kit's own unit of work: an outbox and an inbox, no repositories."""

    outbox_table = Outbox
    inbox_table = Inbox
