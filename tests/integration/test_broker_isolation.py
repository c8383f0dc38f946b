"""Each charity's instance has its own broker user (deploy/rabbitmq/add-provider.sh). On the real broker:
provider B cannot consume, bind to, purge or delete provider A's queue, cannot listen for A's offers,
cannot publish intake's events, and an answer it forges in A's name is refused by intake and parked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy import select

from services.intake.domain import ResponsePolicy
from services.intake.handlers import make_handlers
from services.intake.models import Inbox, Offer, Referral
from services.intake.offers import Router
from services.intake.worker import BINDINGS, QUEUE
from shared.inbox import EventHandlers
from shared.messaging import EXCHANGE, PARKING_EXCHANGE, REQUEUE_EXCHANGE, RETRY_EXCHANGE
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Event
from shared.messaging.topology import QueueSpec, declare_exchanges, declare_queue
from shared.testing import referral_body
from support.amqp import drain, running

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "add-provider.sh"
pytestmark = pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl for the broker under test")


@pytest.fixture
def providers(amqp_url):
    """Two charities with their own broker users on the test's vhost, made by the project's script."""
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:]) or "/"
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as platform:
        declare_exchanges(platform.channel())
    suffix = uuid.uuid4().hex[:6]
    made = {}
    for name in ("a", "b"):
        provider_id, password = f"iso-{name}-{suffix}", uuid.uuid4().hex
        env = {**os.environ, "RABBITMQ_VHOST": vhost, "PROVIDER_AMQP_PASSWORD": password}
        result = subprocess.run([str(SCRIPT), provider_id], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        netloc = f"advocacy-{provider_id}:{password}@{parts.hostname}:{parts.port or 5672}"
        made[name] = (provider_id, parts._replace(netloc=netloc).geturl())
    yield made
    for provider_id, _ in made.values():
        subprocess.run(["rabbitmqctl", "-q", "delete_user", f"advocacy-{provider_id}"], capture_output=True, timeout=60)


def own_queue(url: str, provider_id: str) -> QueueSpec:
    bindings = (f"referral.offered.{provider_id}", f"offer.expired.{provider_id}", "referral.allocated")
    return QueueSpec(f"advocacy.{provider_id}", bindings, declare_exchanges=False)


def refused(url: str, attempt) -> int:
    """Run `attempt(channel)` as that user; return the broker's reply code (0 if it was allowed)."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            attempt(channel)
        except ChannelClosedByBroker as exc:
            return exc.reply_code
        return 0


def test_a_provider_cannot_touch_another_providers_queue(providers):
    (a_id, a_url), (b_id, b_url) = providers["a"], providers["b"]
    assert refused(a_url, lambda ch: declare_queue(ch, own_queue(a_url, a_id))) == 0  # its own: allowed
    assert refused(b_url, lambda ch: declare_queue(ch, own_queue(b_url, b_id))) == 0
    a_queue = f"advocacy.{a_id}"

    assert refused(b_url, lambda ch: ch.basic_consume(a_queue, lambda *args: None)) == 403
    assert refused(b_url, lambda ch: ch.basic_get(a_queue)) == 403
    assert refused(b_url, lambda ch: ch.queue_purge(a_queue)) == 403
    assert refused(b_url, lambda ch: ch.queue_bind(a_queue, EXCHANGE, routing_key="referral.offered.x")) == 403
    assert refused(b_url, lambda ch: ch.queue_delete(a_queue)) == 403
    assert refused(b_url, lambda ch: ch.exchange_delete(EXCHANGE)) == 403
    for side_door in (RETRY_EXCHANGE, REQUEUE_EXCHANGE, PARKING_EXCHANGE):  # into A's queues another way
        assert refused(b_url, lambda ch, x=side_door: ch.basic_publish(x, a_queue, b"{}")) == 403


def test_a_provider_cannot_listen_for_another_providers_offers_or_speak_as_intake(providers):
    (a_id, _), (b_id, b_url) = providers["a"], providers["b"]
    b_queue = f"advocacy.{b_id}"
    refused(b_url, lambda ch: declare_queue(ch, own_queue(b_url, b_id)))
    assert refused(b_url, lambda ch: ch.queue_bind(b_queue, EXCHANGE, routing_key=f"referral.offered.{a_id}")) == 403
    assert refused(b_url, lambda ch: ch.queue_bind(b_queue, EXCHANGE, routing_key="#")) == 403
    forged = pika.BasicProperties(user_id=f"advocacy-{b_id}")
    assert refused(b_url, lambda ch: ch.basic_publish(EXCHANGE, "referral.allocated", b"{}", forged)) == 403
    impersonating = pika.BasicProperties(user_id=f"advocacy-{a_id}")
    assert refused(b_url, lambda ch: ch.basic_publish(EXCHANGE, "offer.accepted", b"{}", impersonating)) == 406


def test_an_answer_forged_in_another_providers_name_is_refused_and_parked(providers, intake, auth_header, amqp_url):
    (a_id, _), (b_id, b_url) = providers["a"], providers["b"]
    app, sessions = intake
    admin = auth_header("platform", "coordinator", "providers:admin")
    provider = {"name": "A", "regions": ["london"], "serves": ["adult"], "capacity": 3}
    app.test_client().put(f"/v1/providers/{a_id}", json=provider, headers=admin)
    police = auth_header("met-police", "police", "referrals:write referrals:read")
    referral_id = app.test_client().post("/v1/referrals", json=referral_body(), headers=police).get_json()["id"]
    with sessions() as session:
        offer_id = session.scalars(select(Offer.id).where(Offer.referral_id == referral_id)).one()

    handlers = EventHandlers(QUEUE, sessions, Inbox, make_handlers(Router(ResponsePolicy()), trusted={"guest"}))
    consumer = Consumer(amqp_url, QueueSpec(QUEUE, BINDINGS, retry_delay_ms=100), handlers)
    forged = Event(
        type="offer.accepted",
        source=f"/advocacy/{a_id}",
        subject=referral_id,
        data={"referral_id": referral_id, "offer_id": offer_id, "provider_id": a_id, "case_id": "forged"},
    )
    with running(consumer.run):
        _wait_for_consumer(amqp_url, QUEUE)
        with pika.BlockingConnection(pika.URLParameters(b_url)) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            properties = pika.BasicProperties(
                message_id=forged.id, type=forged.type, delivery_mode=2, user_id=f"advocacy-{b_id}"
            )
            channel.basic_publish(EXCHANGE, "offer.accepted", forged.to_json(), properties, mandatory=True)
        parked = drain(amqp_url, f"{QUEUE}.parking", expect=1, timeout=30)
    assert len(parked) == 1
    assert "may not speak for provider" in parked[0][0].headers["x-parked-reason"]
    assert json.loads(parked[0][1])["id"] == forged.id
    with sessions() as session:
        assert session.get(Referral, referral_id).status == "offered"


def _wait_for_consumer(url: str, queue: str) -> None:
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            try:
                if connection.channel().queue_declare(queue, passive=True).method.consumer_count:
                    return
            except ChannelClosedByBroker:
                pass
        time.sleep(0.1)
    raise AssertionError(f"no consumer on {queue}")
