"""Events as a consumer receives them: the wire JSON of a catalogue payload, with the routing key it was
published under and the broker-validated `user_id` of its publisher."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from contracts.events import CATALOGUE
from shared.messaging.catalogue import EventData, envelope
from shared.messaging.envelope import Event


def payload(event_type: str, **data: Any) -> EventData:
    """The typed payload of `event_type` from plain values (ISO strings for dates), validated as consumers do."""
    return msgspec.convert(data, CATALOGUE[event_type].data)


def arriving(data: EventData, *, publisher: str = "guest", **overrides: Any) -> Event:
    """`overrides` (routing_key, source, subject, type, ...) forge what a test needs forged."""
    event, key = envelope(data)
    wire = Event.from_json(event.to_json())
    return dataclasses.replace(wire, **{"publisher": publisher, "routing_key": key, **overrides})
