"""Following one referral across the services in-process, on the real broker: each service's staged events are
relayed from its outbox to RabbitMQ and taken from a queue bound to their routing key (as their consumers
receive them, with the publisher RabbitMQ validated), and advocacy reads the referral from the intake app
under test."""

from __future__ import annotations

import dataclasses
import uuid

import pika

from shared.messaging.envelope import Event
from shared.messaging.relay import OutboxRelay
from support.amqp import declare_tap, drain, running


def relayed(amqp_url: str, sessions, outbox, *keys: str) -> dict[str, Event]:
    """The events staged under `keys` (one each), relayed to the real broker and taken from a queue of the
    caller's own bound to each key (deleted after), with the publisher RabbitMQ validated."""
    taps = {key: f"flow-test.{uuid.uuid4().hex[:8]}.{key}" for key in keys}
    for key, tap in taps.items():
        declare_tap(amqp_url, tap, key)
    relay = OutboxRelay(amqp_url, sessions, outbox, name="flow-test", poll_interval=0.05)
    try:
        with running(relay.run):
            got = {key: drain(amqp_url, tap, expect=1)[0] for key, tap in taps.items()}
    finally:
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            channel = connection.channel()
            for tap in taps.values():
                channel.queue_delete(tap)
    return {
        key: dataclasses.replace(Event.from_json(body), routing_key=key, publisher=properties.user_id)
        for key, (properties, body) in got.items()
    }


class IntakeOverHttp:
    """advocacy's intake client, answered by the intake app under test with the provider's own token."""

    def __init__(self, client, headers):
        self.client, self.headers = client, headers

    def fetch_referral(self, referral_id: str, *, purpose: str | None = None) -> dict:
        query = {"purpose": purpose} if purpose else None
        response = self.client.get(f"/v1/referrals/{referral_id}", headers=self.headers, query_string=query)
        assert response.status_code == 200, response.get_json()
        return response.get_json()
