"""Recovery in seconds, on the real RabbitMQ and PostgreSQL: the broker "goes away" behind a loopback proxy
(the shared node is never restarted), and every loop is back within about 2 s of it taking connections again."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from shared.db import make_engine, make_session_factory
from shared.health import HEALTH
from shared.logs import quiet_pika
from shared.messaging.connection import BROKER
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Event
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import QueueSpec
from support.amqp import declare_tap, drain, publish, running, wait_for_consumers
from support.kit import Base, KitUnitOfWork, Outbox, thing
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until

log = logging.getLogger(__name__)


class ReopenableProxy(TcpProxy):
    """A TcpProxy that can be opened again on its port at once: closing a listening socket does not wake the
    thread blocked in its accept(), which keeps the port, until the socket is shut down too."""

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
        super().close()


@pytest.fixture
def sessions(fresh_database):
    engine = make_engine(fresh_database("recovery"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def quiet():
    """As a worker's logging is set up (shared.logs.configure_logging at INFO): pika's own errors quieted."""
    quiet_pika()
    yield
    quiet_pika(debug=True)


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))


def dead_node(url: str) -> str:
    """`url` pointed at a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}"))


def broker_down() -> bool:
    return BROKER in HEALTH.report()["down"]


def test_a_cut_broker_is_reported_down_logged_once_per_attempt_and_every_loop_is_back_within_seconds(
    amqp_url, sessions, quiet, caplog
):
    parts = urlsplit(amqp_url)
    proxy = ReopenableProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    proxy.open()
    via_proxy = through(proxy, amqp_url)
    handled: list[str] = []
    spec = QueueSpec("kit.recovery", ("thing.happened",), retry_delay_ms=100)
    consumer = Consumer(via_proxy, spec, lambda e: handled.append(e.id), max_attempts=3)
    declare_tap(amqp_url, "kit.recovery.tap", "thing.refused.elsewhere")
    relay = OutboxRelay(via_proxy, sessions, Outbox, name="kit", poll_interval=0.02)
    try:
        with running(consumer.run), running(relay.run):
            wait_for_consumers(amqp_url, spec.name, timeout=10)
            wait_until(lambda: not broker_down(), timeout=10)
            caplog.clear()
            caplog.set_level(logging.INFO)

            proxy.close()  # the broker goes: live connections cut, new ones refused
            wait_until(broker_down, timeout=10)
            time.sleep(3)  # an outage of a few seconds: several attempts by each loop
            reason = HEALTH.report()["down"][BROKER]["reason"]
            assert "kit.recovery-consumer" in reason and "kit-relay" in reason
            proxy.open()
            back_at = time.monotonic()
            wait_until(lambda: not broker_down(), timeout=10)
            recovered_in = time.monotonic() - back_at
            log.warning("every loop back %.2f s after the broker took connections again", recovered_in)
            print(f"\nrecovered in {recovered_in:.2f} s")  # the figure the README quotes (pytest -s)

            publish(amqp_url, Event("thing.happened", "/t", "ref-1", {}))  # the consumer consumes again
            wait_until(lambda: handled, timeout=10)
            with KitUnitOfWork(sessions) as uow:  # and the relay publishes again
                uow.stage(thing("thing.refused.elsewhere"))
            assert len(drain(amqp_url, "kit.recovery.tap", expect=1, timeout=10)) == 1
    finally:
        proxy.close()

    assert recovered_in < 5.0, f"back {recovered_in:.2f} s after the broker (designed for under 2 s)"
    records = [r for r in caplog.records if r.name != __name__]
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.getMessage() for r in records]
    warnings = [r for r in records if r.levelno == logging.WARNING and hasattr(r, "attempt")]
    for connection in ("kit.recovery-consumer", "kit-relay"):
        attempts = [r.attempt for r in warnings if r.connection == connection]
        assert len(attempts) >= 3, f"{connection}: {attempts}"  # a few attempts in 3 s, each one line
        assert attempts == list(range(1, len(attempts) + 1)), attempts  # one line per attempt, counted
    assert all(r.exc_info is None for r in records if r.levelno >= logging.WARNING)  # no traceback above DEBUG
    secret = f":{parts.password}@"  # the user's name may be its password too (guest:guest)
    assert all(secret not in r.getMessage() and secret not in str(getattr(r, "node", "")) for r in records)
    assert all(getattr(r, "node", "").startswith(f"amqp://{parts.username}@127.0.0.1:") for r in warnings)


def test_a_dead_first_node_in_amqp_url_still_connects_each_loop_to_the_second(amqp_url, sessions, quiet):
    nodes = f"{dead_node(amqp_url)},{amqp_url}"
    handled: list[str] = []
    spec = QueueSpec("kit.nodes", ("thing.happened",), retry_delay_ms=100)
    consumer = Consumer(nodes, spec, lambda e: handled.append(e.id), max_attempts=3)
    declare_tap(amqp_url, "kit.nodes.tap", "thing.refused.elsewhere")
    relay = OutboxRelay(nodes, sessions, Outbox, name="kit", poll_interval=0.02)
    with running(consumer.run), running(relay.run):
        wait_for_consumers(amqp_url, spec.name, timeout=10)
        event = Event("thing.happened", "/t", "ref-1", {})
        publish(amqp_url, event)
        wait_until(lambda: handled, timeout=10)
        with KitUnitOfWork(sessions) as uow:
            uow.stage(thing("thing.refused.elsewhere"))
        assert len(drain(amqp_url, "kit.nodes.tap", expect=1, timeout=10)) == 1
        wait_until(lambda: not broker_down(), timeout=5)
    assert handled == [event.id]
