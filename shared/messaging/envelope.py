"""The CloudEvents 1.0 envelope (structured JSON mode) every event travels in.

Spec: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md
`subject` is the referral id. `data` carries ids and what a receiver needs to decide: never names, dates
of birth, contact details or narrative. Its shape per event type is in the catalogue (`contracts.events`):
`data` is a typed payload when produced or accepted, and the raw JSON object as it arrives.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.messaging.errors import PermanentError

REQUIRED = ("specversion", "id", "source", "type")
# The AMQP header every event is published with, holding its subject (the referral id; never personal data): the
# consistent-hash exchange of a partitioned queue hashes on it (shared.messaging.topology), so that one referral's
# events all reach one partition. An event with no subject carries its own id: a header the exchange finds
# missing would hash every such message alike.
PARTITION_HEADER = "x-subject"


class _Keyed(msgspec.Struct):
    id: str = ""
    subject: str = ""


_KEYED = msgspec.json.Decoder(_Keyed)


def partition_key(body: bytes) -> str:
    """The PARTITION_HEADER value of an encoded event: its subject, else its id ("" for what is not an event)."""
    try:
        keyed = _KEYED.decode(body)
    except msgspec.DecodeError:
        return ""
    return keyed.subject or keyed.id


class MalformedEvent(ValueError):
    """The bytes are not a CloudEvents 1.0 structured JSON event."""


@dataclass(frozen=True)
class Event:
    type: str
    source: str
    subject: str
    data: Any  # a catalogue payload (msgspec Struct), or the decoded JSON object before it is accepted
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    # Who published it: the AMQP `user_id`, which RabbitMQ validates against the connection's user.
    # Set by the consumer on arrival; not part of the JSON.
    publisher: str | None = field(default=None, compare=False)
    # The routing key it arrived with (set by the consumer; not part of the JSON).
    routing_key: str | None = field(default=None, compare=False)
    # For a copy put back on the consumer's own queue (a replay from its parking lot, its holding queue): the
    # broker user who put it back; `publisher` and `routing_key` are then the original's, from the copy's
    # headers (shared.messaging.topology.Origin). None for a message as its publisher sent it.
    relayed_by: str | None = field(default=None, compare=False)

    def occurred_at(self) -> datetime:
        """`time` as an aware datetime, for a handler that orders what it hears by it; PermanentError (park)
        when it is unreadable or has no zone."""
        try:
            at = datetime.fromisoformat(self.time)
        except ValueError:
            raise PermanentError(f"{self.type} has an unreadable time") from None
        if at.tzinfo is None:
            raise PermanentError(f"{self.type} has a time without a time zone")
        return at

    def to_json(self) -> bytes:
        return msgspec.json.encode(
            {
                "specversion": "1.0",
                "id": self.id,
                "source": self.source,
                "type": self.type,
                "time": self.time,
                "subject": self.subject,
                "datacontenttype": "application/json",
                "data": self.data,
            }
        )

    @classmethod
    def from_json(cls, body: bytes | str) -> Event:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent(f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise MalformedEvent("not a JSON object")
        missing = [name for name in REQUIRED if not isinstance(doc.get(name), str) or not doc[name]]
        if missing:
            raise MalformedEvent(f"missing CloudEvents attribute(s): {', '.join(missing)}")
        if doc["specversion"] != "1.0":
            raise MalformedEvent(f"unsupported specversion {doc['specversion']!r}")
        data = doc.get("data", {})
        if not isinstance(data, dict):
            raise MalformedEvent("data must be a JSON object")
        return cls(
            type=doc["type"],
            source=doc["source"],
            subject=str(doc.get("subject", "")),
            data=data,
            id=doc["id"],
            time=str(doc.get("time", "")),
        )
