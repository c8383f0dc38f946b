"""The outbox relay: publishes committed outbox rows, marks each sent only after the broker confirms it.

Publisher confirms + `mandatory`: a confirm alone does not mean "queued" (an unroutable message is
confirmed too), so an unroutable row stays pending and is retried with backoff, and so does a nacked one
(https://www.rabbitmq.com/docs/confirms#publisher-confirms). A crash between confirm and commit
re-publishes the row: consumers' inboxes make that harmless.

How it keeps up (bench/README.md has the profiles):
- a batch of rows is published with all their confirms in flight, and the batch's transaction (which
  holds the rows' locks) commits once every confirm of the batch is in (shared.messaging.publisher);
- it wakes on commit: on PostgreSQL each transaction that stages an event NOTIFYs, and a listener wakes
  the relay (shared.messaging.notify); in the worker's own process, handlers call `wake()` after commit.
  Polling remains the fallback: every `poll_interval` without notifications (SQLite, listener down), every
  `listen_poll_interval` with them (rows due for a retry, anything missed).
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import timedelta

import pika
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from pika.exceptions import NackError, UnroutableError
from sqlalchemy import Connection, Row, bindparam, delete, select, update
from sqlalchemy.orm import sessionmaker

from shared.db import is_unavailable
from shared.messaging import CONTENT_TYPE, EXCHANGE
from shared.messaging.notify import CommitListener
from shared.messaging.publisher import AsyncPublisher, Outcome
from shared.outbox import OutboxMixin, utcnow
from shared.telemetry import context_from, set_ids, tracer

log = logging.getLogger(__name__)
RETENTION = timedelta(days=7)
CONFIRM_TIMEOUT_S = 30.0
_REASONS = {Outcome.UNROUTABLE: "no queue is bound for it", Outcome.NACKED: "broker nack"}
_ERRORS = {Outcome.UNROUTABLE: UnroutableError.__name__, Outcome.NACKED: NackError.__name__}


@dataclass
class _Batch:
    """Rows published and awaiting their confirms, in the open transaction that locks them."""

    connection: Connection  # in a transaction
    rows: dict[str, Row]
    spans: dict[str, trace.Span]
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    timeout: object = None


class OutboxRelay:
    def __init__(
        self,
        amqp_url: str,
        session_factory: sessionmaker,
        model: type[OutboxMixin],
        *,
        name: str,
        poll_interval: float = 0.05,
        batch_size: int = 100,
        declare_exchanges: bool = True,
        listen: bool = True,
        listen_poll_interval: float = 1.0,
    ):
        self._url = amqp_url
        # RabbitMQ checks `user_id` against the connection's user, so consumers can trust it to say who
        # published (https://www.rabbitmq.com/docs/validated-user-id).
        self._user_id = pika.URLParameters(amqp_url).credentials.username
        self._sessions = session_factory
        self._model = model
        self._name = name
        self._poll = poll_interval
        self._listen_poll = max(poll_interval, listen_poll_interval)
        self._batch_size = batch_size
        self._declare = declare_exchanges
        self._tracer = tracer(__name__)
        self._last_prune = utcnow() - RETENTION
        with session_factory() as session:  # no I/O: only asks which engine it would use
            engine = session.get_bind()
        # Core statements on a pooled connection, built once: the relay only reads a few columns and then
        # updates the whole batch, and the ORM's per-statement work was most of its CPU (bench/README.md).
        self._engine = engine
        table = model.__table__  # type: ignore[attr-defined]
        c = table.c
        self._select_due = (
            select(c.id, c.type, c.routing_key, c.payload, c.traceparent, c.tracestate, c.attempts)
            .where(c.sent_at.is_(None), c.next_attempt_at <= bindparam("now"))
            .order_by(c.created_at)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
        )
        self._mark_sent = (
            update(table)
            .where(c.id.in_(bindparam("ids", expanding=True)))
            .values(sent_at=bindparam("now"), attempts=c.attempts + 1)
        )
        self._mark_refused = (
            update(table)
            .where(c.id == bindparam("row_id"))
            .values(
                attempts=bindparam("attempts"), next_attempt_at=bindparam("retry_at"), last_error=bindparam("error")
            )
        )
        channel = model.__tablename__  # type: ignore[attr-defined]
        self._listener = None
        if listen and CommitListener.supported(engine):
            self._listener = CommitListener(engine, channel, self._kick)
        # State of the current connection, touched only by its I/O loop's thread (wake() excepted).
        self._publisher: AsyncPublisher | None = None
        self._stop = threading.Event()
        self._batch: _Batch | None = None
        self._again = False
        self._timer: object = None
        self._failure: BaseException | None = None
        self._kick_lock = threading.Lock()
        self._kick_pending = False

    @property
    def listening(self) -> bool:
        """Whether commits wake the relay now (PostgreSQL with its listener connected)."""
        return self._listener is not None and self._listener.live

    def wake(self) -> None:
        """Called after a commit that added outbox rows (any thread): publish now, not at the next poll.

        While the listener is live, the commit's own NOTIFY wakes the relay a moment later; a second look
        for the same rows would only cost an empty query, so this does nothing then."""
        if not self.listening:
            self._kick()

    def _kick(self) -> None:
        publisher = self._publisher
        if publisher is None:
            return  # not connected: the first look after connecting finds the rows anyway
        with self._kick_lock:
            if self._kick_pending:
                return
            self._kick_pending = True
        publisher.call_soon_threadsafe(self._kicked)

    def run(self, stop: threading.Event) -> None:
        """Publish until `stop` is set, reconnecting with backoff. A database error or a channel error
        (misconfiguration) is raised, so that the worker exits and its supervisor restarts it."""
        self._stop = stop
        if self._listener is not None:
            self._listener.start(stop)
        failures = 0
        while not stop.is_set():
            publisher = AsyncPublisher(
                self._url,
                f"{self._name}-relay",
                on_ready=self._guarded(self._on_ready),
                on_settled=self._guarded(self._on_settled),
                passive=not self._declare,
            )
            self._publisher, self._failure = publisher, None
            try:
                publisher.run()
            finally:
                self._publisher = None
                self._abandon_batch()
            lost = "broker connection lost"
            if self._failure is not None:
                if not is_unavailable(self._failure):
                    raise self._failure
                # The database dropped a connection or is down: unsent rows stay pending; start again.
                lost = f"database unavailable ({self._failure.__class__.__name__})"
            if publisher.error is not None:
                raise publisher.error
            if stop.is_set():
                break
            failures = 1 if publisher.opened else failures + 1
            delay = min(15.0, 0.25 * 2**failures) * (0.5 + random.random() / 2)
            log.warning(
                f"{lost}; reconnecting",
                extra={"connection": f"{self._name}-relay", "retry_in_s": round(delay, 2)},
            )
            stop.wait(delay)

    # --- the I/O loop's callbacks --------------------------------------------------------------------

    def _guarded(self, callback):
        """Callbacks run inside pika's I/O loop: an exception there must close the connection and reach
        run(), not leave the loop half-alive."""

        def guarded(*args):
            try:
                callback(*args)
            except BaseException as exc:
                self._failure = exc
                if self._publisher is not None:
                    self._publisher.close()

        return guarded

    def _on_ready(self, _publisher: AsyncPublisher) -> None:
        self._schedule(0)

    def _kicked(self) -> None:
        with self._kick_lock:
            self._kick_pending = False
        self._guarded(self._tick)()

    def _schedule(self, delay: float) -> None:
        publisher = self._publisher
        if publisher is None:
            return
        if self._timer is not None:
            publisher.cancel(self._timer)
        self._timer = publisher.call_later(delay, self._guarded(self._tick))

    def _tick(self) -> None:
        publisher = self._publisher
        if publisher is None or not publisher.opened:  # a wake-up before the channel is ready: on_ready looks
            return
        if self._timer is not None:
            publisher.cancel(self._timer)
            self._timer = None
        if self._stop.is_set():
            publisher.close()
            return
        if self._batch is not None:  # confirms outstanding: look again once they are in
            self._again = True
            return
        self._prune_sometimes()
        if self._start_batch(publisher) == 0:
            self._schedule(self._idle_wait())

    def _idle_wait(self) -> float:
        return self._listen_poll if self.listening else self._poll

    def _start_batch(self, publisher: AsyncPublisher) -> int:
        # The idle poll runs several times a second: keep it out of the traces. Each publish below runs in
        # its row's own stored context, so the event's spans are still recorded.
        with suppress_instrumentation():
            connection = self._engine.connect()
        try:
            with suppress_instrumentation():
                connection.begin()
                rows = connection.execute(self._select_due, {"now": utcnow()}).all()
            if not rows:
                with suppress_instrumentation():
                    connection.commit()
                connection.close()
                return 0
            self._batch = _Batch(connection, {row.id: row for row in rows}, {})
            for row in rows:
                span, properties = self._start_send(row)
                self._batch.spans[row.id] = span
                publisher.publish(row.routing_key, row.payload.encode(), properties, row.id)
            self._batch.timeout = publisher.call_later(CONFIRM_TIMEOUT_S, self._confirms_overdue)
            return len(rows)
        except BaseException:
            if self._batch is not None:
                self._abandon_batch()
            else:
                connection.close()
            raise

    def _on_settled(self, settled: list[tuple[str, Outcome]]) -> None:
        batch = self._batch
        if batch is None:
            return
        for row_id, outcome in settled:
            batch.outcomes[row_id] = outcome
        if len(batch.outcomes) < len(batch.rows):
            return
        self._batch = None
        if self._publisher is not None and batch.timeout is not None:
            self._publisher.cancel(batch.timeout)
        try:
            with suppress_instrumentation():
                self._record(batch.connection, [(r, batch.spans[i], batch.outcomes[i]) for i, r in batch.rows.items()])
                batch.connection.commit()
        finally:
            batch.connection.close()
        more = len(batch.rows) >= self._batch_size or self._again
        self._again = False
        self._schedule(0 if more else self._idle_wait())

    def _confirms_overdue(self) -> None:
        log.warning("publisher confirms overdue; reconnecting", extra={"connection": f"{self._name}-relay"})
        if self._publisher is not None:
            self._publisher.close()

    def _abandon_batch(self) -> None:
        """The connection went before every confirm came: nothing of the batch is marked sent."""
        batch, self._batch = self._batch, None
        self._again = False
        self._timer = None
        if batch is None:
            return
        for span in batch.spans.values():
            span.set_status(trace.Status(trace.StatusCode.ERROR, "no confirm before the connection closed"))
            span.end()
        try:
            batch.connection.rollback()
        finally:
            batch.connection.close()

    # --- one row ---------------------------------------------------------------------------------------

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

    def _record(self, connection: Connection, settled: list[tuple[Row, trace.Span, Outcome]]) -> None:
        """Mark confirmed rows sent (one UPDATE for the batch); give the others their next attempt."""
        now = utcnow()
        sent = [row.id for row, _, outcome in settled if outcome is Outcome.SENT]
        if sent:
            connection.execute(self._mark_sent, {"ids": sent, "now": now})
        for row, span, outcome in settled:
            if outcome is not Outcome.SENT:
                delay = min(300.0, 0.5 * 2 ** min(row.attempts + 1, 10))
                connection.execute(
                    self._mark_refused,
                    {
                        "row_id": row.id,
                        "attempts": row.attempts + 1,
                        "retry_at": now + timedelta(seconds=delay),
                        "error": f"{_ERRORS[outcome]}: {_REASONS[outcome]}",
                    },
                )
                span.set_status(trace.Status(trace.StatusCode.ERROR, _REASONS[outcome]))
                log.warning(
                    "event not accepted by the broker; will retry",
                    extra={
                        "event_type": row.type,
                        "event_id": row.id,
                        "reason": _REASONS[outcome],
                        "retry_in_s": delay,
                    },
                )
            span.end()

    def publish_pending(self, channel) -> int:
        """Publish one batch through a pika BlockingChannel in confirm mode, waiting for each confirm.
        For tools and tests; the relay's own loop keeps the confirms in flight instead."""
        with suppress_instrumentation(), self._engine.begin() as connection:
            rows = connection.execute(self._select_due, {"now": utcnow()}).all()
            settled = []
            for row in rows:
                span, properties = self._start_send(row)
                token = otel_context.attach(trace.set_span_in_context(span))
                try:
                    channel.basic_publish(EXCHANGE, row.routing_key, row.payload.encode(), properties, mandatory=True)
                except UnroutableError:
                    settled.append((row, span, Outcome.UNROUTABLE))
                except NackError:
                    settled.append((row, span, Outcome.NACKED))
                else:
                    settled.append((row, span, Outcome.SENT))
                finally:
                    otel_context.detach(token)
            self._record(connection, settled)
        return len(rows)

    def _prune_sometimes(self) -> None:
        now = utcnow()
        if now - self._last_prune < timedelta(hours=1):
            return
        self._last_prune = now
        with self._sessions.begin() as session:
            session.execute(delete(self._model).where(self._model.sent_at < now - RETENTION))
