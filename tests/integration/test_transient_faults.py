"""A dependency briefly down is not poison, on the real RabbitMQ and PostgreSQL: the consumer holds the message,
retries it in place and keeps each referral's order; past its hold it moves what it holds to its holding
queue (an ack, not a return: nothing counts toward x-delivery-limit), and drains that first once the
dependency is back. Nothing is parked."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pika
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from services.advocacy.bootstrap import bootstrap
from services.advocacy.casework.intake_client import IntakeClient
from services.advocacy.models import Case
from services.advocacy.worker import build_loops
from services.migrate import migrate
from shared.config import Settings
from shared.db import make_engine, make_session_factory
from shared.health import Health
from shared.inbox import EventHandlers
from shared.messaging.catalogue import Subscriptions
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Event
from shared.messaging.topology import QueueSpec
from shared.retry import Backoff
from support import rabbit_node
from support.amqp import declare_tap, drain, publish, running, wait_for_consumers
from support.events import arriving, payload
from support.kit import KIT, Base, KitUnitOfWork, Outbox, ThingHappened, thing
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until

QUICK = Backoff(first=0.2, cap=1.0)  # the shape of shared.retry.TRANSIENT, compressed for tests
OUTAGE_S = 15  # longer than the old budget of 5 attempts 2 s apart, which parked good messages


class RefusingProxy(TcpProxy):
    """support.tcp_proxy's proxy, whose close() also wakes its accepting thread: closing a listening socket
    while another thread is blocked in accept() does not stop that accept() on Linux, so one more connection
    would still get through to PostgreSQL during the "outage"."""

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
        super().close()


@pytest.fixture
def database(fresh_database):
    """The kit's database behind a TCP proxy the test closes to make PostgreSQL refuse connections."""
    url = make_url(fresh_database("kit"))
    direct = make_engine(url.render_as_string(hide_password=False))
    Base.metadata.create_all(direct)
    direct.dispose()
    proxy = RefusingProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.open()
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    yield proxy, make_session_factory(engine)
    proxy.close()
    engine.dispose()


class Recording(Consumer):
    """The kit's consumer, noting the AMQP side of each delivery it handles (its route, its headers)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deliveries: list[tuple[str, str, dict]] = []

    def _process(self, channel, method, properties, body, span, held):
        self.deliveries.append((method.exchange, method.routing_key, dict(properties.headers or {})))
        return super()._process(channel, method, properties, body, span, held)


def kit_consumer(amqp_url, sessions, name: str, handled: list, retry_delay_ms: int = 2000, **options) -> Recording:
    """A consumer whose handler stages one outbox row (the effect) and, once committed, notes (subject, n)."""

    def effect(uow, event: Event) -> None:
        uow.stage(thing(referral_id=event.subject, n=event.data.n))

    handlers = EventHandlers(
        "kit", lambda: KitUnitOfWork(sessions), Subscriptions(KIT, "kit").on(ThingHappened, effect), trusted={"guest"}
    )

    def handle(event: Event) -> None:
        if event.data.get("poison"):
            raise RuntimeError("this handler can never succeed")
        handlers(event)
        handled.append((event.subject, event.data["n"]))  # after the commit: a failed attempt notes nothing

    spec = QueueSpec(name, ("thing.happened",), delivery_limit=2, retry_delay_ms=retry_delay_ms)
    return Recording(amqp_url, spec, handle, max_attempts=5, transient=QUICK, **options)


def events(subjects: int, each: int) -> list[Event]:
    """`each` events for each of `subjects` referrals, interleaved as they would arrive."""
    ids = [str(uuid.uuid4()) for _ in range(subjects)]
    return [arriving(thing(referral_id=s, n=n)) for n in range(each) for s in ids]


def in_order(handled: list[tuple[str, int]]) -> dict[str, list[int]]:
    by_subject: dict[str, list[int]] = {}
    for subject, n in handled:
        by_subject.setdefault(subject, []).append(n)
    return by_subject


def depth(url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        return connection.channel().queue_declare(queue, passive=True).method.message_count


def effects(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Outbox))


def test_a_database_outage_longer_than_the_old_retry_budget_parks_nothing_and_keeps_each_referrals_order(
    amqp_url, database, caplog
):
    proxy, sessions = database
    handled: list[tuple[str, int]] = []
    health = Health()
    consumer = kit_consumer(amqp_url, sessions, "kit.dbdown", handled, lanes=2, hold_seconds=120, health=health)
    sent = events(subjects=3, each=4)
    caplog.set_level(logging.WARNING, logger="shared.messaging.consumer")
    with running(consumer.run):
        wait_for_consumers(amqp_url, consumer.spec.name, timeout=10)
        proxy.close()  # PostgreSQL refuses every connection for OUTAGE_S
        for event in sent:
            publish(amqp_url, event)
        wait_until(lambda: "database" in health.report()["down"], timeout=10)
        threading.Event().wait(OUTAGE_S)
        assert handled == []
        proxy.open()
        wait_until(lambda: len(handled) == len(sent), timeout=30)
        assert health.ready  # the held message passed: the database is reported up again
    expected = in_order([(e.subject, e.data["n"]) for e in sent])
    assert in_order(handled) == expected
    assert effects(sessions) == len(sent)  # each event took effect once
    assert depth(amqp_url, consumer.spec.parking_queue) == 0
    assert all("x-death" not in headers for _, _, headers in consumer.deliveries)  # no poison attempt spent
    retries = [r for r in caplog.records if r.getMessage() == "dependency unavailable; retrying the message in place"]
    assert retries and all(r.dependency == "database" and r.attempt >= 1 and r.retry_in_s > 0 for r in retries)
    assert not any(e.id in r.getMessage() or "referral_id" in r.getMessage() for r in retries for e in sent)


def test_a_hold_past_its_limit_moves_to_the_holding_queue_in_order_and_counts_no_delivery(amqp_url, database, caplog):
    proxy, sessions = database
    handled: list[tuple[str, int]] = []
    consumer = kit_consumer(amqp_url, sessions, "kit.holding", handled, lanes=2, hold_seconds=2, prefetch=20)
    sent = events(subjects=3, each=4)
    caplog.set_level(logging.WARNING, logger="shared.messaging.consumer")
    with running(consumer.run):
        wait_for_consumers(amqp_url, consumer.spec.name, timeout=10)
        proxy.close()
        for event in sent:
            publish(amqp_url, event)
        wait_until(lambda: depth(amqp_url, consumer.spec.holding_queue) == len(sent), timeout=20)
        assert depth(amqp_url, consumer.spec.name) == 0  # all of them acked off Q: none returned to it
        more = events(subjects=1, each=2)  # published while the consumer keeps off Q
        for event in more:
            publish(amqp_url, event)
        threading.Event().wait(3)
        assert depth(amqp_url, consumer.spec.name) == len(more)
        proxy.open()
        wait_until(lambda: len(handled) == len(sent) + len(more), timeout=30)
    assert in_order(handled) == in_order([(e.subject, e.data["n"]) for e in sent + more])
    assert handled[: len(sent)] != [] and {s for s, _ in handled[: len(sent)]} == {e.subject for e in sent}
    assert effects(sessions) == len(sent) + len(more)
    for queue in (consumer.spec.parking_queue, consumer.spec.retry_queue, consumer.spec.holding_queue):
        assert depth(amqp_url, queue) == 0
    passed = {}  # each message's last delivery: the one that took effect
    for exchange, key, headers in consumer.deliveries:
        passed[(exchange, key, headers.get("x-original-routing-key"))] = headers
    from_holding = [h for (exchange, key, _), h in passed.items() if key == consumer.spec.holding_queue]
    assert from_holding, "nothing came back from the holding queue"
    for _, key, headers in consumer.deliveries:
        assert "x-death" not in headers  # no attempt of the poison budget spent
        if key != consumer.spec.holding_queue:
            assert int(headers.get("x-delivery-count", 0)) == 0  # and no return toward Q's x-delivery-limit (2 here)
    # The holding queue (quorum, no delivery limit) had its head returned while the database was down: counted,
    # never dead-lettered, and served again first (the order above).
    returned = [h for _, key, h in consumer.deliveries if key == consumer.spec.holding_queue]
    assert any(int(h.get("x-delivery-count", 0)) >= 1 for h in returned)
    assert any(r.getMessage().startswith("a dependency is still down; moving held messages") for r in caplog.records)


def test_a_poison_message_still_parks_after_its_attempts_while_good_ones_pass(amqp_url, database):
    _, sessions = database
    handled: list[tuple[str, int]] = []
    consumer = kit_consumer(amqp_url, sessions, "kit.poison", handled, retry_delay_ms=100)
    poison, good = arriving(thing(poison=True)), arriving(thing(n=1))
    with running(consumer.run):
        wait_for_consumers(amqp_url, consumer.spec.name, timeout=10)
        publish(amqp_url, poison)
        publish(amqp_url, good)
        [(properties, _)] = drain(amqp_url, consumer.spec.parking_queue, expect=1, timeout=30)
    assert properties.message_id == poison.id
    assert properties.headers["x-parked-reason"] == "failed 5 times: RuntimeError"
    assert properties.headers["x-parked-attempts"] == 5
    assert handled == [(good.subject, 1)]


class FlakyIntake(ThreadingHTTPServer):
    """intake's GET /v1/referrals/{id}, answering 503 to the first `failures` requests, then the referral."""

    def __init__(self, failures: int):
        self.failures, self.requests = failures, 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N802,N805 - http.server's naming; `self` is the server
                self.requests += 1
                failing = self.requests <= self.failures
                body = b'{"message": "down"}' if failing else json.dumps({"id": handler.path.rsplit("/", 1)[-1]})
                handler.send_response(503 if failing else 200)
                handler.send_header("Content-Type", "application/json")
                handler.end_headers()
                handler.wfile.write(body if isinstance(body, bytes) else body.encode())

            def log_message(handler, *args):  # noqa: N805
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Tokens:
    def get(self) -> str:
        return "token"


def test_an_intake_outage_during_the_referral_fetch_opens_the_case_once_intake_is_back(fresh_database, amqp_url):
    provider = f"charity-t{uuid.uuid4().hex[:4]}"
    url = fresh_database("advocacy")
    migrate("advocacy", url)
    env = {
        "ADVOCACY_DATABASE_URL": url,
        "PROVIDER_ID": provider,
        "AUTO_ACCEPT": "true",
        "AMQP_URL": amqp_url,
        "AMQP_RETRY_DELAY_MS": "200",  # the old budget: 5 attempts 0.2 s apart would park it within a second
    }
    settings = Settings.from_env("advocacy", env=env)
    advocacy = bootstrap(settings, instrument=False)
    with advocacy.unit_of_work() as uow:
        advocacy.continuity.casework.create_advocate(
            uow, name="Advocate Synthetic-T", email="t@charity-t.example", languages=["sq"], max_caseload=3
        )
    tap = f"tap.{uuid.uuid4().hex[:8]}"
    declare_tap(amqp_url, tap, "offer.accepted", "case.opened")
    intake = FlakyIntake(failures=4)  # retried after 1, 2, 4 and 8 s: back on the fifth
    loops = build_loops(settings, intake=IntakeClient(intake.url, Tokens()))  # type: ignore[arg-type]
    referral_id, offer_id = str(uuid.uuid4()), str(uuid.uuid4())
    offer = payload(
        "referral.offered",
        referral_id=referral_id,
        offer_id=offer_id,
        provider_id=provider,
        org_id="met-police",
        offered_at="2026-01-05T10:00:00+00:00",
        respond_by="2026-01-06T10:00:00+00:00",
        summary={"is_child": False, "pathway": "nrm", "region": "london", "languages": ["sq"]},
    )
    try:
        with running(loops["consumer"]), running(loops["relay"]):
            wait_for_consumers(amqp_url, f"advocacy.{provider}", timeout=20)
            publish(amqp_url, arriving(offer))
            [(_, body)] = drain(amqp_url, tap, expect=1)
            case_id = json.loads(body)["data"]["case_id"]
            confirmed = payload(
                "allocation.confirmed",
                referral_id=referral_id,
                offer_id=offer_id,
                provider_id=provider,
                case_id=case_id,
            )
            publish(amqp_url, arriving(confirmed))
            [(properties, _)] = drain(amqp_url, tap, expect=1, timeout=40)
        assert properties.type == "case.opened"
        assert intake.requests == 5
        with advocacy.sessions() as session:
            assert session.get(Case, case_id).status == "open"
        assert depth(amqp_url, f"advocacy.{provider}.parking") == 0
    finally:
        intake.shutdown()
        advocacy.engine.dispose()


@pytest.mark.skipif(rabbit_node.available() is not None, reason="needs a private RabbitMQ node")
def test_a_hold_longer_than_the_brokers_consumer_timeout_does_not_trip_it(database, monkeypatch, caplog):
    """On a private node with a consumer_timeout of 5 s (checked every second): held in place for 10 s, a
    delivery trips it (the control: the channel is closed and the message returned, counting a delivery);
    held for 2 s and then moved to the holding queue, it does not, however long the outage."""
    proxy, sessions = database
    monkeypatch.setenv("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-rabbit channel_tick_interval 1000")
    caplog.set_level(logging.WARNING, logger="shared.messaging.consumer")
    closed = "the broker closed the consumer's channel; opening another"
    with rabbit_node.private_node("timeout", config={"consumer_timeout": "5000"}) as node:
        handled: list[tuple[str, int]] = []
        control = kit_consumer(node.amqp_url, sessions, "kit.control", handled, hold_seconds=60)
        with running(control.run):
            wait_for_consumers(node.amqp_url, control.spec.name, timeout=20)
            proxy.close()
            publish(node.amqp_url, events(subjects=1, each=1)[0])
            wait_until(lambda: any(r.getMessage() == closed for r in caplog.records), timeout=20)
            proxy.open()
            wait_until(lambda: handled, timeout=20)
        assert any(int(h.get("x-delivery-count", 0)) >= 1 for _, _, h in control.deliveries)

        caplog.clear()
        handled = []
        consumer = kit_consumer(node.amqp_url, sessions, "kit.timeout", handled, hold_seconds=2)
        sent = events(subjects=2, each=3)
        with running(consumer.run):
            wait_for_consumers(node.amqp_url, consumer.spec.name, timeout=20)
            proxy.close()
            for event in sent:
                publish(node.amqp_url, event)
            threading.Event().wait(12)
            proxy.open()
            wait_until(lambda: len(handled) == len(sent), timeout=30)
        assert not any(r.getMessage() == closed for r in caplog.records)
    assert in_order(handled) == in_order([(e.subject, e.data["n"]) for e in sent])
    assert all("x-death" not in h for _, _, h in consumer.deliveries)
    from_q = [h for _, key, h in consumer.deliveries if key != consumer.spec.holding_queue]
    assert all(int(h.get("x-delivery-count", 0)) == 0 for h in from_q)  # the holding queue's returns count no limit
