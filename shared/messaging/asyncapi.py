"""One service's AsyncAPI document, generated from the event catalogue: what it sends and receives.

Spec: https://www.asyncapi.com/docs/reference/specification/v3.0.0
One channel per event type, addressed by its routing key on the `referrals` topic exchange; each message is
the CloudEvents envelope (shared.messaging.envelope) around the payload's schema, which msgspec derives from
the same Struct the consumers validate against, so the document cannot drift from what is accepted.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from shared.messaging import CONTENT_TYPE, EXCHANGE
from shared.messaging.catalogue import Catalogue, EventType, Voice
from shared.messaging.envelope import PARTITION_HEADER, REQUIRED

SCHEMAS = "#/components/schemas/{name}"
AMQP_BINDING = {
    "is": "routingKey",
    "exchange": {"name": EXCHANGE, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"},
    "bindingVersion": "0.3.0",
}


def document(catalogue: Catalogue, service: str, *, title: str, version: str) -> dict[str, Any]:
    """`service`'s AsyncAPI 3.0.0 document: the event types it publishes (`send`) and consumes (`receive`)."""
    sends = [e for e in catalogue if any(v.service == service for v in e.voices)]
    receives = catalogue.consumed_by(service)
    events = list({e.name: e for e in sends + receives}.values())  # once each: a service may send and receive one
    refs, schemas = msgspec.json.schema_components([e.data for e in events], ref_template=SCHEMAS)
    operations = {
        f"{action}.{e.name}": _operation(e, action)
        for action, side in (("send", sends), ("receive", receives))
        for e in side
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": f"The events {service} sends and receives over RabbitMQ: each a CloudEvents 1.0 "
            f"structured JSON envelope on the `{EXCHANGE}` topic exchange, routed by its type. Generated from "
            "the event catalogue (`contracts.events`); consumers refuse what breaks a channel's rules.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ as `make run` expects it.",
            }
        },
        "channels": {e.name: _channel(e) for e in events},
        "operations": operations,
        "components": {
            "messages": {e.name: _message(e, ref) for e, ref in zip(events, refs, strict=True)},
            "schemas": schemas,
        },
    }


def publisher_rule(entry: EventType) -> str:
    """Who may publish `entry` and who may bind it, in words (the rules of catalogue.may_publish)."""
    rules = []
    for voice in entry.voices:
        if not voice.is_party:
            rules.append(f"only {voice.name} publishes it, as the platform's own (trusted) broker user(s)")
        else:
            rules.append(
                f"only the {voice.name} named by `{entry.speaks_for}` publishes it, as its broker user "
                f"`{voice.user_prefix}<{entry.speaks_for}>`, or a trusted platform user"
            )
    if len(rules) == 1:
        rule = f"Publisher rule: {rules[0]}."
    else:  # a party's and a platform's voice: the payload's speaks_for field says which
        rule = f"Publisher rule: with `{entry.speaks_for}` set, {rules[0]}; without it, {rules[1]}."
    if entry.addressed_by:
        rule += (
            f" Addressed: the routing key ends with `{entry.addressed_by}`, and only the queue of the party it "
            "names binds it."
        )
    return rule + " RabbitMQ validates the AMQP `user_id`; consumers refuse any other publisher."


def _address(entry: EventType) -> str:
    return entry.name if entry.addressed_by is None else f"{entry.name}.{{{entry.addressed_by}}}"


def _channel(entry: EventType) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "address": _address(entry),
        "title": entry.name,
        "description": f"{entry.description}\n\n{publisher_rule(entry)}\n\nConsumed by: {', '.join(entry.consumers)}.",
        "messages": {entry.name: {"$ref": f"#/components/messages/{entry.name}"}},
        "bindings": {"amqp": AMQP_BINDING},
    }
    if entry.addressed_by:
        party = f"The payload's `{entry.addressed_by}`: the party this event is addressed to."
        channel["parameters"] = {entry.addressed_by: {"description": party}}
    return channel


def _operation(entry: EventType, action: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{entry.name}"},
        "summary": entry.description,
        "messages": [{"$ref": f"#/channels/{entry.name}/messages/{entry.name}"}],
    }


def _source(entry: EventType, voice: Voice) -> dict[str, Any]:
    if not voice.is_party:
        return {"type": "string", "const": voice.source}
    party = f"`{voice.source}/<{entry.speaks_for}>`"
    return {"type": "string", "pattern": f"^{re.escape(voice.source)}/", "description": party}


def _message(entry: EventType, data: dict[str, Any]) -> dict[str, Any]:
    sources = [_source(entry, voice) for voice in entry.voices]
    source = sources[0] if len(sources) == 1 else {"oneOf": sources}
    envelope = {
        "type": "object",
        # What a consumer needs: subject must equal the payload's subject field, data must match its schema.
        "required": [*REQUIRED, "subject", "data"],
        "properties": {
            "specversion": {"type": "string", "const": "1.0"},
            "id": {"type": "string", "minLength": 1},
            "source": source,
            "type": {"type": "string", "const": entry.name},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string", "description": f"The payload's `{entry.subject_field}`."},
            "datacontenttype": {"type": "string", "const": "application/json"},
            "data": data,
        },
    }
    return {
        "name": entry.name,
        "title": entry.data.__name__,
        "summary": entry.description,
        "headers": HEADERS,
        "payload": envelope,
    }


# The AMQP headers every event carries besides its envelope (application headers; user_id, message_id and type
# are AMQP properties).
HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "traceparent": {
            "type": "string",
            "description": "W3C trace context of the operation that caused the event (no tracestate, no baggage).",
        },
        PARTITION_HEADER: {
            "type": "string",
            "description": "The envelope's subject (the referral id), else its id: what a partitioned queue's "
            "consistent-hash exchange hashes on (AMQP_PARTITIONS).",
        },
    },
}
