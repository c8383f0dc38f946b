"""Broker-side helpers for tests: run a loop in a thread, read a queue, publish an event."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pika

from contracts.events import PROVIDER_USER_PREFIX
from shared.messaging import CONTENT_TYPE, EXCHANGE
from shared.messaging.envelope import Event


@contextlib.contextmanager
def running(loop: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    """Run a consumer/relay loop in a thread for the duration of the block, then stop it: it must stop."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target():
        try:
            loop(stop)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=15)
    if errors:
        raise errors[0]
    # A loop that ignores `stop` would pass unseen and leak its thread into the tests after it.
    assert not thread.is_alive(), f"{getattr(loop, '__qualname__', loop)} did not stop within 15 s of being asked"


def publish(url: str, event: Event, routing_key: str | None = None, headers: dict | None = None) -> None:
    """Publish as the URL's broker user, under `routing_key`, else the key the event arrived with, else its type.
    A charity's restricted user may not declare the exchange: it only checks it exists."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    user = pika.URLParameters(url).credentials.username
    try:
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, "topic", durable=True, passive=user.startswith(PROVIDER_USER_PREFIX))
        channel.confirm_delivery()
        channel.basic_publish(
            EXCHANGE,
            routing_key or event.routing_key or event.type,
            event.to_json(),
            pika.BasicProperties(message_id=event.id, type=event.type, content_type=CONTENT_TYPE,
                                 delivery_mode=2, headers=headers or {},
                                 user_id=user),
            mandatory=True,
        )  # fmt: skip
    finally:
        connection.close()


def drain(url: str, queue: str, *, expect: int = 1, timeout: float = 20.0) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take (and ack) messages from `queue` until `expect` have arrived or the time is up."""
    got: list[tuple[pika.BasicProperties, bytes]] = []
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(queue)
            if method is None:
                connection.sleep(0.05)
                continue
            channel.basic_ack(method.delivery_tag)
            got.append((properties, body))
    finally:
        connection.close()
    return got


def declare_tap(url: str, name: str, *keys: str) -> None:
    """A plain queue bound to routing keys, so a test can see what was published."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, "topic", durable=True)
        channel.queue_declare(name, durable=True)
        for key in keys:
            channel.queue_bind(name, EXCHANGE, routing_key=key)
    finally:
        connection.close()


def wait_for_consumers(url: str, *queues: str, timeout: float = 20.0) -> None:
    """Wait until each queue exists and has a consumer (a worker declared and bound it, and is listening)."""
    deadline = time.monotonic() + timeout
    waiting = list(queues)
    while waiting and time.monotonic() < deadline:
        with pika.BlockingConnection(pika.URLParameters(url)) as connection:
            try:  # a passive declare of a queue not there yet closes the channel
                if connection.channel().queue_declare(waiting[0], passive=True).method.consumer_count:
                    waiting.pop(0)
                    continue
            except pika.exceptions.ChannelClosedByBroker:
                pass
        time.sleep(0.1)
    assert not waiting, f"no consumer on {', '.join(waiting)}"
