"""Publishing with many publisher confirms in flight, on pika's SelectConnection, in the calling thread.

Waiting for each confirm caps a publisher near a thousand messages a second (PITFALLS: pika); keeping
confirms in flight reaches ten times that. pika's BlockingChannel waits for each confirm, so this uses
its asynchronous SelectConnection: publish a batch, then let the broker's confirms arrive.

What a confirm means (https://www.rabbitmq.com/docs/confirms#publisher-confirms):
- `basic.ack` for delivery tag N (or, with `multiple`, every tag up to N): the broker has taken
  responsibility for the message;
- `basic.nack`: it has not: publish again later;
- a `mandatory` message that no queue is bound for comes back as `basic.return` *before* its ack: the ack
  then means only "dropped safely", so the message counts as unroutable, not sent.
`ConfirmTracker` keeps that bookkeeping (and is tested without a broker); `AsyncPublisher` drives the
connection. Callers make their own producer spans and put the trace context in the headers (pika is not
instrumented: its instrumentation covered neither SelectConnection, contrib#920, nor anything the platform's own
spans did not already say).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.channel
from pika.spec import Basic

from shared.messaging import EXCHANGE, EXCHANGES
from shared.messaging.connection import parameters
from shared.messaging.envelope import PARTITION_HEADER, partition_key

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    SENT = "sent"
    UNROUTABLE = "unroutable"
    NACKED = "nacked"


class ConfirmTracker:
    """Which published item each delivery tag stands for, and what its confirm said."""

    def __init__(self) -> None:
        self._next_tag = 1
        self._pending: dict[int, tuple[str, Any]] = {}
        self._returned: set[str] = set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def published(self, message_id: str, item: Any) -> int:
        """Record a publish; the channel numbers its messages 1, 2, 3... from Confirm.SelectOk on."""
        tag = self._next_tag
        self._next_tag += 1
        self._pending[tag] = (message_id, item)
        return tag

    def returned(self, message_id: str) -> None:
        self._returned.add(message_id)

    def confirmed(self, tag: int, *, multiple: bool, ack: bool) -> list[tuple[Any, Outcome]]:
        tags = sorted(t for t in self._pending if t <= tag) if multiple else [tag]
        settled = []
        for t in tags:
            entry = self._pending.pop(t, None)
            if entry is None:
                continue
            message_id, item = entry
            was_returned = message_id in self._returned
            self._returned.discard(message_id)
            if not ack:
                settled.append((item, Outcome.NACKED))
            else:
                settled.append((item, Outcome.UNROUTABLE if was_returned else Outcome.SENT))
        return settled

    def abandon(self) -> list[Any]:
        """The channel is gone: these items have no confirm and never will (they were not sent)."""
        items = [item for _, item in self._pending.values()]
        self._pending.clear()
        self._returned.clear()
        return items


class AsyncPublisher:
    """One SelectConnection with one channel in confirm mode, its I/O loop run by `run()` in this thread.

    `on_ready(publisher)` runs when the channel can publish; `on_settled([(item, Outcome)])` runs as confirms
    arrive. Everything else happens inside those callbacks or timers (`call_later`); other threads may only
    call `call_soon_threadsafe` (pika connections are not thread-safe). `run()` returns when the connection
    closes; `opened` says whether it ever got as far as publishing, `error` holds a channel error, and
    `closed_by` why the connection failed or closed (for the caller's one log line).

    `amqp_url` is one node's: a caller that reconnects goes through the nodes of AMQP_URL itself
    (shared.messaging.connection.Reconnect, as the relay does), one AsyncPublisher per attempt.
    """

    def __init__(
        self,
        amqp_url: str,
        name: str,
        *,
        on_ready: Callable[[AsyncPublisher], None],
        on_settled: Callable[[list[tuple[Any, Outcome]]], None],
        passive: bool = False,
    ):
        self._params = parameters(amqp_url, name=name)
        self._on_ready = on_ready
        self._on_settled = on_settled
        self._passive = passive
        self._tracker = ConfirmTracker()
        self._channel: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self.opened = False
        self.error: Exception | None = None
        self.closed_by: BaseException | None = None
        self.connection = pika.SelectConnection(
            self._params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close,
        )

    @property
    def in_flight(self) -> int:
        return self._tracker.in_flight

    def run(self) -> None:
        self.connection.ioloop.start()

    def publish(self, routing_key: str, body: bytes, properties: pika.BasicProperties, item: Any) -> None:
        """Publish to the platform's exchange with `mandatory`; `item`'s outcome comes to on_settled. The event's
        subject goes in the header a partitioned queue's exchange hashes on (envelope.PARTITION_HEADER)."""
        if properties.headers is None:
            properties.headers = {}
        properties.headers.setdefault(PARTITION_HEADER, partition_key(body))
        self._channel.basic_publish(EXCHANGE, routing_key, body, properties, mandatory=True)
        self._tracker.published(properties.message_id, item)

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        return self.connection.ioloop.call_later(delay, callback)

    def cancel(self, handle: object) -> None:
        self.connection.ioloop.remove_timeout(handle)

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self.connection.ioloop.add_callback_threadsafe(callback)
            except Exception:  # the loop is closing: the next connection starts with a fresh look anyway
                log.debug("wake-up after the loop closed ignored", exc_info=True)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
        elif not (self.connection.is_closing or self.connection.is_closed):
            self.connection.ioloop.stop()

    # --- connection and channel set-up ---------------------------------------------------------------

    def _on_open(self, connection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, _connection, error) -> None:
        self.closed_by = error if isinstance(error, BaseException) else None
        self._finish(error if isinstance(error, Exception) else None)

    def _on_close(self, _connection, reason) -> None:
        self.closed_by = reason if isinstance(reason, BaseException) else None
        self._finish(None)

    def _finish(self, _error) -> None:
        with self._lock:
            self._closed = True
        abandoned = self._tracker.abandon()
        if abandoned:
            log.warning("connection closed with confirms outstanding", extra={"in_flight": len(abandoned)})
        self.connection.ioloop.stop()

    def _on_channel(self, channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        self._declare(list(EXCHANGES))

    def _declare(self, remaining: list[tuple[str, str]]) -> None:
        if not remaining:
            self._channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode)
            return
        (name, kind), rest = remaining[0], remaining[1:]
        self._channel.exchange_declare(
            exchange=name,
            exchange_type=kind,
            durable=True,
            passive=self._passive,
            callback=lambda _frame: self._declare(rest),
        )

    def _on_confirm_mode(self, _frame) -> None:
        self.opened = True
        self._on_ready(self)

    def _on_channel_closed(self, _channel, reason) -> None:
        # A channel closed by the broker is a misconfiguration (a 403, a missing exchange): say so, stop.
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            self.error = reason
        if self.connection.is_open:
            self.connection.close()

    def _on_return(self, _channel, _method, properties, _body) -> None:
        self._tracker.returned(properties.message_id)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        ack = isinstance(method, Basic.Ack)
        settled = self._tracker.confirmed(method.delivery_tag, multiple=method.multiple, ack=ack)
        if settled:
            self._on_settled(settled)
