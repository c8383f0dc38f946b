"""The messaging kit on the real RabbitMQ and PostgreSQL: outbox relay, consumer retries, parking lot."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from opentelemetry import trace
from sqlalchemy import func, select

from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.messaging.catalogue import Subscriptions
from shared.messaging.consumer import Consumer, _lane_of
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import QueueSpec
from support.amqp import declare_tap, drain, publish, running, wait_for_consumers
from support.events import arriving
from support.kit import KIT, Base, Inbox, KitUnitOfWork, Outbox, ThingHappened, thing
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until


@pytest.fixture
def sessions(fresh_database):
    engine = make_engine(fresh_database("kit"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def event(kind: str = "thing.happened", **data) -> Event:
    return Event(type=kind, source="/test", subject="ref-1", data=data)


def test_a_message_that_always_fails_is_parked_after_its_attempts_and_others_still_flow(amqp_url, sessions):
    handled: list[str] = []
    attempts = {"poison": 0}

    def handle(e: Event) -> None:
        if e.data.get("poison"):
            attempts["poison"] += 1
            raise RuntimeError("this handler can never succeed")
        handled.append(e.id)

    spec = QueueSpec("kit.consumer", ("thing.happened",), delivery_limit=5, retry_delay_ms=100)
    consumer = Consumer(amqp_url, spec, handle, max_attempts=3, prefetch=5)
    good = [event(n=i) for i in range(5)]
    poison = event(poison=True)
    with running(consumer.run):
        wait_for_consumers(amqp_url, spec.name, timeout=10)
        publish(amqp_url, poison)
        for e in good:
            publish(amqp_url, e)
        parked = drain(amqp_url, spec.parking_queue, expect=1, timeout=30)
    assert sorted(handled) == sorted(e.id for e in good)
    assert attempts["poison"] == 3
    assert len(parked) == 1
    properties, body = parked[0]
    assert properties.message_id == poison.id
    assert "failed 3 times" in properties.headers["x-parked-reason"]
    assert json.loads(body)["id"] == poison.id


def test_a_malformed_message_is_parked_at_once(amqp_url):
    spec = QueueSpec("kit.malformed", ("thing.happened",), retry_delay_ms=100)
    consumer = Consumer(amqp_url, spec, lambda e: None, max_attempts=3)
    with running(consumer.run):
        wait_for_consumers(amqp_url, spec.name, timeout=10)
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        connection.channel().basic_publish("referrals", "thing.happened", b"not an event")
        connection.close()
        parked = drain(amqp_url, spec.parking_queue, expect=1)
    assert len(parked) == 1
    assert parked[0][0].headers["x-parked-reason"].startswith("malformed event")


def test_a_redelivered_event_has_no_second_effect(sessions):
    effects: list[str] = []
    handled = Subscriptions(KIT, "kit").on(ThingHappened, lambda uow, e: effects.append(e.id))
    handlers = EventHandlers("kit", lambda: KitUnitOfWork(sessions), handled, trusted={"guest"})
    once = arriving(thing())
    handlers(once)
    handlers(once)
    assert effects == [once.id]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Inbox)) == 1


def test_the_relay_publishes_inside_the_stored_trace_and_marks_rows_sent_after_the_confirm(amqp_url, sessions):
    declare_tap(amqp_url, "kit.tap", "thing.happened")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("agency request") as span, KitUnitOfWork(sessions) as uow:
        uow.stage(thing())
        trace_id = format(span.get_span_context().trace_id, "032x")
    relay = OutboxRelay(amqp_url, sessions, Outbox, name="kit", poll_interval=0.02)
    with running(relay.run):
        got = drain(amqp_url, "kit.tap", expect=1)
    assert got, "the relay published nothing"
    properties, _ = got[0]
    assert properties.headers["traceparent"].split("-")[1] == trace_id
    assert properties.content_type == "application/cloudevents+json"
    assert properties.delivery_mode == 2
    assert properties.user_id == urlsplit(amqp_url).username  # validated by the broker: consumers may trust it
    with sessions() as session:
        row = session.scalars(select(Outbox)).one()
        assert row.sent_at is not None


def only_row(sessions) -> Outbox:
    with sessions() as session:
        return session.scalars(select(Outbox)).one()


def test_an_unroutable_event_stays_pending_with_its_reason(amqp_url, sessions):
    with KitUnitOfWork(sessions) as uow:
        uow.stage(thing("nobody.listens"))
    relay = OutboxRelay(amqp_url, sessions, Outbox, name="kit", poll_interval=0.02)
    with running(relay.run):
        wait_until(lambda: only_row(sessions).attempts, timeout=15)
    with sessions() as session:
        row = session.scalars(select(Outbox)).one()
        assert row.sent_at is None
        assert row.attempts == 1
        assert "no queue is bound" in row.last_error


def test_events_written_while_the_broker_is_unreachable_go_out_when_it_is_back(amqp_url, sessions):
    declare_tap(amqp_url, "kit.outage", "thing.happened")
    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5672)
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))
    relay = OutboxRelay(via_proxy, sessions, Outbox, name="kit", poll_interval=0.02)
    with running(relay.run):
        with KitUnitOfWork(sessions) as uow:  # the broker is unreachable: the write still succeeds
            uow.stage(thing())
        assert drain(amqp_url, "kit.outage", expect=1, timeout=1.5) == []
        proxy.open()
        got = drain(amqp_url, "kit.outage", expect=1, timeout=30)
        proxy.close()
    assert len(got) == 1


def test_lanes_keep_each_subjects_order_while_a_slow_subject_does_not_hold_up_the_others(amqp_url):
    """AMQP_CONSUMER_LANES: one referral's events in order; another referral's pass a slow handler by."""
    seen: dict[str, list[int]] = {}
    slow_started, fast_done = threading.Event(), threading.Event()
    lock = threading.Lock()

    def handle(e: Event) -> None:
        if e.subject == "slow" and e.data["n"] == 0:
            slow_started.set()
            assert fast_done.wait(10), "the other subject's messages waited behind the slow one"
        if e.data.get("poison"):
            raise PermanentError("parked from a lane")
        with lock:
            seen.setdefault(e.subject, []).append(e.data["n"])
            if len(seen.get("fast", [])) == 20:
                fast_done.set()

    spec = QueueSpec("kit.lanes", ("thing.happened",), retry_delay_ms=100)
    consumer = Consumer(amqp_url, spec, handle, max_attempts=3, prefetch=50, lanes=4)
    assert _lane_of(Event("thing.happened", "/t", "slow", {}).to_json(), 4) != _lane_of(
        Event("thing.happened", "/t", "fast", {}).to_json(), 4
    ), "the test needs the two subjects on different lanes"
    with running(consumer.run):
        wait_for_consumers(amqp_url, spec.name, timeout=10)
        for n in range(20):
            publish(amqp_url, Event("thing.happened", "/t", "slow", {"n": n}))
        for n in range(20):
            publish(amqp_url, Event("thing.happened", "/t", "fast", {"n": n}))
        publish(amqp_url, Event("thing.happened", "/t", "fast", {"n": 99, "poison": True}))
        parked = drain(amqp_url, spec.parking_queue, expect=1, timeout=20)
        deadline = time.monotonic() + 20
        while len(seen.get("slow", [])) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert slow_started.is_set()
    assert seen == {"slow": list(range(20)), "fast": list(range(20))}  # each subject in its own order
    assert "parked from a lane" in parked[0][0].headers["x-parked-reason"]
    assert _depth(amqp_url, spec.name) == 0  # every message acked, none waiting to come back


def _depth(url: str, queue: str) -> int:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ok = connection.channel().queue_declare(queue, passive=True).method
        return ok.message_count
    finally:
        connection.close()


def test_a_queue_left_by_an_older_version_is_a_clear_error_naming_the_fix(amqp_url):
    import pika

    from shared.messaging.topology import TopologyConflict, declare_queue

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    connection.channel().queue_declare("kit.old", durable=True, arguments={"x-queue-type": "quorum"})
    with pytest.raises(TopologyConflict, match=r"delete kit\.old, kit\.old\.retry and kit\.old\.parking"):
        declare_queue(connection.channel(), QueueSpec("kit.old", ("thing.happened",)))
    connection.close()
