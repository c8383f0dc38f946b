"""notifications' erasure through the real broker (issue 14 item 2): the worker consumes
`referral.erasure_requested.notifications`, erases the referral's webhook bodies in one transaction with
erasure.completed in its new outbox, and its relay publishes that as the platform (provider_id null)."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select
from test_notifications_delivery import make_settings, referral_event, service  # noqa: F401 - the fixture

from contracts import events
from services.notifications.models import Delivery
from services.notifications.worker import build_loops
from support.amqp import declare_tap, drain, publish, running, wait_for_consumers
from support.events import arriving, payload

pytestmark = pytest.mark.integration


def test_the_worker_erases_and_relays_erasure_completed(service, amqp_url):  # noqa: F811 - the fixture
    service.subscribe("met-police", "https://hooks.met-police.example/in", ["referral.received"])
    received = referral_event()
    service.handle(received)  # a pending webhook about the referral, with the referrer's reference
    referral_id = received.subject
    tap = f"erasure-tap-{uuid.uuid4().hex[:8]}"
    declare_tap(amqp_url, tap, "erasure.completed")
    queue = f"notifications-erasure-{uuid.uuid4().hex[:8]}"
    loops = build_loops(make_settings(service.url, service.dev_keys, AMQP_URL=amqp_url), queue=queue)
    request = {"referral_id": referral_id, "erasure_id": str(uuid.uuid4()), "recipient": "notifications"}
    erasure = payload("referral.erasure_requested", **request, requested_at="2026-12-01T12:00:00+00:00")

    with running(loops["consumer"]), running(loops["relay"]):
        wait_for_consumers(amqp_url, queue)
        publish(amqp_url, arriving(erasure))  # as guest: intake's trusted platform user
        [(properties, body)] = drain(amqp_url, tap, expect=1)

    sent = json.loads(body)
    assert sent["type"] == "erasure.completed" and properties.user_id == "guest"
    assert {k: sent["data"][k] for k in ("referral_id", "erasure_id", "provider_id", "recipient")} == {
        **{k: request[k] for k in ("referral_id", "erasure_id")},
        "provider_id": None,
        "recipient": events.NOTIFICATIONS,
    }
    with service.sessions() as session:
        [delivery] = session.scalars(select(Delivery).where(Delivery.referral_id == referral_id))
    assert (delivery.payload, delivery.status) == ("", "failed")
