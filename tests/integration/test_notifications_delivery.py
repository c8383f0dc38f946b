"""From event to signed webhook, against real PostgreSQL and RabbitMQ and a local HTTP receiver."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pika
import pytest
from opentelemetry import trace
from sqlalchemy import select
from standardwebhooks import Webhook

from services.migrate import migrate
from services.notifications.app import create_app
from services.notifications.bootstrap import bootstrap
from services.notifications.config import WebhookSettings
from services.notifications.dispatcher import WebhookDispatcher
from services.notifications.domain import UnsafeWebhookUrl
from services.notifications.egress import UrlGuard, webhook_session
from services.notifications.handlers import UnknownReferral, on_referral_news
from services.notifications.models import Delivery, Subscription
from services.notifications.subscriptions import subscribe
from services.notifications.worker import build_loops
from shared.clock import utcnow
from shared.config import Settings
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.messaging.worker import run_loops
from shared.telemetry import carrier_from_current
from support.amqp import drain, publish, running, wait_for_consumers
from support.events import arriving, payload
from support.waiting import wait_until

WRITE = "subscriptions:write"
RESPONSE_MARKER = "receiver-body-must-never-be-stored"


# --- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture
def receiver():
    """A webhook receiver on 127.0.0.1: records requests; `reply` sets (status, extra headers, delay)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(
                {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            )
            status, headers, delay = server.reply
            time.sleep(delay)
            payload = json.dumps({"echo": RESPONSE_MARKER}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.reply = (204, {}, 0.0)
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/referrals"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def make_settings(database_url: str, dev_keys, **env: str) -> Settings:
    return Settings.from_env(
        "notifications",
        {
            "NOTIFICATIONS_DATABASE_URL": database_url,
            "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_RETRY_SCHEDULE": "0,0",
            "WEBHOOK_TIMEOUT_SECONDS": "5",
            **env,
        },
    )


@pytest.fixture
def service(fresh_database, dev_keys, auth_header):
    url = fresh_database("notifications")
    migrate("notifications", url)
    settings = make_settings(url, dev_keys)
    notifications = bootstrap(settings)  # one composition root for the API and the handlers, as in production
    client = create_app(notifications=notifications).test_client()
    sessions = notifications.sessions

    def subscribe(org: str, url: str, events: list[str]) -> dict:
        response = client.post(
            "/v1/subscriptions",
            json={"url": url, "events": events},
            headers=auth_header(org, "police", WRITE),
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def deliveries(**where) -> list[Delivery]:
        with sessions() as session:
            query = select(Delivery).filter_by(**where).order_by(Delivery.created_at, Delivery.id)
            return list(session.scalars(query))

    yield SimpleNamespace(
        url=url,
        dev_keys=dev_keys,
        client=client,
        sessions=sessions,
        units=notifications.units,
        dispatcher=notifications.dispatcher,
        handle=notifications.handlers,
        subscribe=subscribe,
        deliveries=deliveries,
        headers=lambda org="met-police": auth_header(org, "police", WRITE),
    )
    notifications.engine.dispose()


# What each of intake's webhook types adds to the referral's ids and status (contracts.events).
REFERRAL_FIELDS = {
    "referral.received": {"status": "received", "pathway": "nrm", "is_child": False, "region": "london"},
    "referral.allocated": {"status": "allocated", "provider_id": "charity-a", "case_id": "case-1"},
    "referral.withdrawn": {"status": "withdrawn"},
}


def referral_event(
    event_type: str = "referral.received", *, org: str = "met-police", referral_id: str | None = None, **data
) -> Event:
    """intake's event about a referral, as it arrives from intake's broker user."""
    fields = {**REFERRAL_FIELDS[event_type], **data}
    news = payload(
        event_type, referral_id=referral_id or str(uuid.uuid4()), org_id=org, external_reference="REF-SYN-1", **fields
    )
    return arriving(news)


def case_opened(referral_id: str, provider_id: str = "charity-a") -> Event:
    """A provider's case.opened, as it arrives from that provider's own broker user."""
    opened = payload("case.opened", referral_id=referral_id, case_id="case-1", provider_id=provider_id)
    return arriving(opened, publisher=f"advocacy-{provider_id}")


def trace_id_of(traceparent: str) -> str:
    return traceparent.split("-")[1]


# --- the handler ------------------------------------------------------------------------------------


def test_one_delivery_per_matching_subscription_of_the_referring_org_only(service, receiver):
    received_a = service.subscribe("met-police", receiver.url, ["referral.received", "case.opened"])
    received_b = service.subscribe("met-police", receiver.url + "/b", ["referral.received"])
    service.subscribe("met-police", receiver.url, ["case.opened"])  # other event type
    service.subscribe("kent-police", receiver.url, ["referral.received"])  # other org

    event = referral_event()
    service.handle(event)

    deliveries = service.deliveries(event_id=event.id)
    assert sorted(d.subscription_id for d in deliveries) == sorted([received_a["id"], received_b["id"]])
    assert {d.org_id for d in deliveries} == {"met-police"}
    assert {d.status for d in deliveries} == {"pending"}
    body = json.loads(deliveries[0].payload)
    assert body == {
        "type": "referral.received",
        "timestamp": event.time,
        "data": {
            "referral_id": event.subject,
            "external_reference": "REF-SYN-1",
            "status": "received",
            "pathway": "nrm",
            "is_child": False,
        },
    }
    assert {d.webhook_id for d in deliveries} == {f"msg_{event.id}_{s['id']}" for s in (received_a, received_b)}


def test_an_event_carrying_a_name_is_parked_before_any_webhook_is_queued(service, receiver):
    service.subscribe("met-police", receiver.url, ["referral.received"])
    event = referral_event()
    forged = dataclasses.replace(event, data={**event.data, "given_name": "Synthetic-Kalox", "dob": "1990-01-01"})
    with pytest.raises(PermanentError, match="does not match its schema") as refused:
        service.handle(forged)
    assert "Synthetic-Kalox" not in str(refused.value) and "1990-01-01" not in str(refused.value)
    assert service.deliveries() == []


def test_a_redelivered_event_has_no_second_effect(service, receiver):
    service.subscribe("met-police", receiver.url, ["referral.received"])
    event = referral_event()
    service.handle(event)
    service.handle(event)  # the broker redelivers: the inbox drops it
    accepted, _ = service.handle.accept(event)
    with service.units() as uow:  # even past the inbox, one delivery per (subscription, event) holds
        on_referral_news(uow, accepted)
    assert len(service.deliveries(event_id=event.id)) == 1


def test_a_providers_event_is_routed_by_the_remembered_referral_and_taken_only_from_its_holder(service, receiver):
    subscription = service.subscribe("met-police", receiver.url, ["case.opened"])
    referral_id = str(uuid.uuid4())
    with pytest.raises(UnknownReferral):
        service.handle(case_opened(referral_id))  # intake's events have not arrived yet: retried later
    service.handle(referral_event(referral_id=referral_id))
    with pytest.raises(UnknownReferral):
        service.handle(case_opened(referral_id))  # received, but nobody holds it yet
    assert service.deliveries() == []

    service.handle(referral_event("referral.allocated", referral_id=referral_id))
    with pytest.raises(PermanentError, match="does not hold"):
        service.handle(case_opened(referral_id, provider_id="charity-b"))  # its own user, another's referral
    service.handle(case_opened(referral_id))

    [delivery] = service.deliveries(event_type="case.opened")
    assert delivery.subscription_id == subscription["id"]
    assert json.loads(delivery.payload)["data"] == {
        "referral_id": referral_id,
        "external_reference": "REF-SYN-1",
        "status": "open",
        "provider_id": "charity-a",
        "case_id": "case-1",
    }


def test_an_event_claiming_another_org_for_a_known_referral_is_parked(service, receiver):
    service.subscribe("met-police", receiver.url, ["referral.received"])  # so its first event is recorded
    service.subscribe("kent-police", receiver.url, ["referral.allocated"])
    referral_id = str(uuid.uuid4())
    service.handle(referral_event(referral_id=referral_id, org="met-police"))
    with pytest.raises(PermanentError):
        service.handle(referral_event("referral.allocated", referral_id=referral_id, org="kent-police"))
    assert service.deliveries(event_type="referral.allocated") == []


# --- the dispatcher -----------------------------------------------------------------------------------


def test_dispatcher_sends_a_verifiable_signed_webhook_in_the_events_trace(service, receiver, spans):
    subscription = service.subscribe("met-police", receiver.url, ["referral.received"])
    event = referral_event()
    with trace.get_tracer("test").start_as_current_span("agency POST /v1/referrals") as root:
        service.handle(event)
    trace_id = format(root.get_span_context().trace_id, "032x")
    [pending] = service.deliveries()
    assert trace_id_of(pending.traceparent) == trace_id
    spans.clear()

    assert service.dispatcher.dispatch_due() == 1

    [request] = receiver.received
    headers = request["headers"]
    payload = Webhook(subscription["secret"]).verify(request["body"], headers)
    assert payload["data"]["referral_id"] == event.subject
    assert headers["webhook-id"] == f"msg_{event.id}_{subscription['id']}"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "referrals-notifications/1"
    assert trace_id_of(headers["traceparent"]) == trace_id
    assert request["path"] == "/hooks/referrals"

    [deliver] = [s for s in spans.get_finished_spans() if s.name == "webhook deliver"]
    assert deliver.kind == trace.SpanKind.CLIENT
    assert format(deliver.context.trace_id, "032x") == trace_id
    assert deliver.attributes["referral.id"] == event.subject
    assert deliver.attributes["event.type"] == "referral.received"
    assert deliver.attributes["org.id"] == "met-police"
    # The attempt's span is the HTTP call's, and the header's parent: the agency's system continues the trace
    # from it. No second client span from the requests instrumentation inside it (issue 17).
    assert headers["traceparent"].split("-")[2] == format(deliver.context.span_id, "016x")
    assert not [s for s in spans.get_finished_spans() if s.name in ("POST", "HTTP POST")]

    [delivered] = service.deliveries()
    assert (delivered.status, delivered.attempts, delivered.last_status_code) == ("delivered", 1, 204)
    assert delivered.delivered_at is not None and delivered.next_attempt_at is None
    assert service.dispatcher.dispatch_due() == 0
    assert len(receiver.received) == 1


def test_a_failing_receiver_is_retried_per_schedule_then_failed_and_visible(service, receiver):
    service.subscribe("met-police", receiver.url, ["referral.received"])
    receiver.reply = (500, {}, 0.0)
    event = referral_event()
    service.handle(event)

    service.dispatcher.dispatch_due()  # schedule "0,0": three attempts, no waiting

    assert len(receiver.received) == 3
    assert len({r["headers"]["webhook-id"] for r in receiver.received}) == 1
    [delivery] = service.deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    assert delivery.last_error == "HTTP 500" and delivery.next_attempt_at is None
    assert service.dispatcher.dispatch_due() == 0

    response = service.client.get(f"/v1/deliveries?referral_id={event.subject}", headers=service.headers())
    [listed] = response.get_json()
    assert listed["status"] == "failed"
    assert listed["attempts"] == 3
    assert listed["last_status_code"] == 500
    assert listed["event_id"] == event.id
    assert RESPONSE_MARKER not in response.get_data(as_text=True)
    assert (
        service.client.get(
            f"/v1/deliveries?referral_id={event.subject}", headers=service.headers("kent-police")
        ).get_json()
        == []
    )


def test_a_failed_attempt_waits_for_the_schedule(service, receiver, dev_keys):
    service.subscribe("met-police", receiver.url, ["referral.received"])
    receiver.reply = (503, {}, 0.0)
    slow = WebhookDispatcher(service.sessions, WebhookSettings(allow_private=True, retry_schedule=(300,)))
    service.handle(referral_event())
    before = utcnow()
    assert slow.dispatch_due() == 1
    [delivery] = service.deliveries()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert 299 <= (delivery.next_attempt_at - before).total_seconds() <= 301
    assert slow.dispatch_due() == 0


def test_redirects_are_not_followed(service, receiver):
    service.subscribe("met-police", receiver.url, ["referral.received"])
    receiver.reply = (302, {"Location": receiver.url + "/elsewhere"}, 0.0)
    service.handle(referral_event())
    service.dispatcher.dispatch_due()
    assert {r["path"] for r in receiver.received} == {"/hooks/referrals"}
    [delivery] = service.deliveries()
    assert delivery.status == "failed" and delivery.last_status_code == 302
    assert "redirects are not followed" in delivery.last_error


def test_a_slow_receiver_times_out_and_counts_as_a_failed_attempt(service, receiver):
    service.subscribe("met-police", receiver.url, ["referral.received"])
    receiver.reply = (204, {}, 1.5)
    impatient = WebhookDispatcher(
        service.sessions, WebhookSettings(allow_private=True, timeout_seconds=0.3, retry_schedule=())
    )
    service.handle(referral_event())
    impatient.dispatch_due()
    [delivery] = service.deliveries()
    assert (delivery.status, delivery.last_status_code) == ("failed", None)
    assert delivery.last_error == "timed out after 0.3s"


def test_the_url_is_checked_again_before_each_delivery(service, receiver):
    """DNS changed since subscribing: the host now resolves to a private address, so nothing is sent."""
    subscription = service.subscribe("met-police", receiver.url, ["referral.received"])
    with service.sessions.begin() as session:
        session.get(Subscription, subscription["id"]).url = "https://hooks.agency.example/in"
    rebound = UrlGuard(allow_private=False, resolve=lambda host, port: ["10.0.0.7"])
    dispatcher = WebhookDispatcher(service.sessions, WebhookSettings(retry_schedule=()), guard=rebound)
    service.handle(referral_event())
    dispatcher.dispatch_due()
    [delivery] = service.deliveries()
    assert delivery.status == "failed" and delivery.attempts == 1
    assert "URL refused" in delivery.last_error and "private" in delivery.last_error
    assert receiver.received == []


def test_production_connections_refuse_a_non_public_peer(receiver):
    """The connect-time half of the guard: even if DNS answered differently at check time (rebinding)."""
    with pytest.raises(UnsafeWebhookUrl, match="loopback"):
        webhook_session(allow_private=False).post(receiver.url, data=b"{}", timeout=2)
    assert receiver.received == []
    assert webhook_session(allow_private=True).post(receiver.url, data=b"{}", timeout=2).status_code == 204


# --- the worker, through RabbitMQ -------------------------------------------------------------------


def test_worker_turns_a_published_event_into_a_signed_webhook(service, receiver, amqp_url, spans):
    subscription = service.subscribe("met-police", receiver.url, ["referral.allocated"])
    queue = f"notifications-test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(service.url, service.dev_keys, AMQP_URL=amqp_url)
    stop = threading.Event()
    worker = threading.Thread(target=run_loops, args=(build_loops(settings, queue=queue), stop), daemon=True)
    worker.start()
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        wait_for_consumers(amqp_url, queue)  # declared, bound from its handlers, and consuming
        event = referral_event("referral.allocated", case_id="c-9")
        with trace.get_tracer("test").start_as_current_span("intake outbox relay") as root:
            publish(amqp_url, event, headers=carrier_from_current())  # as the guest user, which is trusted
        [request] = wait_until(lambda: receiver.received)
        payload = Webhook(subscription["secret"]).verify(request["body"], request["headers"])
        assert payload["data"] == {
            "referral_id": event.subject,
            "external_reference": "REF-SYN-1",
            "status": "allocated",
            "provider_id": "charity-a",
            "case_id": "c-9",
        }
        assert trace_id_of(request["headers"]["traceparent"]) == format(root.get_span_context().trace_id, "032x")
        delivered = wait_until(lambda: [d for d in service.deliveries() if d.status == "delivered"])
        assert delivered[0].event_id == event.id
    finally:
        stop.set()
        worker.join(timeout=15)
        cleanup = connection.channel()
        for name in (queue, f"{queue}.retry", f"{queue}.parking"):
            cleanup.queue_delete(name)
        connection.close()
    assert not worker.is_alive()


# --- claims, one delivery at a time -------------------------------------------------------------------


def test_two_dispatchers_claiming_one_at_a_time_send_every_webhook_exactly_once(service, receiver):
    service.subscribe("met-police", receiver.url, ["referral.received"])
    for _ in range(23):
        service.handle(referral_event())
    other = WebhookDispatcher(service.sessions, WebhookSettings(allow_private=True, retry_schedule=()))
    with ThreadPoolExecutor(2) as pool:
        sent = sum(pool.map(lambda d: d.dispatch_due(), [service.dispatcher, other]))
    assert sent == 23
    ids = [r["headers"]["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 23
    assert {d.status for d in service.deliveries()} == {"delivered"}


def test_a_claim_holds_one_delivery_for_its_attempts_timeout_and_a_few_seconds(service, receiver):
    service.subscribe("met-police", receiver.url, ["referral.received"])
    for _ in range(3):
        service.handle(referral_event())
    before = utcnow()
    claimed = service.dispatcher._claim()
    assert claimed is not None
    # WEBHOOK_TIMEOUT_SECONDS=5, and five seconds to spare: taken again within seconds if this dispatcher dies.
    [held] = [d for d in service.deliveries() if d.id == claimed.delivery_id]
    assert 9 <= (held.next_attempt_at - before).total_seconds() <= 11
    assert held.next_attempt_at == claimed.lease
    others = [d for d in service.deliveries() if d.id != claimed.delivery_id]
    assert all(d.next_attempt_at <= before for d in others)  # the rest stay due, for any dispatcher
    second = service.dispatcher._claim()
    assert second is not None and second.delivery_id != claimed.delivery_id


def test_a_referrals_later_webhook_waits_until_its_earlier_one_to_the_same_subscriber_is_done(service, receiver):
    """Lanes coming back from an outage together must not send a referral's webhooks at once: the later one
    could arrive first. Another referral's, and another subscriber's, do not wait."""
    subscription = service.subscribe("met-police", receiver.url, ["referral.received", "referral.allocated"])["id"]
    other = service.subscribe("met-police", receiver.url + "/other", ["referral.allocated"])["id"]
    referral_id = str(uuid.uuid4())
    service.handle(referral_event(referral_id=referral_id))
    service.handle(referral_event("referral.allocated", referral_id=referral_id, status="allocated",
                                  provider_id="charity-a", case_id="case-1"))  # fmt: skip
    service.handle(referral_event())  # another referral
    claimed = {}
    while (next_one := service.dispatcher._claim()) is not None:
        claimed[(next_one.event_type, next_one.subscription_id, next_one.referral_id)] = next_one
    # Every one due is taken but our allocated, which waits behind our received: the other subscriber's
    # allocated and the other referral's received do not wait.
    assert ("referral.received", subscription, referral_id) in claimed
    assert ("referral.allocated", other, referral_id) in claimed
    assert ("referral.allocated", subscription, referral_id) not in claimed
    assert len(claimed) == 3
    assert service.dispatcher._attempt(claimed[("referral.received", subscription, referral_id)])  # delivered
    then = service.dispatcher._claim()
    assert then is not None and (then.event_type, then.subscription_id) == ("referral.allocated", subscription)


def test_a_failed_attempt_is_not_recorded_over_a_claim_that_lapsed_and_moved_on(service, receiver):
    """A dispatcher that outlived its lease (a receiver trickling its answer) does not overwrite the outcome of
    the one that took the row after it; a delivery it made is recorded whoever holds the row."""
    service.subscribe("met-police", receiver.url, ["referral.received"])
    service.handle(referral_event())
    receiver.reply = (500, {}, 0.0)
    late = service.dispatcher._claim()
    with service.sessions.begin() as session:  # the lease ran out, and another dispatcher took the row
        session.get(Delivery, late.delivery_id).next_attempt_at = late.lease + timedelta(seconds=30)
    service.dispatcher._attempt(late)
    [delivery] = service.deliveries()
    assert (delivery.status, delivery.attempts) == ("pending", 0)

    receiver.reply = (204, {}, 0.0)
    service.dispatcher._attempt(late)
    [delivery] = service.deliveries()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)


def test_on_sqlite_the_dispatcher_claims_and_sends(tmp_path, dev_keys, receiver):
    """`make run` keeps notifications in SQLite: the claim must not use what SQLite lacks."""
    url = f"sqlite:///{tmp_path / 'notifications.db'}"
    migrate("notifications", url)
    notifications = bootstrap(make_settings(url, dev_keys), instrument=False)
    subscribe(
        notifications.units(), notifications.guard, org_id="met-police", url=receiver.url, events=["referral.received"]
    )
    for _ in range(7):
        notifications.handlers(referral_event())
    dispatcher = WebhookDispatcher(notifications.sessions, WebhookSettings(allow_private=True, retry_schedule=()))
    assert dispatcher.dispatch_due() == 7
    assert len(receiver.received) == 7
    notifications.engine.dispose()


def test_on_sqlite_the_dispatchers_lanes_send_each_webhook_once(tmp_path, dev_keys, receiver):
    """`make run`'s dispatcher runs WEBHOOK_CONCURRENCY lanes on SQLite too: each claim is one statement."""
    url = f"sqlite:///{tmp_path / 'notifications.db'}"
    migrate("notifications", url)
    notifications = bootstrap(make_settings(url, dev_keys, WEBHOOK_CONCURRENCY="4"), instrument=False)
    subscribe(
        notifications.units(), notifications.guard, org_id="met-police", url=receiver.url, events=["referral.received"]
    )
    for _ in range(30):
        notifications.handlers(referral_event())
    stop = threading.Event()
    lanes = threading.Thread(target=notifications.dispatcher.run, args=(stop,), daemon=True)
    lanes.start()
    try:
        wait_until(lambda: len(receiver.received) >= 30, timeout=20)
        time.sleep(0.5)  # long enough for a second send, were any row claimed twice
    finally:
        stop.set()
        lanes.join(timeout=10)
    ids = [r["headers"]["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == 30
    with notifications.sessions() as session:
        assert set(session.scalars(select(Delivery.status))) == {"delivered"}
    notifications.engine.dispose()


def test_a_providers_event_that_came_before_intakes_is_retried_and_then_accepted(service, receiver, amqp_url):
    """Retried through its retry queue, a message comes back with the queue's name as its routing key: the
    consumer checks the key it was published under (from x-death), and the retry succeeds once intake's
    allocation has arrived."""
    service.subscribe("met-police", receiver.url, ["case.opened"])
    queue = f"notifications-retry-{uuid.uuid4().hex[:8]}"
    settings = make_settings(service.url, service.dev_keys, AMQP_URL=amqp_url, AMQP_RETRY_DELAY_MS="300")
    referral_id = str(uuid.uuid4())
    with running(build_loops(settings, queue=queue)["consumer"]):
        wait_for_consumers(amqp_url, queue)
        early = case_opened(referral_id)
        publish(amqp_url, early)  # as guest: a trusted user, as the platform's own is
        time.sleep(0.5)  # its first delivery fails: nobody holds the referral yet; it waits in the retry queue
        publish(amqp_url, referral_event("referral.allocated", referral_id=referral_id))
        [delivery] = wait_until(lambda: service.deliveries(event_type="case.opened"))
    assert delivery.event_id == early.id
    assert drain(amqp_url, f"{queue}.parking", expect=1, timeout=1) == []
