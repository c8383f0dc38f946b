"""Each charity's instance has its own broker user (deploy/rabbitmq/add-provider.sh). On the real broker:
provider B cannot consume, bind to, purge or delete provider A's queue, cannot listen for A's offers,
cannot publish intake's events, and an answer it forges in A's name is refused by intake and parked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import uuid

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy import select

from contracts.events import ADVOCACY, CATALOGUE
from services.intake.models import Offer, Referral
from services.intake.worker import QUEUE
from shared.inbox import EventHandlers
from shared.messaging import EXCHANGE, PARKING_EXCHANGE, REQUEUE_EXCHANGE, RETRY_EXCHANGE
from shared.messaging.consumer import Consumer
from shared.messaging.topology import QueueSpec, declare_exchanges, declare_queue
from shared.testing import referral_body
from support.amqp import drain, running, wait_for_consumers
from support.events import answer
from support.infra import ADD_PROVIDER, add_provider

pytestmark = pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl for the broker under test")


def own_queue(url: str, provider_id: str) -> QueueSpec:
    """A charity's queue as its worker declares it: bound to the events addressed to it (the catalogue's)."""
    bindings = CATALOGUE.bindings(ADVOCACY, provider_id)
    assert bindings and all(key.endswith(f".{provider_id}") for key in bindings)
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
    for unaddressed in ("referral.allocated", "referral.withdrawn", "referral.transferred"):  # notifications' only
        assert refused(b_url, lambda ch, key=unaddressed: ch.queue_bind(b_queue, EXCHANGE, routing_key=key)) == 403
    for addressed_to_a in ("offer.withdrawn", "allocation.confirmed", "allocation.transferred", "case.handover"):
        key = f"{addressed_to_a}.{a_id}"
        assert refused(b_url, lambda ch, key=key: ch.queue_bind(b_queue, EXCHANGE, routing_key=key)) == 403
    forged = pika.BasicProperties(user_id=f"advocacy-{b_id}")
    for intakes in ("referral.allocated", f"allocation.confirmed.{a_id}", f"referral.offered.{a_id}", "case.spoof"):
        assert refused(b_url, lambda ch, key=intakes: ch.basic_publish(EXCHANGE, key, b"{}", forged)) == 403
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

    use = app.extensions["intake"].use_cases
    handlers = EventHandlers(QUEUE, use.units, use.handlers, trusted={"guest"})
    consumer = Consumer(amqp_url, QueueSpec(QUEUE, use.handlers.bindings, retry_delay_ms=100), handlers)
    forger = {"name": "Advocate Synthetic-Forger", "email": "forger@b.example"}
    forged = answer("offer.accepted", referral_id, offer_id, a_id, publisher=f"advocacy-{b_id}", advocate=forger)
    with running(consumer.run):
        wait_for_consumers(amqp_url, QUEUE)
        with pika.BlockingConnection(pika.URLParameters(b_url)) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            properties = pika.BasicProperties(
                message_id=forged.id, type=forged.type, delivery_mode=2, user_id=f"advocacy-{b_id}"
            )  # B's own user (RabbitMQ would refuse another user_id), speaking for A
            channel.basic_publish(EXCHANGE, "offer.accepted", forged.to_json(), properties, mandatory=True)
        parked = drain(amqp_url, f"{QUEUE}.parking", expect=1, timeout=30)
    assert len(parked) == 1
    assert f"may not publish offer.accepted for provider {a_id}" in parked[0][0].headers["x-parked-reason"]
    assert json.loads(parked[0][1])["id"] == forged.id
    with sessions() as session:
        assert session.get(Referral, referral_id).status == "offered"


def test_a_provider_event_added_to_the_catalogue_is_publishable_with_no_edit_to_the_script(amqp_url, tmp_path):
    # The catalogue as a later issue extends it: one more provider event, defined where events are defined.
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            from contracts.events import CaseNews, case_news

            @case_news("case.reviewed", "A new provider event, as a later issue would add.")
            class CaseReviewed(CaseNews, frozen=True):
                pass
            """
        )
    )
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as platform:
        declare_exchanges(platform.channel())
    provider_id = f"new-{uuid.uuid4().hex[:6]}"
    url = add_provider(amqp_url, provider_id, PYTHONPATH=str(tmp_path))
    try:
        as_provider = pika.BasicProperties(user_id=f"advocacy-{provider_id}")
        assert refused(url, lambda ch: ch.basic_publish(EXCHANGE, "case.reviewed", b"{}", as_provider)) == 0
        assert refused(url, lambda ch: ch.basic_publish(EXCHANGE, "case.unheard_of", b"{}", as_provider)) == 403
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", f"advocacy-{provider_id}"], capture_output=True, timeout=60)
    # Without the addition, the same user may not publish it.
    url = add_provider(amqp_url, provider_id)
    try:
        assert refused(url, lambda ch: ch.basic_publish(EXCHANGE, "case.reviewed", b"{}", as_provider)) == 403
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_user", f"advocacy-{provider_id}"], capture_output=True, timeout=60)


def test_add_provider_says_what_to_do_when_it_cannot_read_the_catalogue(amqp_url):
    result = subprocess.run(
        [str(ADD_PROVIDER), "some-charity"],
        env={**os.environ, "CATALOGUE_PYTHON": "/bin/false", "RABBITMQ_VHOST": "/"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "could not read the event catalogue" in result.stderr and "make venv" in result.stderr
    assert "created broker user" not in result.stdout  # it stopped before touching the broker
