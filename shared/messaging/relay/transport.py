"""The relay's transport: one broker connection, outbox rows published with all their confirms in flight.

Publisher confirms + `mandatory`: a confirm alone does not mean "queued" (an unroutable message is
confirmed too), so the outcome of each row is SENT, UNROUTABLE or NACKED
(https://www.rabbitmq.com/docs/confirms#publisher-confirms; shared.messaging.publisher keeps the books).
A batch settles when its last confirm is in, or is abandoned when the connection goes first.

Each row is published in a producer span of its own, in the trace context stored on the row, and that
context travels on in the message's headers: the trace continues across the gap between commit and publish.

Everything here runs in the connection's I/O loop (pika connections are not thread-safe): the loop's
callbacks, timers (`call_later`) and `call_soon_threadsafe` (the one entry from other threads). An exception
in any of them closes the connection and is kept in `failure`, for the relay to decide on; it must not
leave the I/O loop half-alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeGuard

import pika
from opentelemetry import propagate, trace
from pika.exceptions import NackError, UnroutableError
from sqlalchemy import Row

from shared.messaging import CONTENT_TYPE
from shared.messaging.publisher import AsyncPublisher, Outcome
from shared.telemetry import context_from, set_ids, tracer

log = logging.getLogger("shared.messaging.relay")
CONFIRM_TIMEOUT_S = 30.0
ACCESS_REFUSED = 403
# Why a row the broker did not take is still pending: for its span's status, its `last_error` and the log.
REASONS = {Outcome.UNROUTABLE: "no queue is bound for it", Outcome.NACKED: "broker nack"}
ERRORS = {Outcome.UNROUTABLE: UnroutableError.__name__, Outcome.NACKED: NackError.__name__}


def refused(error: BaseException | None) -> TypeGuard[pika.exceptions.ChannelClosedByBroker]:
    """A publish the broker refused (403: the user's topic permissions do not allow the routing key)."""
    return isinstance(error, pika.exceptions.ChannelClosedByBroker) and error.reply_code == ACCESS_REFUSED


@dataclass
class _InFlight:
    """A published batch awaiting its confirms."""

    spans: dict[str, trace.Span]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    timeout: object = None


class Transport:
    """One connection of the relay, its I/O loop run by `run()` in the calling thread until it closes.

    `on_ready()` runs when the channel can publish; `send(rows)` publishes a batch; `on_settled(outcomes)`
    runs once every row of the batch has its outcome (its spans already ended). `opened` says whether the
    connection got as far as publishing, `error` holds a channel error the broker closed it with,
    `closed_by` why the connection failed or closed, and `failure` an exception raised in one of the
    callbacks. `amqp_url` is one node's (the relay goes through AMQP_URL's nodes).
    """

    def __init__(
        self,
        amqp_url: str,
        name: str,
        *,
        on_ready: Callable[[], None],
        on_settled: Callable[[dict[str, Outcome]], None],
        passive: bool = False,
    ):
        self._name = name
        # RabbitMQ checks `user_id` against the connection's user, so consumers can trust it to say who
        # published (https://www.rabbitmq.com/docs/validated-user-id).
        self._user_id = pika.URLParameters(amqp_url).credentials.username
        self._tracer = tracer("shared.messaging.relay")
        self._on_settled = on_settled
        self._batch: _InFlight | None = None
        self.failure: BaseException | None = None
        self._publisher = AsyncPublisher(
            amqp_url,
            name,
            on_ready=self._guarded(lambda _publisher: on_ready()),
            on_settled=self._guarded(self._confirmed),
            passive=passive,
        )

    @property
    def opened(self) -> bool:
        return self._publisher.opened

    @property
    def error(self) -> Exception | None:
        return self._publisher.error

    @property
    def closed_by(self) -> BaseException | None:
        return self._publisher.closed_by

    @property
    def busy(self) -> bool:
        """A batch is awaiting its confirms."""
        return self._batch is not None

    def run(self) -> None:
        self._publisher.run()

    def close(self) -> None:
        self._publisher.close()

    # --- the I/O loop's timers and wake-ups ---------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        return self._publisher.call_later(delay, self._guarded(callback))

    def cancel(self, handle: object) -> None:
        self._publisher.cancel(handle)

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        self._publisher.call_soon_threadsafe(self._guarded(callback))

    def _guarded(self, callback):
        def guarded(*args):
            try:
                callback(*args)
            except BaseException as exc:
                self.failure = exc
                self._publisher.close()

        return guarded

    # --- a batch ----------------------------------------------------------------------------------------

    def send(self, rows: Iterable[Row]) -> None:
        """Publish each row in its producer span, all confirms in flight; they must come within
        CONFIRM_TIMEOUT_S, or the connection is closed (and the batch abandoned)."""
        self._batch = batch = _InFlight({})
        for row in rows:
            span, properties = self._start_send(row)
            batch.spans[row.id] = span
            self._publisher.publish(row.routing_key, row.payload.encode(), properties, row.id)
        batch.timeout = self._publisher.call_later(CONFIRM_TIMEOUT_S, self._confirms_overdue)

    def _start_send(self, row: Row) -> tuple[trace.Span, pika.BasicProperties]:
        """The producer span, in the context stored on the row, and the message's properties."""
        parent = context_from({"traceparent": row.traceparent or "", "tracestate": row.tracestate or ""})
        span = self._tracer.start_span(f"{row.type} send", context=parent, kind=trace.SpanKind.PRODUCER)
        set_ids(span, event=row.type)
        span.set_attribute("messaging.message.id", row.id)
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span, parent))
        properties = pika.BasicProperties(
            message_id=row.id,
            type=row.type,
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type=CONTENT_TYPE,
            user_id=self._user_id,
            headers=headers,
        )
        return span, properties

    def _confirmed(self, settled: list[tuple[str, Outcome]]) -> None:
        batch = self._batch
        if batch is None:
            return
        for row_id, outcome in settled:
            batch.outcomes[row_id] = outcome
        if len(batch.outcomes) < len(batch.spans):
            return
        self._batch = None
        if batch.timeout is not None:
            self._publisher.cancel(batch.timeout)
        for row_id, span in batch.spans.items():
            outcome = batch.outcomes[row_id]
            if outcome is not Outcome.SENT:
                span.set_status(trace.Status(trace.StatusCode.ERROR, REASONS[outcome]))
            span.end()
        self._on_settled(batch.outcomes)

    def _confirms_overdue(self) -> None:
        log.warning("publisher confirms overdue; reconnecting", extra={"connection": self._name})
        self._publisher.close()

    def abandon(self) -> list[str]:
        """The connection went (or is going) before every confirm came: end the batch. The ids of the rows
        the broker had confirmed; the spans of the others end in error."""
        batch, self._batch = self._batch, None
        if batch is None:
            return []
        confirmed = [row_id for row_id, outcome in batch.outcomes.items() if outcome is Outcome.SENT]
        for row_id, span in batch.spans.items():
            if row_id not in confirmed:
                span.set_status(trace.Status(trace.StatusCode.ERROR, "no confirm before the connection closed"))
            span.end()
        return confirmed
