"""A charity cannot forge events against another, on the real broker with the restricted users
deploy/rabbitmq/add-provider.sh makes. Charity B publishes, as its own user and under routing keys its
permissions allow, the forgeries once seen against charity A (an intake event in a handover's clothes, an
event whose body type is not its key's, a breached clock about A's case). A's own worker and notifications'
worker park each one with its reason: A's case stays open, no offer is planted, no webhook is queued.

And a charity receives only what is addressed to it: B's queue, bound as B's worker binds it, gets nothing
while a referral is offered to A, allocated to A and withdrawn."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import uuid

import pika
import pytest
from sqlalchemy import func, select

from contracts.events import ADVOCACY, CATALOGUE
from services.advocacy.models import Case, Offer
from services.advocacy.models import Outbox as AdvocacyOutbox
from services.advocacy.worker import build_loops as advocacy_loops
from services.intake.models import Offer as IntakeOffer
from services.intake.models import Outbox as IntakeOutbox
from services.intake.worker import QUEUE as INTAKE_QUEUE
from services.notifications.domain import EVENT_TYPES
from services.notifications.models import Delivery
from services.notifications.worker import build_loops as notifications_loops
from shared.config import Settings
from shared.inbox import EventHandlers
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Event
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import QueueSpec, declare_queue
from shared.testing import referral_body
from support.advocacy import FakeIntake, Instance, add_advocate, confirmed, deliver, offered
from support.amqp import drain, publish, running, wait_for_consumers
from support.apps import dispose, service_app
from support.events import answer, arriving, payload

pytestmark = pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl for the broker under test")

REFERRER = "met-police"
NOTIFICATIONS_QUEUE = f"notifications-forgeries-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def charity_a(providers, fresh_database, dev_keys, auth_header):
    """Charity A's instance with an open case, on its own database."""
    a_id, _ = providers["a"]
    url = fresh_database("advocacy")
    app = service_app("advocacy", url, dev_keys, PROVIDER_ID=a_id)
    headers = auth_header(a_id, "provider", "offers:respond cases:read cases:write")
    instance = Instance(app.test_client(), app.extensions["advocacy"], headers)
    add_advocate(instance)
    deliver(instance, offered(provider_id=a_id), auto_accept=True)
    [case] = instance.client.get("/v1/cases", headers=headers).get_json()
    case = instance.client.get(f"/v1/cases/{case['id']}", headers=headers).get_json()
    deliver(instance, confirmed(case, provider_id=a_id), intake=FakeIntake())
    yield instance, url, case
    instance.advocacy.engine.dispose()


@pytest.fixture
def notifications(fresh_database, dev_keys, auth_header, charity_a, providers):
    """notifications knows intake allocated A's referral to A, and the referrer subscribes to every webhook."""
    a_id, _ = providers["a"]
    _, _, case = charity_a
    url = fresh_database("notifications")
    app = service_app("notifications", url, dev_keys, WEBHOOK_ALLOW_PRIVATE="true")
    client, sessions = app.test_client(), app.extensions["notifications"].sessions
    body = {"url": "http://127.0.0.1:9/met-police", "events": list(EVENT_TYPES)}
    headers = auth_header(REFERRER, "police", "subscriptions:write")
    assert client.post("/v1/subscriptions", json=body, headers=headers).status_code == 201
    allocation = payload(
        "referral.allocated",
        referral_id=case["referral_id"],
        org_id=REFERRER,
        external_reference="MET-SYN-4",
        status="allocated",
        provider_id=a_id,
        case_id=case["id"],
    )
    app.extensions["notifications"].handlers(arriving(allocation))
    with sessions.begin() as session:
        session.execute(Delivery.__table__.delete())  # the allocation's own webhook: not what is under test
    yield url, sessions
    dispose(app)


def forged(data, *, publisher: str, **overrides) -> Event:
    """What B sends: a real payload under a type, source or key it may not use."""
    return dataclasses.replace(arriving(data, publisher=publisher), **overrides)


def test_four_forgeries_by_another_charity_change_nothing_and_send_no_webhook(
    providers, charity_a, notifications, amqp_url
):
    (a_id, a_url), (b_id, b_url) = providers["a"], providers["b"]
    instance, a_database, case = charity_a
    notifications_database, notifications_sessions = notifications
    referral_id = case["referral_id"]
    b_user = f"advocacy-{b_id}"
    withdrawal = payload(
        "referral.withdrawn",
        referral_id=referral_id,
        org_id=REFERRER,
        external_reference="MET-SYN-4",
        status="withdrawn",
        provider_id=a_id,
    )
    planted = offered(provider_id=a_id)
    breached = {
        "referral_id": referral_id,
        "case_id": case["id"],
        "clock_id": "k-1",
        "kind": "recovery_period",
        "status": "breached",
        "due_on": "2026-03-01",
        "notice_on": "2026-02-22",
    }
    handover_key = f"case.handover.{a_id}"  # B may hand a case to A
    forgeries = [  # (routing key, event): each key is one B's permissions allow
        # 1. an intake event under a handover's key: once closed A's case
        (handover_key, forged(withdrawal, publisher=b_user)),
        # 2. an offer under a handover's key: once planted an offer A auto-accepted
        (handover_key, dataclasses.replace(planted, publisher=b_user)),
        # 3. a provider's key with an intake event's body: once sent a signed referral.withdrawn webhook
        ("case.opened", forged(withdrawal, publisher=b_user)),
        # 4. a breached clock about A's case, in A's name and in B's own
        ("clock.breached", forged(payload("clock.breached", provider_id=a_id, **breached), publisher=b_user)),
        ("clock.breached", forged(payload("clock.breached", provider_id=b_id, **breached), publisher=b_user)),
    ]
    advocacy_settings = Settings.from_env(
        "advocacy",
        env={
            "ADVOCACY_DATABASE_URL": a_database,
            "PROVIDER_ID": a_id,
            "AUTO_ACCEPT": "true",
            "AMQP_URL": a_url,  # A's own worker, as A's restricted user
            "AMQP_DECLARE_EXCHANGES": "false",
            "AMQP_TRUSTED_PUBLISHERS": "guest",  # intake's user on this broker
        },
    )
    notifications_settings = Settings.from_env(
        "notifications",
        env={
            "NOTIFICATIONS_DATABASE_URL": notifications_database,
            "AMQP_URL": amqp_url,
            "WEBHOOK_ALLOW_PRIVATE": "true",
        },
    )
    a_loops = advocacy_loops(advocacy_settings, intake=FakeIntake())
    n_loops = notifications_loops(notifications_settings, queue=NOTIFICATIONS_QUEUE)
    with running(a_loops["consumer"]), running(n_loops["consumer"]):
        wait_for_consumers(amqp_url, f"advocacy.{a_id}", NOTIFICATIONS_QUEUE)
        for key, event in forgeries:
            publish(b_url, event, routing_key=key)  # as B's user: RabbitMQ stamps and checks user_id
        parked_at_a = drain(amqp_url, f"advocacy.{a_id}.parking", expect=2, timeout=30)
        parked_at_n = drain(amqp_url, f"{NOTIFICATIONS_QUEUE}.parking", expect=3, timeout=30)

    reasons = sorted(p.headers["x-parked-reason"] for p, _ in parked_at_a + parked_at_n)
    assert {json.loads(body)["id"] for _, body in parked_at_a + parked_at_n} == {e.id for _, e in forgeries}
    assert len(parked_at_a) == 2 and len(parked_at_n) == 3, reasons
    assert sum("routing key does not match event type referral." in r for r in reasons) == 3
    assert any(f"may not publish clock.breached for provider {a_id}" in r for r in reasons)
    assert any(f"provider {b_id} does not hold referral {referral_id}" in r for r in reasons)
    with instance.sessions() as session:
        assert session.get(Case, case["id"]).status == "open"
        assert session.scalar(select(func.count()).select_from(Offer)) == 1  # no planted offer
        staged = session.scalars(select(AdvocacyOutbox.type).where(AdvocacyOutbox.type == "offer.accepted")).all()
        assert len(staged) == 1  # A's own acceptance only: nothing auto-accepted since
    with notifications_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0  # no webhook can leave


# What the platform publishes last about A's referral: once the tap has these, B's queue would hold anything
# addressed to it (then it is given 2 s more).
LAST_WORDS = {"referral.allocated", "referral.withdrawn", "allocation.confirmed"}


def tapped(url: str, tap: str, wanted: set[str], timeout: float = 10.0) -> list:
    """The tap's messages until it holds every type in `wanted` (or `timeout`), and what follows within 0.5 s."""
    seen: list = []
    deadline = time.monotonic() + timeout
    while not wanted <= {p.type for p, _ in seen} and time.monotonic() < deadline:
        seen += drain(url, tap, expect=1, timeout=deadline - time.monotonic())
    return seen + drain(url, tap, expect=100, timeout=0.5)


def test_a_second_charitys_queue_receives_nothing_about_the_firsts_referral(providers, intake, auth_header, amqp_url):
    (a_id, a_url), (b_id, b_url) = providers["a"], providers["b"]
    app, sessions = intake
    client = app.test_client()
    admin = auth_header("platform", "coordinator", "providers:admin")
    directory = {"name": "A", "regions": ["london"], "serves": ["adult"], "capacity": 3}
    assert client.put(f"/v1/providers/{a_id}", json=directory, headers=admin).status_code in (200, 201)
    queues = {}
    for provider_id, url in ((a_id, a_url), (b_id, b_url)):  # each declared and bound by its own user
        bindings = CATALOGUE.bindings(ADVOCACY, provider_id)
        spec = QueueSpec(f"advocacy.{provider_id}", bindings, declare_exchanges=False)
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            declare_queue(connection.channel(), spec)
        queues[provider_id] = spec.name
    tap = f"tap.{uuid.uuid4().hex[:8]}"  # everything published, so that B's silence is not an idle broker's
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_declare(tap)
        channel.queue_bind(tap, "referrals", routing_key="#")

    use = app.extensions["intake"].use_cases  # the app's own handlers, over its units of work
    consumer = Consumer(
        amqp_url,
        QueueSpec(INTAKE_QUEUE, use.handlers.bindings, retry_delay_ms=100),
        EventHandlers(INTAKE_QUEUE, use.units, use.handlers, trusted={"guest"}),
    )
    relay = OutboxRelay(amqp_url, sessions, IntakeOutbox, name="intake", poll_interval=0.05)
    police = auth_header(REFERRER, "police", "referrals:write referrals:read")
    with running(consumer.run), running(relay.run):
        referral_id = client.post("/v1/referrals", json=referral_body(), headers=police).get_json()["id"]
        [(properties, _)] = drain(amqp_url, queues[a_id], expect=1)
        assert properties.type == "referral.offered"
        with sessions() as session:
            offer_id = session.scalars(select(IntakeOffer.id).where(IntakeOffer.referral_id == referral_id)).one()
        wait_for_consumers(amqp_url, INTAKE_QUEUE)
        publish(a_url, answer("offer.accepted", referral_id, offer_id, a_id))
        confirmed = drain(amqp_url, queues[a_id], expect=1, timeout=30)
        parked = [p.headers.get("x-parked-reason") for p, _ in drain(amqp_url, f"{INTAKE_QUEUE}.parking", timeout=0.5)]
        assert [p.type for p, _ in confirmed] == ["allocation.confirmed"], parked
        assert client.post(f"/v1/referrals/{referral_id}/withdrawal", headers=police).status_code == 200
        [(properties, _)] = drain(amqp_url, queues[a_id], expect=1)
        assert properties.type == "offer.withdrawn"
        seen = tapped(amqp_url, tap, LAST_WORDS)
    published = sorted(p.type for p, _ in seen)
    assert set(published) >= LAST_WORDS, published
    assert drain(amqp_url, queues[b_id], expect=1, timeout=2) == []  # B heard nothing of A's referral
