"""intake hearing a provider's answer, on the real broker and database: allocation, cascade, escalation,
and no effect twice when a worker dies between its commit and its ack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from services.intake.bootstrap import UseCases
from services.intake.models import Inbox, Offer, Outbox, Referral
from services.intake.worker import QUEUE
from shared.inbox import EventHandlers
from shared.messaging.consumer import Consumer, PermanentError
from shared.messaging.envelope import Event
from shared.messaging.topology import QueueSpec
from shared.testing import referral_body
from support.amqp import publish, running
from support.db import count
from support.events import ADVOCATE, answer, arriving, payload
from support.waiting import wait_until

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")


@pytest.fixture
def offered(intake, auth_header):
    """A referral offered to provider-a, with provider-b also eligible. Returns (referral id, offer id)."""
    app, sessions = intake
    client = app.test_client()
    for pid, capacity in (("provider-a", 9), ("provider-b", 5)):
        provider = {"name": pid, "regions": ["london"], "serves": ["adult"], "capacity": capacity}
        client.put(f"/v1/providers/{pid}", json=provider, headers=auth_header(*ADMIN))
    referral_id = client.post("/v1/referrals", json=referral_body(), headers=auth_header(*POLICE)).get_json()["id"]
    with sessions() as session:
        offer = session.scalars(select(Offer).where(Offer.referral_id == referral_id)).one()
    assert offer.provider_id == "provider-a"
    return referral_id, offer.id


def use_cases(intake) -> UseCases:
    """What the app was bootstrapped with: the handlers the worker runs, over the same units of work."""
    app, _ = intake
    return app.extensions["intake"].use_cases


def handle(intake, event: Event) -> None:
    use = use_cases(intake)
    EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})(event)


def outbox_types(sessions) -> list[str]:
    with sessions() as session:
        return [row.routing_key for row in session.scalars(select(Outbox).order_by(Outbox.created_at))]


def test_an_accepted_offer_allocates_the_referral_and_announces_it(intake, offered):
    _, sessions = intake
    referral_id, offer_id = offered
    handle(intake, answer("offer.accepted", referral_id, offer_id))
    with sessions() as session:
        referral = session.get(Referral, referral_id)
    assert (referral.status, referral.provider_id, referral.case_id) == ("allocated", "provider-a", "case-1")
    assert referral.advocate == ADVOCATE
    # The referrer hears of it, and only the provider that accepted is told to open its case.
    assert outbox_types(sessions)[-2:] == ["referral.allocated", "allocation.confirmed.provider-a"]


def test_a_declined_offer_moves_to_the_next_provider_then_escalates_when_none_is_left(intake, offered):
    _, sessions = intake
    referral_id, offer_id = offered
    handle(intake, answer("offer.declined", referral_id, offer_id, reason="no_capacity"))
    with sessions() as session:
        second = session.scalars(select(Offer).where(Offer.status == "pending")).one()
    assert second.provider_id == "provider-b"
    assert outbox_types(sessions)[-1] == "referral.offered.provider-b"
    handle(intake, answer("offer.declined", referral_id, second.id, provider="provider-b", reason="not_contactable"))
    with sessions() as session:
        assert session.get(Referral, referral_id).status == "escalated"
        last = session.scalars(select(Outbox).order_by(Outbox.created_at.desc())).first()
    assert last.type == "referral.escalated" and json.loads(last.payload)["data"]["reason"] == "none_accepted"


def test_an_answer_naming_another_providers_offer_is_rejected_as_permanent(intake, offered):
    _, sessions = intake
    referral_id, offer_id = offered
    with pytest.raises(PermanentError):
        handle(intake, answer("offer.accepted", referral_id, offer_id, provider="provider-b"))
    with sessions() as session:
        assert session.get(Referral, referral_id).status == "offered"


def test_a_worker_killed_after_its_commit_and_before_its_ack_causes_no_second_effect(intake, offered, amqp_url):
    _, sessions = intake
    referral_id, offer_id = offered
    database_url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    accepted = answer("offer.accepted", referral_id, offer_id)

    crashing = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "support" / "crash_after_commit.py"),
            amqp_url,
            database_url,
        ]
    )
    try:
        wait_until(lambda: _consumers(amqp_url, QUEUE) == 1, timeout=30)
        publish(amqp_url, accepted)
        assert crashing.wait(timeout=30) == 17, "the worker should die right after its commit"
    finally:
        if crashing.poll() is None:
            crashing.kill()
    assert count(sessions, Outbox, Outbox.type == "referral.allocated") == 1

    seen: list[str] = []
    use = use_cases(intake)
    inner = EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})

    def recording(event: Event) -> None:
        inner(event)
        seen.append(event.id)

    consumer = Consumer(amqp_url, QueueSpec(QUEUE, use.handlers.bindings, retry_delay_ms=100), recording)
    with running(consumer.run):
        wait_until(lambda: accepted.id in seen, timeout=30)  # the broker redelivered the unacked message
    assert count(sessions, Outbox, Outbox.type == "referral.allocated") == 1
    assert count(sessions, Inbox) == 1


def _consumers(url: str, queue: str) -> int:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        if connection.is_open:
            connection.close()


def test_a_provider_handover_moves_the_allocation_so_the_receiving_provider_may_read_the_referral(
    intake, offered, auth_header
):
    app, sessions = intake
    referral_id, offer_id = offered
    handle(intake, answer("offer.accepted", referral_id, offer_id))

    def moved(sender: str) -> Event:
        handed = payload("case.handed_over", referral_id=referral_id, case_id="case-1", from_provider_id=sender,
                         to_provider_id="provider-b")  # fmt: skip
        return arriving(handed, publisher=f"advocacy-{sender}")

    with pytest.raises(PermanentError, match="does not hold"):
        handle(intake, moved("provider-b"))  # provider-b speaking for itself about a referral it does not hold
    handle(intake, moved("provider-a"))
    with sessions() as session:
        referral = session.get(Referral, referral_id)
    assert (referral.status, referral.provider_id, referral.case_id) == ("allocated", "provider-b", None)
    assert outbox_types(sessions)[-2:] == ["referral.transferred", "allocation.transferred.provider-b"]
    client = app.test_client()
    path = f"/v1/referrals/{referral_id}"
    assert client.get(path, headers=auth_header("provider-a", "provider", "referrals:read")).status_code == 404
    response = client.get(path, headers=auth_header("provider-b", "provider", "referrals:read"))
    assert response.status_code == 200 and response.get_json()["subject"]["given_name"]
