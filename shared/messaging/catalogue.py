"""The event catalogue's machinery: each event type defined once, with who may publish it, how it is
addressed, its payload schema and its consumers. The platform's own events are in `contracts.events`.

Producers build an envelope from a typed payload (`Catalogue.envelope`); consumers hand what arrived to
`Catalogue.accept`, which refuses it unless the routing key is the event type's (for an addressed event, with
this consumer's own address), the broker-validated `user_id` satisfies the publisher rule (for a copy put
back on the consumer's own queue, the original's `user_id`, when the platform put it back), the source is the
publisher's and the payload matches the schema. Queue bindings are derived from the handlers a worker
registers (`Subscriptions`), so a binding without a handler, or a handler without a binding, cannot exist.

Payloads are msgspec Structs: typed, validated in C, and their JSON Schema feeds the AsyncAPI document.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from shared.messaging.envelope import Event


@dataclass(frozen=True)
class Voice:
    """One kind of publisher in a catalogue, and how a consumer tells its events from forgeries.

    The platform's own voice (no `user_prefix`) is spoken by the platform's trusted broker users, with one
    fixed `source`. A party's voice (`user_prefix`) speaks for one party at a time, the one a field of the
    payload names (`speaks_for`): its broker user is `<user_prefix><party id>` and its source
    `<source>/<party id>`. The platform's own voices are in `contracts.events`.
    """

    name: str  # what an event type's `publisher` says
    service: str  # the service whose instances publish in this voice (its AsyncAPI document sends them)
    source: str
    user_prefix: str | None = None

    @property
    def is_party(self) -> bool:
        return self.user_prefix is not None

    def source_for(self, party: str | None) -> str:
        return f"{self.source}/{party}" if self.is_party else self.source

    def whom(self, party: str | None) -> str:
        """Whom an event in this voice speaks for, in words: the voice, or the voice and its party."""
        return f"{self.name} {party}" if self.is_party else self.name


class EventData(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A payload: unknown fields are refused, so nothing extra (a name, a note) rides along unseen."""


class Refused(Exception):
    """A message that breaks its contract: parked with this reason. The reason names fields and rules,
    never the values that broke them (they may be anything, including personal data)."""


D = TypeVar("D", bound=EventData)


@dataclass(frozen=True)
class EventType:
    name: str  # past tense, dotted: `referral.offered`
    data: type[EventData]
    voices: tuple[Voice, ...]  # who may publish it: usually one voice; the first is its primary
    consumers: tuple[str, ...]
    description: str
    # An addressed event's routing key is `<name>.<value of this field>`, bound only by that party's queue.
    addressed_by: str | None = None
    # An event in a party's voice may come only from the broker user of the party this field names.
    speaks_for: str | None = None
    # The envelope's `subject` is this field's value (e.g. the referral an event is about).
    subject_field: str = "referral_id"
    # What the addressed field says for each consumer, `{address}` standing for the consumer's own address
    # (its party id): `provider.{address}` for a charity, a constant for a service. Default: the address.
    address_as: tuple[tuple[str, str], ...] = ()

    @property
    def voice(self) -> Voice:
        return self.voices[0]

    def voice_of(self, data: EventData) -> Voice:
        """The voice a payload is published in: a party's when it names one (`speaks_for`), else the
        platform's own (an event that both a party and a platform service publish)."""
        if len(self.voices) == 1:
            return self.voices[0]
        party = self.speaker(data) is not None
        return next(v for v in self.voices if v.is_party == party)

    def routing_key(self, data: EventData) -> str:
        return self.name if self.addressed_by is None else f"{self.name}.{getattr(data, self.addressed_by)}"

    def address_for(self, consumer: str | None, address: str | None) -> str | None:
        """The addressed field's value for an event sent to `consumer`, whose own address is `address`."""
        template = dict(self.address_as).get(consumer or "", "{address}")
        if "{address}" in template and not address:
            return None
        return template.format(address=address)

    def binding(self, address: str | None, consumer: str | None = None) -> str:
        if self.addressed_by is None:
            return self.name
        value = self.address_for(consumer, address)
        if not value:
            raise ValueError(f"{self.name} is addressed by {self.addressed_by}: its consumer needs its own address")
        return f"{self.name}.{value}"

    @property
    def publisher(self) -> str:
        """The name of the (primary) voice it is published in."""
        return self.voice.name

    def speaker(self, data: EventData) -> str | None:
        """The party an event in a party's voice speaks for; None for the platform's own events."""
        return getattr(data, self.speaks_for) if self.speaks_for else None

    def source(self, data: EventData) -> str:
        return self.voice_of(data).source_for(self.speaker(data))


def may_publish(
    publisher: str | None, speaks_for: str | None, trusted: Collection[str], user_prefix: str | None = None
) -> bool:
    """The publisher rule. The platform's own events only from its own broker users (`trusted`); a party's
    only from the user of the party it speaks for, `<user_prefix><party id>`, or a trusted one (dev and
    compose share one user). RabbitMQ validates `user_id`, so it cannot be forged."""
    if publisher is None:
        return False
    if publisher in trusted:
        return True
    return speaks_for is not None and user_prefix is not None and publisher == f"{user_prefix}{speaks_for}"


def envelope(data: EventData) -> tuple[Event, str]:
    """The CloudEvent for a payload of a defined event type, and its routing key."""
    entry: EventType | None = getattr(type(data), "__event_type__", None)
    if entry is None:
        raise TypeError(f"{type(data).__name__} is not the payload of an event type in a catalogue")
    event = Event(type=entry.name, source=entry.source(data), subject=getattr(data, entry.subject_field), data=data)
    return event, entry.routing_key(data)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|unknown field `[^`]*`")


def _reason(exc: msgspec.ValidationError) -> str:
    # msgspec quotes offending values ("Invalid enum value 'x'") and names an unknown field (which a sender
    # chose, and could be anything): keep the rule and the path, which the schema names.
    return _QUOTED.sub(lambda m: "unknown field" if m.group().startswith("unknown") else "…", str(exc))


class Catalogue:
    def __init__(self, voices: Iterable[Voice]) -> None:
        self.voices = {voice.name: voice for voice in voices}
        self._by_name: dict[str, EventType] = {}
        self._by_data: dict[type[EventData], EventType] = {}

    def define(
        self,
        name: str,
        *,
        publisher: str | tuple[str, ...],
        consumers: Iterable[str],
        description: str,
        addressed_by: str | None = None,
        speaks_for: str | None = None,
        subject_field: str = "referral_id",
        address_as: dict[str, str] | None = None,
    ) -> Callable[[type[D]], type[D]]:
        """Class decorator: the payload struct below is event type `name`. `publisher` names its voice, or
        a party's voice and a platform voice when both publish it (the payload's `speaks_for` field, set or
        None, says which)."""

        def register(data: type[D]) -> type[D]:
            if name in self._by_name or data in self._by_data:
                raise ValueError(f"event type {name} is defined twice")
            fields = {f.name for f in msgspec.structs.fields(data)}
            for role, field in (("addressed_by", addressed_by), ("speaks_for", speaks_for), ("subject", subject_field)):
                if field is not None and field not in fields:
                    raise ValueError(f"{name}: {role} names {field!r}, which its payload does not have")
            names = (publisher,) if isinstance(publisher, str) else tuple(publisher)
            unknown = [p for p in names if p not in self.voices]
            if unknown or not names:
                raise ValueError(f"{name}: publisher {unknown or names!r} is none of the catalogue's voices")
            voices = tuple(self.voices[p] for p in names)
            parties = sum(v.is_party for v in voices)
            if (parties > 0) != (speaks_for is not None):
                raise ValueError(f"{name}: an event in a party's voice says whom it speaks for; no other does")
            if len(voices) > 1 and (parties != 1 or len(voices) != 2):
                raise ValueError(f"{name}: two voices publish an event only as one party's and one platform's")
            entry = EventType(name, data, voices, tuple(consumers), description, addressed_by, speaks_for,
                              subject_field, tuple((address_as or {}).items()))  # fmt: skip
            self._by_name[name], self._by_data[data] = entry, entry
            data.__event_type__ = entry  # type: ignore[attr-defined]
            return data

        return register

    def __iter__(self):
        return iter(self._by_name.values())

    def __getitem__(self, name: str) -> EventType:
        return self._by_name[name]

    def of(self, data: EventData | type[EventData]) -> EventType:
        return self._by_data[data if isinstance(data, type) else type(data)]

    def published_by(self, publisher: str) -> list[EventType]:
        return [e for e in self if any(v.name == publisher for v in e.voices)]

    def consumed_by(self, service: str) -> list[EventType]:
        return [e for e in self if service in e.consumers]

    def bindings(self, consumer: str, address: str | None = None) -> tuple[str, ...]:
        """The routing keys `consumer`'s queue binds: every event sent to it, an addressed one with `address`.
        (A complete Subscriptions binds exactly these.)"""
        return tuple(e.binding(address, consumer) for e in self.consumed_by(consumer))

    # --- consuming ------------------------------------------------------------------------------------

    def accept(
        self, event: Event, *, trusted: Collection[str], address: str | None = None, consumer: str | None = None
    ) -> Event:
        """The event with its payload typed, if it keeps its contract; else Refused with the reason."""
        entry = self._by_name.get(event.type)
        if entry is None:
            raise Refused("its type is not an event type of the catalogue")
        key = event.routing_key
        if key is not None and key != entry.name and not (entry.addressed_by and key.startswith(entry.name + ".")):
            raise Refused(f"routing key does not match event type {entry.name}")
        try:
            data = msgspec.convert(event.data, entry.data)
        except msgspec.ValidationError as exc:
            raise Refused(f"{entry.name} payload does not match its schema: {_reason(exc)}") from None
        if key is not None and key != entry.routing_key(data):
            raise Refused(f"routing key does not match {entry.name}'s {entry.addressed_by}")
        if entry.addressed_by and getattr(data, entry.addressed_by) != entry.address_for(consumer, address):
            raise Refused(f"{entry.name} is addressed to another party than this consumer")
        if event.subject != getattr(data, entry.subject_field):
            raise Refused(f"{entry.name}'s subject is not its {entry.subject_field}")
        if event.relayed_by is not None and event.relayed_by not in trusted:
            # Only the platform's users may put a message back on a queue's own paths with its original
            # publisher in the headers: from anyone else those headers would be a forged user_id.
            raise Refused(f"{entry.name} was put back on this queue by {event.relayed_by!r}, not by the platform")
        speaker, voice = entry.speaker(data), entry.voice_of(data)
        if not may_publish(event.publisher, speaker, trusted, voice.user_prefix):
            raise Refused(f"publisher {event.publisher!r} may not publish {entry.name} for {voice.whom(speaker)}")
        if event.source != entry.source(data):
            raise Refused(f"{entry.name}'s source is not its publisher's")
        return dataclasses.replace(event, data=data)


Handler = Callable[[Any, Event], None]


class Subscriptions:
    """What one consumer handles: one handler per event type of the catalogue that names it as a consumer.
    Its queue's bindings are derived from these, with `address` (the consumer's party id) for addressed
    events, so nothing is bound that nobody handles and nothing handled goes unbound."""

    def __init__(self, catalogue: Catalogue, consumer: str, *, address: str | None = None):
        self.catalogue, self.consumer, self.address = catalogue, consumer, address
        self._handlers: dict[str, Handler] = {}

    def on(self, data: type[EventData], handler: Handler) -> Subscriptions:
        entry = self.catalogue.of(data)
        if self.consumer not in entry.consumers:
            raise ValueError(f"the catalogue does not list {self.consumer} as a consumer of {entry.name}")
        self._handlers[entry.name] = handler
        return self

    def handler_for(self, event_type: str) -> Handler | None:
        return self._handlers.get(event_type)

    def complete(self) -> Subscriptions:
        """Raise unless every event the catalogue sends this consumer has a handler here."""
        missing = [e.name for e in self.catalogue.consumed_by(self.consumer) if e.name not in self._handlers]
        if missing:
            raise ValueError(f"{self.consumer} has no handler for {', '.join(missing)}")
        return self

    @property
    def bindings(self) -> tuple[str, ...]:
        return tuple(self.catalogue[name].binding(self.address, self.consumer) for name in self._handlers)
