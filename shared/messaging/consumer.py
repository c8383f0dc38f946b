"""The consume loop: handle, commit, then ack; retry later on failure; park after the last attempt.

- Ack only after the handler's transaction commits (a crash before the ack redelivers; the inbox makes the
  second delivery a no-op).
- A failure rejects the message (requeue=False) into `Q.retry`, whose TTL brings it back after a delay.
- Attempts are counted from `x-death`; after the last, the message is published to `Q.parking` (with
  confirms) and then acked. A message that is not a valid event, or that a handler rejects as permanently
  wrong (PermanentError), is parked at once.
- The quorum queue's `x-delivery-limit` catches messages that crash the worker before it can decide.
- `lanes` > 1 handles messages on that many threads, each message on the lane its subject (the referral) hashes
  to: one referral's events keep their order, while a handler waiting on the network (e.g. one fetching a
  record from another service) no longer holds up the others. Each still commits, then acks, on its own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import zlib
from collections.abc import Callable

import pika
from opentelemetry import context as otel_context
from opentelemetry import trace
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from shared.messaging import PARKING_EXCHANGE
from shared.messaging.connection import run_with_reconnect
from shared.messaging.envelope import Event, MalformedEvent
from shared.messaging.errors import PermanentError
from shared.messaging.topology import QueueSpec, attempts_so_far, declare_queue, published_routing_key
from shared.telemetry import context_from, instrument_pika, set_ids, tracer

log = logging.getLogger(__name__)


class Consumer:
    def __init__(
        self,
        amqp_url: str,
        spec: QueueSpec,
        handle: Callable[[Event], None],
        *,
        max_attempts: int = 5,
        prefetch: int = 20,
        lanes: int = 1,
    ):
        self._url = amqp_url
        self.spec = spec
        self._handle = handle
        self._max_attempts = max_attempts
        self._prefetch = prefetch
        self._lanes = lanes
        self._tracer = tracer(__name__)
        instrument_pika()

    def run(self, stop: threading.Event) -> None:
        run_with_reconnect(self._url, f"{self.spec.name}-consumer", lambda c: self._session(c, stop), stop)

    def _session(self, connection: BlockingConnection, stop: threading.Event) -> None:
        channel = connection.channel()
        declare_queue(channel, self.spec)
        channel.confirm_delivery()  # parking publishes wait for the broker's confirm before the ack
        channel.basic_qos(prefetch_count=self._prefetch)
        if self._lanes > 1:
            self._session_in_lanes(connection, channel, stop)
            return
        channel.basic_consume(self.spec.name, self._on_message)
        while not stop.is_set():
            connection.process_data_events(time_limit=0.5)
        # Handlers run inside process_data_events, so none is mid-flight here; closing the connection
        # returns any prefetched, unacked messages to the queue.

    def _session_in_lanes(self, connection: BlockingConnection, channel: BlockingChannel, stop: threading.Event):
        """Deliveries are put on lanes by subject; each lane's thread handles its messages in order and hands
        its acks, rejects and parking publishes back to this thread, which alone may use the channel."""
        threadsafe = _ThreadsafeChannel(connection, channel)
        lanes: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(self._lanes)]
        threads = [
            threading.Thread(target=self._lane, args=(lane, threadsafe), name=f"{self.spec.name}-lane-{i}", daemon=True)
            for i, lane in enumerate(lanes)
        ]
        for thread in threads:
            thread.start()

        def deliver(_channel, method, properties, body) -> None:
            lanes[_lane_of(body, len(lanes))].put((method, properties, body))

        tag = channel.basic_consume(self.spec.name, deliver)
        try:
            while not stop.is_set():
                connection.process_data_events(time_limit=0.5)
            channel.basic_cancel(tag)  # no new deliveries; let the lanes finish what they hold, and ack it
        finally:
            for lane in lanes:
                lane.put(None)
            for thread in threads:
                while thread.is_alive():
                    if connection.is_open:
                        connection.process_data_events(time_limit=0.05)  # runs the lanes' acks
                    thread.join(0.05)
            if connection.is_open:
                connection.process_data_events(time_limit=0)

    def _lane(self, lane: queue.SimpleQueue, channel: _ThreadsafeChannel) -> None:
        while (item := lane.get()) is not None:
            method, properties, body = item
            if not channel.is_open:  # its delivery tag died with the channel: the broker delivers it again
                continue
            try:
                self._on_message(channel, method, properties, body)  # no pika span on this thread: its own
            except Exception:  # the connection went away under us: the broker redelivers, the inbox dedupes
                log.warning("could not settle a message; it will be redelivered", exc_info=True)

    def _on_message(self, channel, method, properties: pika.BasicProperties, body: bytes) -> None:
        name = f"{properties.type or method.routing_key} process"
        received = trace.get_current_span()
        if received.is_recording():
            # pika's instrumentation already opened the consume span, in the context from the headers: name
            # it for the event and use it (one span per message, not pika's and a child of our own).
            received.update_name(name)
            self._traced(channel, method, properties, body, received)
            return
        token = otel_context.attach(context_from(properties.headers))
        try:
            with self._tracer.start_as_current_span(name, kind=trace.SpanKind.CONSUMER) as span:
                self._traced(channel, method, properties, body, span)
        finally:
            otel_context.detach(token)

    def _traced(self, channel, method, properties, body, span: trace.Span) -> None:
        set_ids(span, event=properties.type or method.routing_key)
        span.set_attribute("messaging.destination.name", self.spec.name)
        self._process(channel, method, properties, body, span)

    def _process(self, channel, method, properties, body, span) -> None:
        tag = method.delivery_tag
        previous = attempts_so_far(properties.headers, self.spec.name)
        try:
            key = published_routing_key(method.exchange, method.routing_key, properties.headers, self.spec.name)
            event = dataclasses.replace(Event.from_json(body), publisher=properties.user_id, routing_key=key)
        except MalformedEvent as exc:
            self._park(channel, tag, properties, body, f"malformed event: {exc}")
            return
        if properties.type and properties.type != event.type:
            self._park(channel, tag, properties, body, "the AMQP type property contradicts the event's type")
            return
        set_ids(span, referral=event.subject)
        if previous >= self._max_attempts:
            self._park(channel, tag, properties, body, f"gave up after {previous} attempts")
            return
        try:
            self._handle(event)
        except PermanentError as exc:
            self._park(channel, tag, properties, body, f"rejected: {exc}")
            return
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, exc.__class__.__name__))
            attempt = previous + 1
            if attempt >= self._max_attempts:
                self._park(channel, tag, properties, body, f"failed {attempt} times: {exc.__class__.__name__}")
            else:
                log.warning(
                    "handler failed; will retry",
                    extra={
                        "event_type": event.type,
                        "event_id": event.id,
                        "attempt": attempt,
                        "error": exc.__class__.__name__,
                    },
                    exc_info=True,
                )
                channel.basic_reject(tag, requeue=False)
            return
        channel.basic_ack(tag)

    def _park(self, channel: BlockingChannel, tag: int, properties, body: bytes, reason: str) -> None:
        log.error(
            "message parked",
            extra={"queue": self.spec.parking_queue, "reason": reason, "message_id": properties.message_id},
        )
        headers = dict(properties.headers or {})
        headers["x-parked-reason"] = reason[:250]
        parked = pika.BasicProperties(
            message_id=properties.message_id,
            type=properties.type,
            content_type=properties.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=headers,
        )
        channel.basic_publish(PARKING_EXCHANGE, self.spec.name, body, parked, mandatory=True)
        channel.basic_ack(tag)


def _lane_of(body: bytes, lanes: int) -> int:
    """The lane of a message: by its subject, so one referral's (or one provider's) events stay in order."""
    try:
        subject = json.loads(body).get("subject")
    except (ValueError, AttributeError):
        subject = None
    return zlib.crc32(str(subject).encode()) % lanes


class _ThreadsafeChannel:
    """What a lane may do with the channel: each call runs on the connection's own thread, in call order."""

    def __init__(self, connection: BlockingConnection, channel: BlockingChannel):
        self._connection, self._channel = connection, channel

    @property
    def is_open(self) -> bool:
        return self._connection.is_open and self._channel.is_open

    def basic_ack(self, delivery_tag: int) -> None:
        self._connection.add_callback_threadsafe(lambda: self._channel.basic_ack(delivery_tag))

    def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        self._connection.add_callback_threadsafe(lambda: self._channel.basic_reject(delivery_tag, requeue=requeue))

    def basic_publish(self, exchange, routing_key, body, properties, mandatory=False) -> None:
        publish = self._channel.basic_publish
        self._connection.add_callback_threadsafe(lambda: publish(exchange, routing_key, body, properties, mandatory))
