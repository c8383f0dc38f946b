"""One pika BlockingConnection per thread, made in that thread, reconnecting with backoff.

pika's connections are not thread-safe and never reconnect by themselves (pika FAQ; pika#1237). A
BlockingConnection only sends heartbeats while it does I/O, so loops call process_data_events while idle.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingConnection
from pika.exceptions import AMQPChannelError, AMQPConnectionError, ConnectionClosedByBroker

from shared.retry import RECONNECT, Backoff

log = logging.getLogger(__name__)


def parameters(url: str, *, name: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": name}
    return params


def connect(url: str, *, name: str) -> BlockingConnection:
    return BlockingConnection(parameters(url, name=name))


def run_with_reconnect(
    url: str,
    name: str,
    session: Callable[[BlockingConnection], None],
    stop: threading.Event,
    *,
    backoff: Backoff = RECONNECT,
) -> None:
    """Run `session(connection)` until `stop` is set, reconnecting after connection failures.

    A channel error (a 403, a wrong queue argument) is a bug or a misconfiguration, not a network blip:
    it is raised, not retried.
    """
    failures = 0
    while not stop.is_set():
        connection = None
        try:
            connection = connect(url, name=name)
            failures = 0
            session(connection)
        except AMQPChannelError:
            raise
        except (AMQPConnectionError, ConnectionClosedByBroker, OSError) as exc:
            failures += 1
            delay = backoff.delay(failures)
            log.warning(
                "broker connection lost; reconnecting",
                extra={"connection": name, "error": exc.__class__.__name__, "retry_in_s": round(delay, 2)},
            )
            stop.wait(delay)
        finally:
            if connection is not None and connection.is_open:
                with contextlib.suppress(Exception):  # closing a dying connection may fail
                    connection.close()
