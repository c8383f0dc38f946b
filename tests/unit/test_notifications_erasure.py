"""Erasure at notifications (issue 14 item 2), over the fake unit of work: `referral.erasure_requested.notifications`
forgets the referrer's reference, empties the referral's webhook bodies (a pending one is never sent), drops
stored responses naming it, and answers erasure.completed as the platform (provider_id None)."""

from __future__ import annotations

import uuid

import pytest
from test_notifications_handlers import REFERRER, intake_event, subscribed

from contracts import events
from services.notifications.handlers import subscriptions
from services.notifications.models import FAILED
from shared.clock import utcnow
from shared.inbox import EventHandlers
from support.events import arriving, payload
from support.fake_notifications import FakeNotificationsUnitOfWork

pytestmark = pytest.mark.unit


def erasure_requested(referral_id: str, erasure_id: str):
    data = {"referral_id": referral_id, "erasure_id": erasure_id, "recipient": "notifications"}
    return arriving(payload("referral.erasure_requested", **data, requested_at="2026-12-01T12:00:00+00:00"))


def test_a_referral_is_erased_here_and_a_repeat_answers_again():
    uow = FakeNotificationsUnitOfWork()
    handle = EventHandlers("notifications", uow, subscriptions(), trusted={"guest"})
    referral_id = str(uuid.uuid4())
    subscribed(uow, REFERRER, ["referral.received"])
    handle(intake_event("referral.received", referral_id))
    [delivery] = uow.deliveries.rows
    assert "REF-SYN-1" in delivery.payload and delivery.status == "pending"
    uow.responses.bodies = {"k1": f'{{"referral_id": "{referral_id}"}}'.encode(), "k2": b'{"id": "another"}'}

    event = erasure_requested(referral_id, "erasure-1")
    assert event.routing_key == "referral.erasure_requested.notifications"
    handle(event)
    handle(erasure_requested(referral_id, "erasure-2"))  # a repeat: answered again
    handle(erasure_requested("referral-never-seen", "erasure-3"))

    assert uow.owners.get(referral_id).external_reference is None
    assert (delivery.payload, delivery.status, delivery.traceparent) == ("", FAILED, None)
    assert list(uow.responses.bodies) == ["k2"] and uow.scrub_after_commit
    assert uow.deliveries.requeue_failed(delivery.subscription_id, utcnow().replace(year=2000), utcnow()) == 0
    first, second, unknown = uow.events(events.ErasureCompleted)
    assert (first.erasure_id, first.provider_id, first.recipient) == ("erasure-1", None, "notifications")
    assert {k.record for k in first.kept} == {"delivery_log", "referral_holder"} and second.kept == first.kept
    assert (unknown.referral_id, unknown.kept) == ("referral-never-seen", [])
    assert uow.routing_keys()[-1] == "erasure.completed"
