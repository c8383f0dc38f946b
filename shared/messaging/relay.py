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

A publish the broker refuses (403: the user's topic permissions do not allow the routing key, e.g. a
charity's user and an event the catalogue does not let it publish) closes the channel, and with it the
batch's confirms. The relay does not crash on it: it publishes the rows of that batch one by one until the
refused row shows itself, holds that row back with the broker's reason (retried with a long backoff, so a
permission fixed later lets it go), and the other rows flow on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

import pika
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from pika.exceptions import NackError, UnroutableError
from sqlalchemy import Connection, Row, bindparam, delete, select, update
from sqlalchemy.orm import sessionmaker

from shared.clock import utcnow
from shared.db import is_unavailable
from shared.messaging import CONTENT_TYPE
from shared.messaging.notify import CommitListener
from shared.messaging.publisher import AsyncPublisher, Outcome
from shared.outbox import OutboxMixin
from shared.retry import RECONNECT, REFUSED_ROW, UNSENT_ROW
from shared.telemetry import context_from, set_ids, tracer

log = logging.getLogger(__name__)
RETENTION = timedelta(days=7)
CONFIRM_TIMEOUT_S = 30.0
_REASONS = {Outcome.UNROUTABLE: "no queue is bound for it", Outcome.NACKED: "broker nack"}
_ERRORS = {Outcome.UNROUTABLE: UnroutableError.__name__, Outcome.NACKED: NackError.__name__}
ACCESS_REFUSED = 403


def _refused(error: BaseException | None) -> bool:
    return isinstance(error, pika.exceptions.ChannelClosedByBroker) and error.reply_code == ACCESS_REFUSED


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
        self._select_one = self._select_due.limit(1)  # while finding a row the broker refused
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
        # Rows of a batch whose channel a refused publish closed: published one at a time until each settles.
        self._suspects: set[str] = set()

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
        # The I/O loop sleeps until its next poll (up to poll_interval): a stop must wake it, not wait for that.
        threading.Thread(target=self._wake_on, args=(stop,), name=f"{self._name}-relay-stop", daemon=True).start()
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
                abandoned = self._abandon_batch()
            if publisher.error is not None and _refused(publisher.error) and abandoned:
                self._find_refused(abandoned, publisher.error)
                continue  # at once: the connection itself is fine
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
            delay = RECONNECT.delay(failures)
            log.warning(
                f"{lost}; reconnecting",
                extra={"connection": f"{self._name}-relay", "retry_in_s": round(delay, 2)},
            )
            stop.wait(delay)

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._kick()  # its tick sees `stop` and closes the connection; run() then returns

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
                select_due = self._select_one if self._suspects else self._select_due
            rows = connection.execute(select_due, {"now": utcnow()}).all()
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
        self._suspects.difference_update(batch.rows)
        more = len(batch.rows) >= self._batch_size or self._again or bool(self._suspects)
        self._again = False
        self._schedule(0 if more else self._idle_wait())

    def _confirms_overdue(self) -> None:
        log.warning("publisher confirms overdue; reconnecting", extra={"connection": f"{self._name}-relay"})
        if self._publisher is not None:
            self._publisher.close()

    def _abandon_batch(self) -> dict[str, Row]:
        """The connection went before every confirm came: only the rows the broker already confirmed are
        marked sent; the others stay pending (sent again: consumers' inboxes drop a duplicate). Its rows."""
        batch, self._batch = self._batch, None
        self._again = False
        self._timer = None
        if batch is None:
            return {}
        confirmed = [row_id for row_id, outcome in batch.outcomes.items() if outcome is Outcome.SENT]
        for row_id, span in batch.spans.items():
            if row_id not in confirmed:
                span.set_status(trace.Status(trace.StatusCode.ERROR, "no confirm before the connection closed"))
            span.end()
        try:
            with suppress_instrumentation():
                if confirmed:
                    batch.connection.execute(self._mark_sent, {"ids": confirmed, "now": utcnow()})
                    batch.connection.commit()
                else:
                    batch.connection.rollback()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
        finally:
            batch.connection.close()
        return {row_id: row for row_id, row in batch.rows.items() if row_id not in confirmed}

    def _find_refused(self, abandoned: dict[str, Row], error: BaseException) -> None:
        """A publish of the abandoned batch was refused: with one row, hold it back; else find which."""
        if len(abandoned) > 1:
            self._suspects = set(abandoned)
            log.warning(
                "the broker refused a publish; publishing that batch one by one to find it",
                extra={"connection": f"{self._name}-relay", "rows": len(abandoned)},
            )
            return
        [row] = abandoned.values()
        self._suspects.discard(row.id)
        reason = str(getattr(error, "reply_text", "") or "access refused")[:300]
        delay = REFUSED_ROW.delay(row.attempts + 1)
        try:
            with suppress_instrumentation(), self._engine.begin() as connection:
                connection.execute(
                    self._mark_refused,
                    {
                        "row_id": row.id,
                        "attempts": row.attempts + 1,
                        "retry_at": utcnow() + timedelta(seconds=delay),
                        "error": f"refused by the broker: {reason}",
                    },
                )
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self._suspects.add(row.id)  # still pending: it is found again once the database is back
            return
        log.warning(
            "event refused by the broker (permissions); held back, the others go on",
            extra={"event_type": row.type, "event_id": row.id, "reason": reason, "retry_in_s": delay},
        )

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
                delay = UNSENT_ROW.delay(row.attempts + 1)
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

    def _prune_sometimes(self) -> None:
        now = utcnow()
        if now - self._last_prune < timedelta(hours=1):
            return
        self._last_prune = now
        with self._sessions.begin() as session:
            session.execute(delete(self._model).where(self._model.sent_at < now - RETENTION))
