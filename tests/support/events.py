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


ANSWERED_AT = "2026-12-01T10:00:00+00:00"
ADVOCATE = {"name": "Advocate Synthetic", "email": "advocate@provider-a.example"}


def answer(
    kind: str, referral_id: str, offer_id: str, provider: str = "provider-a", *, publisher: str | None = None, **data
) -> Event:
    """A provider's offer.accepted or offer.declined, as it arrives from `publisher`: by default the provider's
    own broker user (RabbitMQ validated its user_id)."""
    when = {"offer.accepted": {"accepted_at": ANSWERED_AT, "case_id": "case-1", "advocate": ADVOCATE}}
    defaults = when.get(kind, {"declined_at": ANSWERED_AT})
    answered = payload(kind, referral_id=referral_id, offer_id=offer_id, provider_id=provider, **{**defaults, **data})
    return arriving(answered, publisher=publisher or f"advocacy-{provider}")
