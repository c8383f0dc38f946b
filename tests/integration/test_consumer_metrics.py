"""The consumer's metrics on the real broker: each message counted once by its outcome, and the parking queue's
depth measured by the consumer's own connection, after a park and again after an operator empties it."""

from __future__ import annotations

import uuid

import pika
from prometheus_client import REGISTRY

import shared.messaging.consumer as consumer_module
from shared import metrics
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.messaging.topology import QueueSpec
from support.amqp import drain, publish, running, wait_for_consumers
from support.waiting import wait_until

KNOWN = {"thing.happened"}


def counted(queue: str, event_type: str, outcome: str) -> float:
    labels = {"queue": queue, "event_type": event_type, "outcome": outcome}
    return REGISTRY.get_sample_value("referrals_messages_consumed_total", labels) or 0.0


def parked(queue: str) -> float | None:
    return REGISTRY.get_sample_value(metrics.MESSAGES_PARKED._name, {"queue": queue})


def test_outcomes_are_counted_and_the_parking_queue_is_measured_by_the_consumer(amqp_url, monkeypatch):
    monkeypatch.setattr(consumer_module, "PARKED_EVERY", 0.5)  # not 15 s: an emptied parking lot is seen soon

    def handle(event: Event) -> None:
        if event.type not in KNOWN:
            raise PermanentError("its type is not an event type of the catalogue")
        if event.data.get("poison"):
            raise RuntimeError("this handler can never succeed")

    queue = f"kit.metrics.{uuid.uuid4().hex[:6]}"
    spec = QueueSpec(queue, ("thing.happened", "forged.#"), delivery_limit=5, retry_delay_ms=100)
    consumer = Consumer(amqp_url, spec, handle, event_types=KNOWN, max_attempts=3)
    forged = f"forged.{uuid.uuid4().hex}"
    with running(consumer.run):
        wait_for_consumers(amqp_url, queue, timeout=10)
        assert wait_until(lambda: parked(queue) == 0, timeout=10)  # measured at once, before anything is parked
        for n in range(3):
            publish(amqp_url, Event(type="thing.happened", source="/kit", subject="ref-1", data={"n": n}))
        publish(amqp_url, Event(type="thing.happened", source="/kit", subject="ref-2", data={"poison": True}))
        publish(amqp_url, Event(type=forged, source="/kit", subject="ref-3", data={}))
        wait_until(lambda: parked(queue) == 2, timeout=30)
        assert counted(queue, "thing.happened", "handled") == 3
        assert counted(queue, "thing.happened", "retried") == 2
        assert counted(queue, "thing.happened", "parked") == 1
        assert counted(queue, "unknown", "parked") == 1
        assert forged not in metrics.exposition().decode()

        assert len(drain(amqp_url, spec.parking_queue, expect=2)) == 2  # an operator discards them
        wait_until(lambda: parked(queue) == 0, timeout=10)


def test_a_missing_parking_queue_is_not_counted_and_does_not_stop_the_consumer(amqp_url, monkeypatch, caplog):
    monkeypatch.setattr(consumer_module, "PARKED_EVERY", 0.2)
    handled: list[str] = []
    queue = f"kit.metrics.{uuid.uuid4().hex[:6]}"
    spec = QueueSpec(queue, ("thing.happened",), retry_delay_ms=100)
    consumer = Consumer(amqp_url, spec, lambda e: handled.append(e.id), event_types=KNOWN)
    with running(consumer.run):
        wait_for_consumers(amqp_url, queue, timeout=10)
        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            connection.channel().queue_delete(spec.parking_queue)
        wait_until(lambda: "cannot count the parking queue" in caplog.text, timeout=10)
        publish(amqp_url, Event(type="thing.happened", source="/kit", subject="ref-1", data={}))
        wait_until(lambda: handled, timeout=10)
