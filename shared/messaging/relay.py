"""The outbox relay: publishes committed outbox rows, marks each sent only after the broker confirms.

Publisher confirms + `mandatory`: a confirm alone does not mean "queued" (an unroutable message is
confirmed too), so an unroutable row stays pending and is retried with backoff
(https://www.rabbitmq.com/docs/confirms#publisher-confirms). A crash between confirm and commit
re-publishes the row: consumers' inboxes make that harmless.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pika
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from pika.adapters.blocking_connection import BlockingConnection
from pika.exceptions import NackError, UnroutableError
from sqlalchemy import delete, select
from sqlalchemy.orm import sessionmaker

from shared.messaging import CONTENT_TYPE, EXCHANGE
from shared.messaging.connection import run_with_reconnect
from shared.messaging.topology import declare_exchanges
from shared.outbox import OutboxMixin, utcnow
from shared.telemetry import carrier_from_current, context_from, set_ids, tracer

log = logging.getLogger(__name__)
RETENTION = timedelta(days=7)


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
    ):
        self._url = amqp_url
        # RabbitMQ checks `user_id` against the connection's user, so consumers can trust it to say who
        # published (https://www.rabbitmq.com/docs/validated-user-id).
        self._user_id = pika.URLParameters(amqp_url).credentials.username
        self._sessions = session_factory
        self._model = model
        self._name = name
        self._poll = poll_interval
        self._batch = batch_size
        self._declare = declare_exchanges
        self._wake = threading.Event()
        self._tracer = tracer(__name__)
        self._last_prune = utcnow() - RETENTION

    def wake(self) -> None:
        """Called after a local commit that added outbox rows: publish now rather than at the next poll."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        run_with_reconnect(self._url, f"{self._name}-relay", lambda c: self._session(c, stop), stop)

    def _session(self, connection: BlockingConnection, stop: threading.Event) -> None:
        channel = connection.channel()
        declare_exchanges(channel, passive=not self._declare)
        channel.confirm_delivery()
        while not stop.is_set():
            published = self.publish_pending(channel)
            if published < self._batch:
                # Idle: service heartbeats, then wait for a wake-up or the next poll.
                connection.process_data_events(time_limit=0)
                self._wake.wait(self._poll)
                self._wake.clear()
            self._prune_sometimes()

    def publish_pending(self, channel) -> int:
        model = self._model
        # The idle poll runs several times a second: keep it out of the traces. Each publish below runs
        # in its row's own stored context, so the event's spans are still recorded.
        with suppress_instrumentation(), self._sessions.begin() as session:
            rows = session.scalars(
                select(model)
                .where(model.sent_at.is_(None), model.next_attempt_at <= utcnow())
                .order_by(model.created_at)
                .limit(self._batch)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                self._publish_one(channel, row)
        return len(rows)

    def _publish_one(self, channel, row: OutboxMixin) -> None:
        parent = context_from({"traceparent": row.traceparent or "", "tracestate": row.tracestate or ""})
        token = otel_context.attach(parent)
        try:
            with self._tracer.start_as_current_span(f"{row.type} send", kind=trace.SpanKind.PRODUCER) as span:
                set_ids(span, event=row.type)
                span.set_attribute("messaging.message.id", row.id)
                properties = pika.BasicProperties(
                    message_id=row.id,
                    type=row.type,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    content_type=CONTENT_TYPE,
                    user_id=self._user_id,
                    headers=carrier_from_current(),
                )
                try:
                    channel.basic_publish(EXCHANGE, row.routing_key, row.payload.encode(), properties, mandatory=True)
                except (UnroutableError, NackError) as exc:
                    row.attempts += 1
                    delay = min(300.0, 0.5 * 2 ** min(row.attempts, 10))
                    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
                    reason = "no queue is bound for it" if isinstance(exc, UnroutableError) else "broker nack"
                    row.last_error = f"{exc.__class__.__name__}: {reason}"
                    span.set_status(trace.Status(trace.StatusCode.ERROR, reason))
                    log.warning(
                        "event not accepted by the broker; will retry",
                        extra={
                            "event_type": row.type,
                            "event_id": row.id,
                            "reason": reason,
                            "retry_in_s": delay,
                        },
                    )
                    return
                row.sent_at = utcnow()
                row.attempts += 1
        finally:
            otel_context.detach(token)

    def _prune_sometimes(self) -> None:
        now = utcnow()
        if now - self._last_prune < timedelta(hours=1):
            return
        self._last_prune = now
        with self._sessions.begin() as session:
            session.execute(delete(self._model).where(self._model.sent_at < now - RETENTION))
