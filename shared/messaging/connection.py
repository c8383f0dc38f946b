"""One pika BlockingConnection per thread, made in that thread, reconnecting with backoff through the nodes.

pika's connections are not thread-safe and never reconnect by themselves (pika FAQ; pika#1237). A
BlockingConnection only sends heartbeats while it does I/O, so loops call process_data_events while idle.

`AMQP_URL` may list several nodes of one cluster, comma-separated. A loop goes through them in turn
(`Reconnect`): it stays on the node it reached, and after a failure tries the next node at once, waiting
(shared.retry's RECONNECT) only once every node has failed in a row. Each failed attempt is one WARNING line
(attempt, node without its password, reason); the traceback only at DEBUG. pika's own ERROR lines for the
same failure are quieted by shared.logs. While a loop cannot reach any node, the process's health says the
broker is down (shared.health, the worker's /readyz).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import pika
from pika.adapters.blocking_connection import BlockingConnection
from pika.exceptions import AMQPChannelError, AMQPConnectionError, ConnectionClosedByBroker

from shared.health import HEALTH, Health
from shared.retry import RECONNECT, Backoff

log = logging.getLogger(__name__)

BROKER = "broker"  # the dependency's name in shared.health
_CREDENTIALS = re.compile(r"(\w+://[^:/@\s]+):[^@\s]*@")


def node_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    """The broker's nodes: a comma-separated string (as AMQP_URL is given) or a sequence of URLs."""
    items = urls.split(",") if isinstance(urls, str) else urls
    nodes = tuple(u.strip() for u in items if u.strip())
    if not nodes:
        raise ValueError("no broker URL given (AMQP_URL lists its nodes, comma-separated)")
    return nodes


def redact(text: str) -> str:
    """`text` with the password of any URL in it left out (`amqp://user@host`), for logs and health reports."""
    return _CREDENTIALS.sub(r"\1@", text)


def node_name(url: str) -> str:
    """A node's URL as it may be logged: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}"))


def describe(error: BaseException | None) -> str:
    """The exception class and a one-line message, of the innermost cause pika wraps (its connection workflow
    nests the socket's error two or three deep, and `str()` of the outer one is empty). No credentials."""
    if error is None:
        return "connection closed"
    inner = error
    for _ in range(6):
        nested = getattr(inner, "exceptions", None) or [getattr(inner, "exception", None)]  # pika's workflow
        cause = nested[-1] if isinstance(nested[-1], BaseException) else None
        if cause is None and inner.args and isinstance(inner.args[0], BaseException):
            cause = inner.args[0]
        if cause is None:
            break
        inner = cause
    message = " ".join(str(inner).split()) or inner.__class__.__name__
    text = error.__class__.__name__ if inner is error else f"{error.__class__.__name__}: {inner.__class__.__name__}"
    return redact(f"{text}: {message}")[:300]


def parameters(url: str, *, name: str) -> pika.URLParameters:
    """One node's connection parameters (a loop that reconnects goes through the nodes with `Reconnect`)."""
    if "," in url:
        raise ValueError("parameters() takes one node's URL: split AMQP_URL with node_urls()")
    params = pika.URLParameters(url)
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": name}
    return params


def connect(url: str, *, name: str) -> BlockingConnection:
    return BlockingConnection(parameters(url, name=name))


class _BrokerHealth:
    """The process's one "broker" entry in shared.health, over all its connections: down while any of them
    is (the reason names which), up once every one is connected again."""

    def __init__(self, health: Health = HEALTH):
        self._health = health
        self._lock = threading.Lock()
        self._down: dict[str, str] = {}

    def down(self, connection: str, reason: str) -> None:
        with self._lock:
            self._down[connection] = reason
            self._report()

    def up(self, connection: str) -> None:
        with self._lock:
            if self._down.pop(connection, None) is not None:
                self._report()

    def _report(self) -> None:
        if self._down:
            self._health.down(BROKER, "; ".join(f"{c}: {r}" for c, r in sorted(self._down.items())))
        else:
            self._health.up(BROKER)


BROKER_HEALTH = _BrokerHealth()


class Reconnect:
    """One loop's way through the broker's nodes: which node to try, how long to wait before it, and the
    WARNING line (and health report) of each failed attempt. Not thread-safe: one per loop."""

    def __init__(
        self,
        urls: str | Sequence[str],
        name: str,
        *,
        backoff: Backoff = RECONNECT,
        health: _BrokerHealth | None = None,
    ):
        self.nodes = node_urls(urls)
        self.name = name
        self._backoff = backoff
        self._health = health or BROKER_HEALTH
        self._next = 0
        self.failures = 0  # attempts failed in a row
        self._health.down(name, "not connected yet")

    @property
    def url(self) -> str:
        """The node to try now."""
        return self.nodes[self._next]

    def connected(self) -> None:
        self.failures = 0
        self._health.up(self.name)

    def failed(self, error: BaseException | None, *, was_open: bool = False) -> float:
        """The attempt on `url` failed (or its connection was lost, `was_open`): log it, say so, move on to the
        next node. The seconds to wait before the next attempt: none while a node of this round is untried."""
        self.failures += 1
        node = node_name(self.url)
        reason = describe(error)
        self._next = (self._next + 1) % len(self.nodes)
        rounds, untried = divmod(self.failures, len(self.nodes))
        delay = 0.0 if untried else self._backoff.delay(rounds)
        self._health.down(self.name, f"{node}: {reason}")
        log.warning(
            f"broker connection {'lost' if was_open else 'failed'} ({reason}); reconnecting",
            extra={
                "connection": self.name,
                "attempt": self.failures,
                "node": node,
                "error": reason,
                "retry_in_s": round(delay, 2),
            },
        )
        log.debug("broker connection failure", extra={"connection": self.name, "node": node}, exc_info=error)
        return delay

    def stopped(self) -> None:
        """The loop is done with the broker: its connection no longer counts for the process's health."""
        self._health.up(self.name)


def run_with_reconnect(
    urls: str | Sequence[str],
    name: str,
    session: Callable[[BlockingConnection], None],
    stop: threading.Event,
    *,
    backoff: Backoff = RECONNECT,
    connector: Callable[..., BlockingConnection] = connect,
) -> None:
    """Run `session(connection)` until `stop` is set, reconnecting after connection failures, through the
    nodes of `urls` (AMQP_URL: one URL or several, comma-separated) in turn.

    A channel error (a 403, a wrong queue argument) is a bug or a misconfiguration, not a network blip:
    it is raised, not retried.
    """
    nodes = Reconnect(urls, name, backoff=backoff)
    try:
        while not stop.is_set():
            connection = None
            try:
                connection = connector(nodes.url, name=name)
                nodes.connected()
                session(connection)
            except AMQPChannelError:
                raise
            except (AMQPConnectionError, ConnectionClosedByBroker, OSError) as exc:
                stop.wait(nodes.failed(exc, was_open=connection is not None))
            finally:
                if connection is not None and connection.is_open:
                    with contextlib.suppress(Exception):  # closing a dying connection may fail
                        connection.close()
    finally:
        nodes.stopped()
