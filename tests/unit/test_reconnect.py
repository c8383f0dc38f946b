"""Reconnecting in seconds through the broker's nodes (shared.messaging.connection), without a broker: the
connect function is a fake."""

from __future__ import annotations

import logging
import threading

import pytest
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed, AMQPConnectorSocketConnectError
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker, StreamLostError

from shared.health import Health
from shared.logs import PIKA_CONNECTION_LOGGERS, quiet_pika
from shared.messaging import connection
from shared.messaging.connection import (
    BROKER,
    Reconnect,
    _BrokerHealth,
    describe,
    node_name,
    node_urls,
    parameters,
    redact,
    run_with_reconnect,
)
from shared.retry import RECONNECT, Backoff

pytestmark = pytest.mark.unit

NOW = Backoff(first=0.0, cap=0.0)  # no waiting in these tests
DEAD = "amqp://worker:s3cret-pw@10.0.0.1:5672/%2F"
ALIVE = "amqp://worker:s3cret-pw@10.0.0.2:5672/%2F"


def refused() -> AMQPConnectionError:
    """What pika's BlockingConnection raises for a closed port: the socket's error three deep."""
    socket_error = AMQPConnectorSocketConnectError(ConnectionRefusedError(111, "Connection refused"))
    return AMQPConnectionError(AMQPConnectionWorkflowFailed([socket_error]))


class FakeConnection:
    def __init__(self, url: str):
        self.url = url
        self.is_open = True

    def close(self) -> None:
        self.is_open = False


class FakeBroker:
    """A connect function: nodes in `dead` refuse; the others connect."""

    def __init__(self, *dead: str):
        self.dead = set(dead)
        self.tried: list[str] = []

    def __call__(self, url: str, *, name: str) -> FakeConnection:
        self.tried.append(url)
        if url in self.dead:
            raise refused()
        return FakeConnection(url)


@pytest.fixture
def health(monkeypatch) -> Health:
    """A health registry of the test's own, so that no test leaves the process's HEALTH down."""
    registry = Health()
    monkeypatch.setattr(connection, "BROKER_HEALTH", _BrokerHealth(registry))
    return registry


# --- the backoff -------------------------------------------------------------------------------------------


def test_reconnect_waits_a_fifth_of_a_second_first_and_never_more_than_one_and_a_half():
    assert 0.1 <= RECONNECT.delay(1) <= 0.2
    waits = [RECONNECT.delay(n) for n in range(1, 200) for _ in range(5)]
    assert max(waits) <= 1.5  # back within 2 s of the broker taking connections, handshake included
    assert all(0.75 <= RECONNECT.delay(n) <= 1.5 for n in range(4, 100))  # jittered, never below half the cap


# --- the nodes -------------------------------------------------------------------------------------------


def test_amqp_url_lists_its_nodes_comma_separated():
    assert node_urls(f" {DEAD} ,{ALIVE},, ") == (DEAD, ALIVE)
    assert node_urls([DEAD, " ", ALIVE]) == (DEAD, ALIVE)
    assert node_urls(DEAD) == (DEAD,)
    with pytest.raises(ValueError, match="AMQP_URL"):
        node_urls(" , ")


def test_connection_parameters_are_one_nodes():
    assert parameters(ALIVE, name="x").host == "10.0.0.2"
    with pytest.raises(ValueError, match="node_urls"):
        parameters(f"{DEAD},{ALIVE}", name="x")


def test_a_dead_first_node_is_passed_over_at_once_for_the_next(health):
    broker = FakeBroker(DEAD)
    stop = threading.Event()
    sessions: list[str] = []

    def session(conn: FakeConnection) -> None:
        sessions.append(conn.url)
        stop.set()

    run_with_reconnect(f"{DEAD},{ALIVE}", "kit-consumer", session, stop, backoff=Backoff(3600, 3600), connector=broker)
    assert broker.tried == [DEAD, ALIVE]  # no wait between the nodes of one round (the backoff would be an hour)
    assert sessions == [ALIVE]


def test_a_lost_connection_moves_on_to_the_next_node_and_round_the_list():
    nodes = Reconnect("amqp://a/,amqp://b/,amqp://c/", "kit", backoff=Backoff(1.0, 1.0), health=_BrokerHealth(Health()))
    seen = [nodes.url]
    for _ in range(4):
        nodes.failed(StreamLostError("Transport indicated EOF"), was_open=True)
        seen.append(nodes.url)
    assert seen == ["amqp://a/", "amqp://b/", "amqp://c/", "amqp://a/", "amqp://b/"]


def test_the_wait_comes_once_every_node_has_failed_in_a_row_and_doubles_per_round():
    nodes = Reconnect("amqp://a/,amqp://b/", "kit", backoff=Backoff(1.0, 8.0), health=_BrokerHealth(Health()))
    assert [nodes.failed(refused()) for _ in range(6)] == [0.0, 1.0, 0.0, 2.0, 0.0, 4.0]
    nodes.connected()
    assert nodes.failed(refused(), was_open=True) == 0.0  # lost: the other node at once


# --- the log line ----------------------------------------------------------------------------------------


def test_each_failed_attempt_is_one_warning_line_naming_attempt_node_and_reason_without_the_password(health, caplog):
    broker = FakeBroker(DEAD, ALIVE)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with caplog.at_level(logging.DEBUG, logger="shared.messaging.connection"):
        run_with_reconnect(f"{DEAD},{ALIVE}", "kit-consumer", lambda c: None, stop, backoff=Backoff(0.05, 0.05),
                           connector=broker)  # fmt: skip
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(broker.tried) >= 3
    first = warnings[0]
    assert first.attempt == 1 and warnings[1].attempt == 2
    assert first.node == "amqp://worker@10.0.0.1:5672/%2F" and warnings[1].node == "amqp://worker@10.0.0.2:5672/%2F"
    assert first.error == "AMQPConnectionError: ConnectionRefusedError: [Errno 111] Connection refused"
    assert first.exc_info is None  # the traceback only at DEBUG
    assert all("s3cret-pw" not in r.getMessage() and "s3cret-pw" not in str(r.__dict__) for r in caplog.records)
    assert [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_url_in_a_reason_loses_its_password():
    assert (
        redact("cannot reach amqp://worker:s3cret-pw@node-1:5672/%2F now")
        == "cannot reach amqp://worker@node-1:5672/%2F now"
    )
    assert node_name("amqp://node-1:5672/%2F") == "amqp://node-1:5672/%2F"
    assert "s3cret-pw" not in describe(OSError(f"bad {DEAD}"))


def test_a_reason_is_the_innermost_cause_on_one_line():
    assert describe(refused()) == "AMQPConnectionError: ConnectionRefusedError: [Errno 111] Connection refused"
    assert describe(StreamLostError("Transport indicated EOF")) == "StreamLostError: Transport indicated EOF"
    assert describe(OSError("two\nlines")) == "OSError: two lines"
    assert describe(None) == "connection closed"


def test_pikas_own_connection_errors_are_quiet_unless_debugging():
    try:
        quiet_pika()
        assert all(logging.getLogger(n).level == logging.CRITICAL for n in PIKA_CONNECTION_LOGGERS)
        quiet_pika(debug=True)
        assert all(logging.getLogger(n).level == logging.NOTSET for n in PIKA_CONNECTION_LOGGERS)
    finally:
        quiet_pika(debug=True)


# --- health and the rules kept ---------------------------------------------------------------------------


def test_the_broker_is_down_while_a_loop_cannot_connect_and_up_once_it_has(health):
    broker = FakeBroker(DEAD)
    stop = threading.Event()
    seen: list[dict] = []

    def session(_conn) -> None:
        seen.append(health.report()["down"])
        stop.set()

    nodes = Reconnect(DEAD, "kit-relay", backoff=NOW, health=connection.BROKER_HEALTH)
    assert health.report()["down"][BROKER]["reason"] == "kit-relay: not connected yet"
    nodes.failed(refused())
    assert (
        "kit-relay: amqp://worker@10.0.0.1:5672/%2F: AMQPConnectionError" in health.report()["down"][BROKER]["reason"]
    )
    run_with_reconnect(f"{DEAD},{ALIVE}", "kit-consumer", session, stop, backoff=NOW, connector=broker)
    assert BROKER in seen[0] and "kit-consumer" not in seen[0][BROKER]["reason"]  # the relay is still down
    nodes.connected()
    assert health.ready  # every connection up; the consumer's loop, stopped, no longer counts


def test_a_channel_error_is_raised_not_retried(health):
    def session(_conn) -> None:
        raise ChannelClosedByBroker(403, "ACCESS_REFUSED")

    with pytest.raises(ChannelClosedByBroker):
        run_with_reconnect(ALIVE, "kit", session, threading.Event(), backoff=NOW, connector=FakeBroker())
    assert health.ready
