"""The consume loop: handle, commit, then ack; retry later on failure; park after the last attempt; wait out a
dependency's outage in place.

- Ack only after the handler's transaction commits (a crash before the ack redelivers; the inbox makes the
  second delivery a no-op).
- **Poison** (a handler error that is not infrastructure): rejected (requeue=False) into `Q.retry`, whose TTL
  brings it back after a delay. Attempts are counted from `x-death`; after the last, the message is published
  to `Q.parking` (with confirms) and then acked, with headers that say where it came from, why and when
  (`referrals-parked` lists and replays them). A message that is not a valid event, or that a handler rejects as
  permanently wrong (PermanentError), is parked at once.
- **Transient** (the service's database unreachable, `DependencyUnavailable` from a client of another service,
  a broker channel closing under the handler): not the message's fault, so it spends none of its attempts. The
  lane holds the message and takes no other, retrying it after 1 s, doubling to 30 s, then every 30 s
  (shared.retry.TRANSIENT), with one WARNING per retry, and reports the dependency down (shared.health, the
  worker's /readyz) until the message passes. Past `hold_seconds` the consumer stops consuming `Q` and moves
  everything it holds, in order, to `Q.holding` (publish with confirms, then ack: an ack, not a return, so
  neither the broker's `consumer_timeout` nor the quorum queue's `x-delivery-limit` sees it); it retries the
  head of `Q.holding` (a quorum queue without a delivery limit, so it fails over in a cluster) until it passes,
  drains it, then consumes `Q` again (and drains `Q.holding` first on every start). After
  `transient_retry_hours` a held message fails as an ordinary error would.
- The quorum queue's `x-delivery-limit` catches messages that crash the worker before it can decide.
- Messages are handled on `lanes` threads (1 by default), each message on the lane its subject (the referral)
  hashes to: one referral's events keep their order, even while one of them is held, while a handler waiting
  on the network no longer holds up other referrals. The connection's own thread alone uses the channel (pika
  is not thread-safe), and keeps sending heartbeats while a lane waits.
- **Batches** (`batch_size` > 1, AMQP_BATCH_SIZE, with a handle that offers `batch`: shared.inbox.EventHandlers):
  a lane takes the messages already waiting for it, up to `batch_size`, without waiting for more (an idle
  consumer handles a message at once; batches form when messages queue up behind the ones being handled). Each
  is accepted against the catalogue under its own span; a refused one is parked alone at once. The rest are
  handled in one unit of work (one transaction, one multi-row inbox insert, each handler in arrival order),
  which commits; then each message is acked. If anything fails inside, the unit rolls back, nothing of the
  batch was kept, and its messages go one by one as above: a poison message is retried and parked alone, a
  transient fault is held in place, and the others commit once each. A handler that must have a transaction
  of its own (shared.inbox.alone: it waits on another service) runs alone, between the batches before and
  after it, so arrival order holds.
- **Metrics** (shared.metrics): each message settled counts once in `referrals_messages_consumed_total` by
  queue, event type (one of the catalogue's, else `unknown`: a made-up type is no label) and outcome: handled,
  duplicate (the handler returned DUPLICATE: the inbox had it), retried (to `Q.retry`) or parked. The
  connection's thread counts `Q.parking` (a passive declare on a channel of its own) every PARKED_EVERY seconds
  and after each park, into `referrals_messages_parked`: the HTTP thread answering /metrics only reads that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote, urlsplit

import pika
from opentelemetry import context as otel_context
from opentelemetry import trace
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPConnectionError, ChannelClosed, ChannelClosedByBroker, ChannelWrongStateError

from shared import metrics
from shared.config import Settings
from shared.db import is_unavailable
from shared.health import HEALTH, Health
from shared.messaging import PARKING_EXCHANGE, RETRY_EXCHANGE
from shared.messaging.connection import run_with_reconnect
from shared.messaging.envelope import Event, MalformedEvent
from shared.messaging.errors import DUPLICATE, DependencyUnavailable, PermanentError
from shared.messaging.topology import Origin, QueueSpec, attempts_so_far, declare_queue, origin
from shared.retry import TRANSIENT, Backoff
from shared.telemetry import context_from, set_ids, tracer

log = logging.getLogger(__name__)

T = TypeVar("T")

# Well under RabbitMQ's default consumer_timeout (30 min), and short enough that a quorum queue's prefetched
# messages do not sit unacked for long: past this, held messages move to the holding queue.
HOLD_SECONDS = 120.0
# Headers of a held message moved to the holding queue: since when (epoch s) and how often it has failed.
TRANSIENT_SINCE = "x-transient-since"
TRANSIENT_FAILURES = "x-transient-failures"
TRANSIENT_DEPENDENCY = "x-transient-dependency"
# Headers the broker sets on a delivery, which a copy must not carry as if they were the copy's own.
_BROKER_SET = ("x-delivery-count",)

DATABASE = "database"
BROKER_CHANNEL = "broker channel"  # not "broker": the connection loop reports that one (shared.messaging.connection)
# How often the connection's thread counts the parking queue (and after each park): `referrals-parked` replays
# and discards from another process, so a count kept only on park would drift.
PARKED_EVERY = 15.0


def transient_dependency(error: BaseException) -> str | None:
    """The dependency a handler's failure says is briefly unavailable, or None: an ordinary (poison) failure.
    Follows the exception's causes, so an error raised while handling an unreachable database counts too."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, PermanentError):
            return None
        if isinstance(seen, DependencyUnavailable):
            return seen.dependency
        if is_unavailable(seen):
            return DATABASE
        if isinstance(seen, ChannelClosedByBroker):
            # 403/404: a permission or a missing exchange, a misconfiguration that waiting does not cure.
            return None if seen.reply_code in (403, 404) else BROKER_CHANNEL
        if isinstance(seen, (ChannelClosed, ChannelWrongStateError, AMQPConnectionError)):
            return BROKER_CHANNEL
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(error: BaseException) -> str:
    """What a log line or /readyz may say of a transient failure: our own words, or only the class (a DBAPI
    error's message may quote values; PITFALLS)."""
    return error.reason if isinstance(error, DependencyUnavailable) else error.__class__.__name__


@dataclass(frozen=True)
class Held:
    """A message whose handler met an unavailable dependency: not settled, to be retried in place."""

    dependency: str
    reason: str
    since: float  # epoch seconds of its first transient failure
    failures: int = 1


Delivery = tuple[Any, pika.BasicProperties, bytes]  # (method, properties, body)
_FLUSH = object()  # a lane's marker: everything before it has been handled or given back
_NOTHING = object()


class Batch(Protocol):
    """One unit of work open over several events (shared.inbox.Batch): `handle` runs one event's handler in
    it, returning DUPLICATE when the inbox had the event."""

    def handle(self, event: Event, handler: Any) -> object: ...


@runtime_checkable
class BatchHandler(Protocol):
    """What a handle offers when it can take several messages in one unit of work (shared.inbox.EventHandlers):
    accept one against the catalogue (PermanentError: refused), say whether an event type's handler must run
    in a transaction of its own, and open a batch (committed when the block ends, rolled back if it raises)."""

    def accept(self, event: Event) -> tuple[Event, Any]: ...

    def runs_alone(self, event_type: str | None) -> bool: ...

    def batch(self, events: Sequence[Event]) -> AbstractContextManager[Batch]: ...


@dataclass
class _Entry:
    """A message of a batch: its delivery, its accepted event and handler, its metrics label, its open span."""

    item: Delivery
    event: Event
    handler: Any
    kind: str
    span: trace.Span
    result: object = None


class _Lanes:
    """The lanes of one consume of `Q`, and the hand-off they stop for."""

    def __init__(self, count: int):
        self.queues: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(count)]
        self.handoff = threading.Event()  # a lane has held a message for hold_seconds: move all to Q.holding
        self.wake = threading.Event()  # hand-off or stop: a lane holding a message stops waiting
        self.given_back: list[list[tuple[Delivery, Held | None]]] = [[] for _ in range(count)]
        self.flushed = [threading.Event() for _ in range(count)]

    def request_handoff(self) -> None:
        self.handoff.set()
        self.wake.set()


class Consumer:
    def __init__(
        self,
        amqp_url: str,
        spec: QueueSpec,
        handle: Callable[[Event], object],
        *,
        event_types: Collection[str] | None = None,
        max_attempts: int = 5,
        prefetch: int = 20,
        lanes: int = 1,
        batch_size: int = 1,
        transient_retry_hours: float = 24.0,
        hold_seconds: float = HOLD_SECONDS,
        transient: Backoff = TRANSIENT,
        health: Health = HEALTH,
    ):
        self._url = amqp_url
        self.spec = spec
        self._handle = handle
        # The event_type labels it may use (the catalogue's types: EventHandlers.event_types); else `unknown`.
        self._event_types = frozenset(getattr(handle, "event_types", ()) if event_types is None else event_types)
        self._parked_counted_at = 0.0  # monotonic; 0: count at the next chance
        self._max_attempts = max_attempts
        self._prefetch = prefetch
        self._lanes = max(1, lanes)
        self._batch_size = max(1, batch_size)
        # Several messages in one unit of work when the handle offers it (EventHandlers); else one by one.
        self._batch = handle if self._batch_size > 1 and isinstance(handle, BatchHandler) else None
        self._retry_seconds = transient_retry_hours * 3600
        self._hold_seconds = hold_seconds
        self._transient = transient
        self._health = health
        # A copy it puts on its holding queue says who put it there: RabbitMQ checks user_id is this user.
        first = amqp_url.split(",")[0].strip()
        self._user = unquote(urlsplit(first).username or "guest")
        self._tracer = tracer(__name__)
        # Set once this consumer has subscribed to its queue (basic.consume answered): a worker subscribing to
        # single-active-consumer partitions in order waits for it (shared.messaging.partitions).
        self.subscribed = threading.Event()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        queue: str,
        bindings: tuple[str, ...],
        handle: Callable[[Event], object],
        *,
        hash_exchange: str | None = None,
    ) -> Consumer:
        """A service worker's consumer of `queue`, bound to `bindings`, as its settings say (delivery limit,
        retry delay, attempts, prefetch, lanes, batch size, transient retries, and whether it may declare
        exchanges).
        `hash_exchange`: `queue` is a partition behind that consistent-hash exchange (topology.partitions)."""
        spec = QueueSpec(
            queue,
            bindings,
            hash_exchange=hash_exchange,
            delivery_limit=settings.delivery_limit,
            retry_delay_ms=settings.retry_delay_ms,
            # A charity's own broker user may not declare the platform's exchanges (deploy/rabbitmq/).
            declare_exchanges=settings.declare_exchanges,
        )
        return cls(
            settings.amqp_url,
            spec,
            handle,
            max_attempts=settings.max_attempts,
            prefetch=settings.prefetch,
            lanes=settings.consumer_lanes,
            batch_size=settings.batch_size,
            transient_retry_hours=settings.transient_retry_hours,
            hold_seconds=settings.transient_hold_seconds,
        )

    def run(self, stop: threading.Event) -> None:
        run_with_reconnect(self._url, f"{self.spec.name}-consumer", lambda c: self._session(c, stop), stop)

    # --- the session: drain the holding queue, then consume Q until stopped or handing off ----------------

    def _session(self, connection: BlockingConnection, stop: threading.Event) -> None:
        while not stop.is_set():
            channel = connection.channel()
            declare_queue(channel, self.spec)
            channel.confirm_delivery()  # parking and holding publishes wait for the broker's confirm before the ack
            channel.basic_qos(prefetch_count=self._prefetch)
            reply_code = None
            try:
                while not stop.is_set() and channel.is_open:
                    self._drain_holding(connection, channel, stop)
                    if not stop.is_set() and channel.is_open:
                        self._consume(connection, channel, stop)
            except ChannelClosedByBroker as exc:
                if exc.reply_code in (403, 404):  # a permission or a missing queue: not a blip
                    raise
                reply_code = exc.reply_code
            if not stop.is_set():
                # e.g. 406 "delivery acknowledgement timed out" (consumer_timeout): its unacked deliveries
                # go back to the queue; the inbox makes any second delivery a no-op.
                log.warning(
                    "the broker closed the consumer's channel; opening another",
                    extra={"queue": self.spec.name, "reply_code": reply_code},
                )
                stop.wait(1.0)

    def _consume(self, connection: BlockingConnection, channel: BlockingChannel, stop: threading.Event) -> None:
        """Consume Q on the lanes until stopped or until a lane has held a message for `hold_seconds`; then move
        what the lanes still hold, in order, to the holding queue."""
        threadsafe = _ThreadsafeChannel(connection, channel)
        lanes = _Lanes(self._lanes)
        threads = [
            threading.Thread(
                target=self._lane, args=(i, lanes, threadsafe), name=f"{self.spec.name}-lane-{i}", daemon=True
            )
            for i in range(self._lanes)
        ]
        for thread in threads:
            thread.start()

        def deliver(_channel, method, properties, body) -> None:
            lanes.queues[_lane_of(body, self._lanes)].put((method, properties, body))

        tag = channel.basic_consume(self.spec.name, deliver)
        self.subscribed.set()
        try:
            while not stop.is_set() and not lanes.handoff.is_set() and channel.is_open:
                connection.process_data_events(time_limit=0.5)
                self._count_parked(connection)
            if not channel.is_open:  # closed by the broker: what the lanes hold goes back to Q by itself
                return
            # No new deliveries (any arriving before the broker's cancel-ok go back to Q). On stop the lanes
            # finish what they hold and ack it; a lane holding a message gives it back, and the rest of its lane.
            channel.basic_cancel(tag)
            lanes.wake.set()
            for lane in lanes.queues:
                lane.put(_FLUSH)
            while not all(flushed.is_set() for flushed in lanes.flushed):
                connection.process_data_events(time_limit=0.05)  # runs the lanes' acks
            self._move_to_holding(channel, lanes.given_back)
        finally:
            lanes.wake.set()
            for lane in lanes.queues:
                lane.put(None)
            for thread in threads:
                while thread.is_alive():
                    if connection.is_open:
                        connection.process_data_events(time_limit=0.05)
                    thread.join(0.05)
            if connection.is_open:
                connection.process_data_events(time_limit=0)

    def _lane(self, index: int, lanes: _Lanes, channel: _ThreadsafeChannel) -> None:
        giving_back = False  # once a lane gives one back, it gives back all after it: their order is kept
        for taken in _taken(lanes.queues[index], self._batch_size):
            if taken is None:
                return
            if taken is _FLUSH:
                lanes.flushed[index].set()
                continue
            assert isinstance(taken, list)
            for run in self._runs(taken):
                if len(run) > 1 and not giving_back and not lanes.handoff.is_set() and channel.is_open:
                    try:
                        run = self._attempt_batch(channel, run)
                    except Exception as exc:  # the connection went away while settling: as in _one below
                        _could_not_settle(exc)
                        continue
                for item in run:
                    giving_back = self._one(index, lanes, channel, item, giving_back)

    def _one(self, index: int, lanes: _Lanes, channel: _ThreadsafeChannel, item: Delivery, giving_back: bool) -> bool:
        """Handle one message in a transaction of its own (holding it while a dependency is down); whether the
        lane now gives back what follows."""
        if giving_back or lanes.handoff.is_set():
            lanes.given_back[index].append((item, None))
            return True
        if not channel.is_open:  # its delivery tag died with the channel: the broker delivers it again
            return False
        try:
            held = self._attempt(channel, item)
            if held is not None:
                held = self._hold(channel, item, held, lanes)
            if held is not None:
                lanes.given_back[index].append((item, held))
                return True
        except Exception as exc:  # the connection went away under us: the broker redelivers, the inbox dedupes
            _could_not_settle(exc)
        return False

    def _runs(self, taken: list[Delivery]) -> Iterator[list[Delivery]]:
        """`taken`, in order, as runs that may share one unit of work. A message whose handler must run alone
        (EventHandlers.runs_alone), or whose type is not known before parsing it, is a run of its own."""
        if self._batch is None:
            yield from ([item] for item in taken)
            return
        run: list[Delivery] = []
        for item in taken:
            if self._batch.runs_alone(item[1].type):
                if run:
                    yield run
                yield [item]
                run = []
            else:
                run.append(item)
        if run:
            yield run

    def _hold(self, channel: _ThreadsafeChannel, item: Delivery, held: Held, lanes: _Lanes) -> Held | None:
        """Retry `item` in place until it settles (None) or the lane must give it back (the Held state): it has
        been held for `hold_seconds`, or the consumer is stopping or handing off."""
        hold_until = time.monotonic() + self._hold_seconds
        while True:
            delay = self._transient.delay(held.failures)
            self._report_held(item, held, delay)
            remaining = hold_until - time.monotonic()
            if remaining <= 0:
                lanes.request_handoff()
                return held
            if lanes.wake.wait(min(delay, remaining)):
                return held
            if time.monotonic() >= hold_until:
                lanes.request_handoff()
                return held
            again = self._attempt(channel, item, held)
            if again is None:
                self._health.up(held.dependency)
                return None
            held = again

    def _move_to_holding(self, channel: BlockingChannel, given_back: list[list[tuple[Delivery, Held | None]]]) -> None:
        """Publish each lane's given-back messages, in order, to the holding queue (confirmed), then ack each."""
        moved = [entry for lane in given_back for entry in lane]
        if not moved or not channel.is_open:
            return
        log.warning(
            "a dependency is still down; moving held messages to the holding queue",
            extra={"queue": self.spec.holding_queue, "messages": len(moved)},
        )
        for (method, properties, body), held in moved:
            found = origin(method.exchange, method.routing_key, properties.user_id, properties.headers, self.spec.name)
            headers = {k: v for k, v in (properties.headers or {}).items() if k not in _BROKER_SET}
            headers.update(found.headers())
            if held is not None:
                headers[TRANSIENT_SINCE] = int(held.since)
                headers[TRANSIENT_FAILURES] = held.failures
                headers[TRANSIENT_DEPENDENCY] = held.dependency
            copy = pika.BasicProperties(
                message_id=properties.message_id,
                type=properties.type,
                content_type=properties.content_type,
                delivery_mode=pika.DeliveryMode.Persistent,
                user_id=self._user,
                headers=headers,
            )
            channel.basic_publish(RETRY_EXCHANGE, self.spec.holding_queue, body, copy, mandatory=True)
            channel.basic_ack(method.delivery_tag)

    def _drain_holding(self, connection: BlockingConnection, channel: BlockingChannel, stop: threading.Event) -> None:
        """Handle the holding queue, head first, until it is empty. While the head's dependency is still down,
        keep it (unacked) and retry it after each delay; at least every `hold_seconds` give it back by closing
        the channel that took it, so that no delivery stays unacked near the broker's `consumer_timeout`.

        Closing, not nack(requeue): on RabbitMQ 3.10 a quorum queue appends a message nacked with requeue to its
        tail, but serves a message returned by a closed channel before the rest, so the head keeps its place
        (checked on 3.10.8). Each give-back counts a delivery (`x-delivery-count`); the holding queue has no
        `x-delivery-limit`, so that never dead-letters it (topology)."""
        last: tuple[str, Held] | None = None  # the head's history while it keeps failing
        while not stop.is_set() and channel.is_open:
            holding = connection.channel()
            try:
                holding.confirm_delivery()  # parking from here waits for the broker's confirm before the ack
                method, properties, body = holding.basic_get(self.spec.holding_queue)
                if method is None:
                    return
                item = (method, properties, body)
                key = properties.message_id or str(zlib.crc32(body))
                history = last[1] if last and last[0] == key else _carried(properties.headers)
                last = None
                threadsafe = _ThreadsafeChannel(connection, holding)
                give_back_at = time.monotonic() + self._hold_seconds
                while not stop.is_set() and holding.is_open:
                    held = _pumped(connection, lambda: self._attempt(threadsafe, item, history))  # noqa: B023
                    if held is None:
                        if history is not None:
                            self._health.up(history.dependency)
                        break
                    history, last = held, (key, held)
                    delay = self._transient.delay(held.failures)
                    self._report_held(item, held, delay)
                    if time.monotonic() + delay >= give_back_at:
                        holding.close()  # the head goes back first; taken again after the delay
                        _pause(connection, delay, stop)
                        break
                    _pause(connection, delay, stop)
            finally:
                if holding.is_open:
                    holding.close()  # on stop too: what it still holds goes back at the head

    def _report_held(self, item: Delivery, held: Held, delay: float) -> None:
        _, properties, _ = item
        self._health.down(held.dependency, f"{self.spec.name}: a message waits for it ({held.reason})")
        log.warning(
            "dependency unavailable; retrying the message in place",
            extra={
                "queue": self.spec.name,
                "dependency": held.dependency,
                "attempt": held.failures,
                "retry_in_s": round(delay, 2),
                "event_type": properties.type,
                "message_id": properties.message_id,
                "error": held.reason,
            },
        )

    # --- one attempt at one message ------------------------------------------------------------------

    def _attempt(self, channel, item: Delivery, held: Held | None = None) -> Held | None:
        """Handle `item` once and settle it (ack, retry queue, parking); or, when its handler met an unavailable
        dependency, leave it unsettled and say so (Held, with `held`'s history)."""
        method, properties, body = item
        name = f"{properties.type or method.routing_key} process"
        token = otel_context.attach(context_from(properties.headers))
        try:
            with self._tracer.start_as_current_span(name, kind=trace.SpanKind.CONSUMER) as span:
                set_ids(span, event=properties.type or method.routing_key)
                span.set_attribute("messaging.destination.name", self.spec.name)
                return self._process(channel, method, properties, body, span, held)
        finally:
            otel_context.detach(token)

    def _process(self, channel, method, properties, body, span, held: Held | None) -> Held | None:
        arrived = self._arrived(channel, method, properties, body, span)
        if arrived is None:
            return None
        event, kind, found, previous = arrived
        tag = method.delivery_tag
        try:
            result = self._handle(event)
        except PermanentError as exc:
            self._park(channel, tag, properties, body, f"rejected: {exc}", found, previous, kind)
            return None
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, exc.__class__.__name__))
            dependency = transient_dependency(exc)
            if dependency is not None:
                now = time.time()
                since = held.since if held is not None else now
                if now - since < self._retry_seconds:
                    return Held(dependency, _reason(exc), since, held.failures + 1 if held else 1)
                log.warning(
                    "dependency unavailable for longer than the transient retry allows; counting a failure",
                    extra={"queue": self.spec.name, "dependency": dependency, "message_id": properties.message_id},
                )
            attempt = previous + 1
            if attempt >= self._max_attempts:
                reason = f"failed {attempt} times: {exc.__class__.__name__}"
                self._park(channel, tag, properties, body, reason, found, attempt, kind)
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
                metrics.consumed(self.spec.name, kind, "retried")
            return None
        channel.basic_ack(tag)
        metrics.consumed(self.spec.name, kind, "duplicate" if result == DUPLICATE else "handled")
        return None

    def _arrived(self, channel, method, properties, body, span) -> tuple[Event, str, Origin, int] | None:
        """The event a delivery carries, its metrics label, where it came from and its attempts so far; None when
        it was parked at once: not a valid event, its AMQP type contradicting it, or out of attempts."""
        tag = method.delivery_tag
        previous = attempts_so_far(properties.headers, self.spec.name)
        found = origin(method.exchange, method.routing_key, properties.user_id, properties.headers, self.spec.name)
        try:
            event = dataclasses.replace(
                Event.from_json(body),
                publisher=found.user_id,
                routing_key=found.routing_key,
                relayed_by=found.relayed_by,
            )
        except MalformedEvent as exc:
            kind = metrics.event_type_label(properties.type, self._event_types)
            self._park(channel, tag, properties, body, f"malformed event: {exc}", found, previous, kind)
            return None
        kind = metrics.event_type_label(event.type, self._event_types)
        if properties.type and properties.type != event.type:
            reason = "the AMQP type property contradicts the event's type"
            self._park(channel, tag, properties, body, reason, found, previous, kind)
            return None
        set_ids(span, referral=event.subject)
        if previous >= self._max_attempts:
            self._park(channel, tag, properties, body, f"gave up after {previous} attempts", found, previous, kind)
            return None
        return event, kind, found, previous

    # --- a batch: several messages in one unit of work --------------------------------------------------

    def _attempt_batch(self, channel, run: list[Delivery]) -> list[Delivery]:
        """Handle `run` in one unit of work (the handle's `batch`), then ack each message: [] once done. Each
        message keeps its own span. One refused on arrival is parked alone at once and leaves the batch. When
        anything fails inside (a handler, the commit), the unit rolled back and nothing of it was kept: the
        messages, in order, to handle one by one, so that a poison one is retried alone and a transient fault is
        held as it is for one message."""
        assert self._batch is not None
        entries: list[_Entry] = []
        for position, item in enumerate(run):
            try:
                entry = self._batch_entry(channel, item)
            except Exception:  # not a refusal (accept raised something else): the one-by-one path decides
                for earlier in entries:
                    earlier.span.end()
                return [earlier.item for earlier in entries] + run[position:]
            if entry is not None:
                entries.append(entry)
        if not entries:
            return []
        try:
            with self._batch.batch([entry.event for entry in entries]) as batch:
                for entry in entries:
                    entry.span.set_attribute("messaging.batch.message_count", len(entries))
                    with _current(entry.span):
                        entry.result = batch.handle(entry.event, entry.handler)
        except Exception as exc:
            log.info(
                "a batch failed and was rolled back; handling its messages one by one",
                extra={"queue": self.spec.name, "messages": len(entries), "error": exc.__class__.__name__},
            )
            for entry in entries:
                entry.span.add_event("batch rolled back")
                entry.span.end()
            return [entry.item for entry in entries]
        try:
            for entry in entries:  # committed: now, and only now, each is acked
                channel.basic_ack(entry.item[0].delivery_tag)
                metrics.consumed(self.spec.name, entry.kind, "duplicate" if entry.result == DUPLICATE else "handled")
        finally:  # also when the connection went away under the acks: the broker redelivers, the inbox dedupes
            for entry in entries:
                entry.span.end()
        return []

    def _batch_entry(self, channel, item: Delivery) -> _Entry | None:
        """A message of a batch, accepted against the catalogue under its own span (started, not yet ended);
        None when it was parked instead."""
        assert self._batch is not None
        method, properties, body = item
        span = self._tracer.start_span(
            f"{properties.type or method.routing_key} process",
            context=context_from(properties.headers),
            kind=trace.SpanKind.CONSUMER,
        )
        set_ids(span, event=properties.type or method.routing_key)
        span.set_attribute("messaging.destination.name", self.spec.name)
        try:
            with _current(span):
                arrived = self._arrived(channel, method, properties, body, span)
                if arrived is None:
                    span.end()
                    return None
                event, kind, found, previous = arrived
                try:
                    accepted, handler = self._batch.accept(event)
                except PermanentError as exc:
                    self._park(
                        channel, method.delivery_tag, properties, body, f"rejected: {exc}", found, previous, kind
                    )
                    span.end()
                    return None
        except Exception:
            span.end()
            raise
        return _Entry(item, accepted, handler, kind, span)

    def _park(
        self,
        channel: BlockingChannel,
        tag: int,
        properties,
        body: bytes,
        reason: str,
        found: Origin,
        attempts: int,
        kind: str,
    ) -> None:
        log.error(
            "message parked",
            extra={"queue": self.spec.parking_queue, "reason": reason, "message_id": properties.message_id},
        )
        headers = {k: v for k, v in (properties.headers or {}).items() if k not in _BROKER_SET}
        # What a replay needs (referrals-parked): where it came from and who sent it, why, and when.
        headers.update(found.headers())
        for name in (TRANSIENT_SINCE, TRANSIENT_FAILURES, TRANSIENT_DEPENDENCY):
            headers.pop(name, None)
        headers[PARKED_REASON] = reason[:250]
        headers[PARKED_ATTEMPTS] = attempts
        headers[PARKED_AT] = datetime.now(UTC).isoformat(timespec="seconds")
        parked = pika.BasicProperties(
            message_id=properties.message_id,
            type=properties.type,
            content_type=properties.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            headers=headers,
        )
        channel.basic_publish(PARKING_EXCHANGE, self.spec.name, body, parked, mandatory=True)
        channel.basic_ack(tag)
        metrics.consumed(self.spec.name, kind, "parked")
        self._parked_counted_at = 0.0  # the connection's thread counts the parking queue again at its next turn

    def _count_parked(self, connection: BlockingConnection) -> None:
        """Set `referrals_messages_parked` from the parking queue's message count, if PARKED_EVERY has passed or
        a message was parked since. On the connection's own thread, on a channel of its own (a passive declare
        that fails closes only that one)."""
        if time.monotonic() - self._parked_counted_at < PARKED_EVERY or not connection.is_open:
            return
        self._parked_counted_at = time.monotonic()
        try:
            channel = connection.channel()
            try:
                count = channel.queue_declare(self.spec.parking_queue, passive=True).method.message_count
            finally:
                if channel.is_open:
                    channel.close()
        except ChannelClosedByBroker as exc:  # e.g. 404: someone deleted it; the next session declares it again
            log.warning("cannot count the parking queue", extra={"queue": self.spec.parking_queue,
                        "reply_code": exc.reply_code})  # fmt: skip
            return
        metrics.MESSAGES_PARKED.labels(queue=self.spec.name).set(count)


PARKED_REASON = "x-parked-reason"
PARKED_ATTEMPTS = "x-parked-attempts"
PARKED_AT = "x-parked-at"


def _carried(headers: dict | None) -> Held | None:
    """The transient history a message moved to the holding queue carries, if it was held."""
    headers = headers or {}
    if TRANSIENT_SINCE not in headers:
        return None
    try:
        since, failures = float(headers[TRANSIENT_SINCE]), int(headers.get(TRANSIENT_FAILURES, 1))
    except (TypeError, ValueError):
        return None
    return Held(_text(headers.get(TRANSIENT_DEPENDENCY)), "", since, failures)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _taken(source: queue.SimpleQueue, size: int) -> Iterator[list[Delivery] | object]:
    """What a lane takes from its queue, in order: a marker (None, _FLUSH) alone, or the deliveries waiting
    there, up to `size`. It waits for the first only, never for a batch to fill: a message reaching an idle
    consumer is handled at once, and batches form by themselves when messages queue up behind those being
    handled."""
    while True:
        first = source.get()
        if not isinstance(first, tuple):
            yield first
            if first is None:
                return
            continue
        taken, after = [first], _NOTHING
        while len(taken) < size:
            try:
                item = source.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, tuple):
                after = item
                break
            taken.append(item)
        yield taken
        if after is not _NOTHING:
            yield after
            if after is None:
                return


@contextlib.contextmanager
def _current(span: trace.Span) -> Iterator[None]:
    """`span` as the current span; an exception is recorded on it with its type as the status (the existing
    path's way: an error's text can quote a value)."""
    try:
        with trace.use_span(span, record_exception=False, set_status_on_exception=False):
            yield
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, exc.__class__.__name__))
        raise


def _could_not_settle(exc: Exception) -> None:
    # One WARNING line with the reason, as for a reconnect attempt; the traceback only at DEBUG.
    reason = f"{type(exc).__name__}: {exc}"
    log.warning("could not settle a message; it will be redelivered", extra={"reason": reason})
    log.debug("could not settle a message", exc_info=exc)


def _lane_of(body: bytes, lanes: int) -> int:
    """The lane of a message: by its subject, so one referral's (or one provider's) events stay in order."""
    try:
        subject = json.loads(body).get("subject")
    except (ValueError, AttributeError):
        subject = None
    return zlib.crc32(str(subject).encode()) % lanes


def _pumped(connection: BlockingConnection, work: Callable[[], T]) -> T:
    """`work()` on a thread of its own while this thread (the connection's) keeps its I/O going: heartbeats, and
    the acks `work` hands it. A handler may wait on the network for longer than a heartbeat."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = work()
        except BaseException as exc:  # re-raised on the connection's thread below
            result["error"] = exc

    thread = threading.Thread(target=target, name="holding-attempt", daemon=True)
    thread.start()
    while thread.is_alive():
        connection.process_data_events(time_limit=0.05)
        thread.join(0.01)
    connection.process_data_events(time_limit=0)
    if "error" in result:
        raise result["error"]
    return result["value"]


def _pause(connection: BlockingConnection, seconds: float, stop: threading.Event) -> None:
    """Wait `seconds` (or until stopped) while keeping the connection's heartbeats going."""
    until = time.monotonic() + seconds
    while not stop.is_set() and (left := until - time.monotonic()) > 0:
        connection.process_data_events(time_limit=min(0.5, left))


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
