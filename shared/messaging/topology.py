"""Exchanges and queues, declared (idempotently) on every connect.

Each consumer owns one quorum queue `Q` with:
- `x-delivery-limit`: RabbitMQ 3.10 quorum queues have none by default, so a message that crashes its
  consumer would loop forever (https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling);
- a dead-letter exchange with the at-least-once strategy (needs `x-overflow: reject-publish`), so a
  rejected message moves to `Q.retry` without being lost
  (https://www.rabbitmq.com/blog/2022/03/29/at-least-once-dead-lettering);
- `Q.retry`: a fixed queue TTL (not per-message TTLs, which block behind older messages), dead-lettering
  back into `Q` (through `referrals.requeue`) when it expires;
- `Q.parking`: where a message goes after its last attempt, for a person to look at (`referrals-parked`);
- `Q.holding`: where the consumer moves the messages it has held for a while because a dependency is down
  (shared.messaging.consumer), in order, so that no delivery stays unacked past the broker's
  `consumer_timeout` and none is returned to `Q` (a quorum queue counts every return toward
  `x-delivery-limit`). A quorum queue, so that it fails over with the others when a cluster node stops (a
  classic queue lives on the node that declared it, and while that node is down declaring it answers 404).
  It has **no** `x-delivery-limit` (none by default in 3.10): the consumer takes its head with basic.get,
  keeps it while the dependency is still down, and gives it back by closing its channel (every
  `hold_seconds` at most); a quorum queue serves a message a closed channel returns before the rest (a
  nack(requeue) would append it to the tail on 3.10), and each give-back counts a delivery
  (`x-delivery-count`) which, with no limit, never dead-letters it. It is published to
  through `referrals.dlx` under the key `Q.holding` (the routes a charity's user may write: add-provider.sh),
  and dead-letters into `Q.retry` like `Q` (at least once) when a held message finally fails as an ordinary
  error.

**Partitions** (`AMQP_PARTITIONS=N` above 1, for intake's and notifications' queues): `Q` becomes N queues
`Q.p0` .. `Q.p<N-1>`, each a full queue as above (its own retry, parking and holding queues) declared with
`x-single-active-consumer`, behind the consistent-hash exchange `Q.partitions` (plugin
rabbitmq_consistent_hash_exchange), which hashes the `x-subject` header the publisher sets to the event's
subject, the referral (envelope.PARTITION_HEADER): one referral's events all go to one partition, and one consumer
at a time takes them there, in order. The platform's exchange binds `Q.partitions` with `Q`'s keys (an
exchange-to-exchange binding); each partition is bound to it with weight "1", so each takes an equal share
(https://github.com/rabbitmq/rabbitmq-server/tree/v3.10.x/deps/rabbitmq_consistent_hash_exchange). A message
retried, held or replayed goes back to its own partition by name, never through the hash again.

A copy the platform itself puts back on `Q`'s own paths (the holding queue, a replay through
`referrals.requeue`) cannot keep the publisher's `user_id`: RabbitMQ stamps the user who republishes it. So
it carries where it first came from in `x-original-*` headers (`Origin`), which a consumer believes only on
those paths and only when the republishing user is one of the platform's (Catalogue.accept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from shared.messaging import EXCHANGE, EXCHANGES, PARKING_EXCHANGE, REQUEUE_EXCHANGE, RETRY_EXCHANGE
from shared.messaging.envelope import PARTITION_HEADER

_DEAD_LETTER_SAFE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
HASH_EXCHANGE_TYPE = "x-consistent-hash"
HASH_PLUGIN = "rabbitmq_consistent_hash_exchange"


class TopologyConflict(Exception):
    """A queue or exchange exists with other arguments than this version declares (RabbitMQ's 406)."""


@dataclass(frozen=True)
class QueueSpec:
    name: str
    bindings: tuple[str, ...]
    delivery_limit: int = 5
    retry_delay_ms: int = 2000
    declare_exchanges: bool = True
    # Set for a partition (partitions()): the consistent-hash exchange it is bound to, with weight "1", in place
    # of the platform's exchange, which binds that exchange with `bindings` instead; one active consumer at a time.
    hash_exchange: str | None = None

    @property
    def retry_queue(self) -> str:
        return f"{self.name}.retry"

    @property
    def parking_queue(self) -> str:
        return f"{self.name}.parking"

    @property
    def holding_queue(self) -> str:
        return f"{self.name}.holding"


def partition_names(queue: str, count: int) -> tuple[str, ...]:
    """The queues `queue` is made of: itself alone (count 1: today's single queue), else `queue.p0` and on."""
    return (queue,) if count <= 1 else tuple(f"{queue}.p{i}" for i in range(count))


def hash_exchange_of(queue: str) -> str:
    """The consistent-hash exchange in front of `queue`'s partitions."""
    return f"{queue}.partitions"


def declare_exchanges(channel: BlockingChannel, *, passive: bool = False) -> None:
    """Declare the platform's exchanges, or with `passive` only check they exist: a charity's broker user
    has no configure permission on shared exchanges (deploy/rabbitmq/), and a passive declare needs none."""
    for name, kind in EXCHANGES:
        channel.exchange_declare(name, kind, durable=True, passive=passive)


def declare_queue(channel: BlockingChannel, spec: QueueSpec) -> None:
    try:
        _declare_queue(channel, spec)
    except ConnectionClosedByBroker as exc:
        # 503 "unknown exchange type 'x-consistent-hash'": the plugin is off on this broker.
        if exc.reply_code != 503 or HASH_EXCHANGE_TYPE not in str(exc.reply_text):
            raise
        raise TopologyConflict(
            f"RabbitMQ has no {HASH_EXCHANGE_TYPE} exchange, which the partitions of {spec.name} need "
            f"(AMQP_PARTITIONS). Fix: rabbitmq-plugins enable {HASH_PLUGIN} on every node (online, no restart), "
            "or set AMQP_PARTITIONS=1."
        ) from None
    except ChannelClosedByBroker as exc:
        if exc.reply_code != 406:
            raise
        raise TopologyConflict(
            f"RabbitMQ refused the topology of {spec.name}: {exc.reply_text}. It was probably made by an older "
            f"version. Fix: let {spec.name} drain, then delete {spec.name}, {spec.retry_queue} and "
            f"{spec.parking_queue} (rabbitmqctl delete_queue <name>; {spec.holding_queue} too, once empty: "
            "before issue 11's fix it was a classic queue) "
            "and start again."
        ) from None


def _declare_queue(channel: BlockingChannel, spec: QueueSpec) -> None:
    declare_exchanges(channel, passive=not spec.declare_exchanges)
    # Only a partition (hash_exchange set) has one consumer at a time: a single queue keeps competing consumers.
    single_active = {"x-single-active-consumer": True} if spec.hash_exchange else {}
    channel.queue_declare(
        spec.name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": spec.delivery_limit,
            "x-dead-letter-exchange": RETRY_EXCHANGE,
            "x-dead-letter-routing-key": spec.name,
            **_DEAD_LETTER_SAFE,
            **single_active,
        },
    )
    channel.queue_declare(
        spec.retry_queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-message-ttl": spec.retry_delay_ms,
            # Not the default exchange: a charity's user would need write access to it, and so to every queue.
            "x-dead-letter-exchange": REQUEUE_EXCHANGE,
            "x-dead-letter-routing-key": spec.name,
            **_DEAD_LETTER_SAFE,
        },
    )
    channel.queue_bind(spec.retry_queue, RETRY_EXCHANGE, routing_key=spec.name)
    channel.queue_bind(spec.name, REQUEUE_EXCHANGE, routing_key=spec.name)
    channel.queue_declare(spec.parking_queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(spec.parking_queue, PARKING_EXCHANGE, routing_key=spec.name)
    channel.queue_declare(
        spec.holding_queue,
        durable=True,
        arguments={
            # Quorum, to fail over; and no x-delivery-limit: its head is given back while it waits (see above).
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": RETRY_EXCHANGE,
            "x-dead-letter-routing-key": spec.name,
            **_DEAD_LETTER_SAFE,
        },
    )
    channel.queue_bind(spec.holding_queue, RETRY_EXCHANGE, routing_key=spec.holding_queue)
    if spec.hash_exchange is None:
        for key in spec.bindings:
            channel.queue_bind(spec.name, EXCHANGE, routing_key=key)
        return
    _refuse_single_queue_beside(channel, spec)
    channel.exchange_declare(
        spec.hash_exchange, HASH_EXCHANGE_TYPE, durable=True, arguments={"hash-header": PARTITION_HEADER}
    )
    for key in spec.bindings:
        channel.exchange_bind(spec.hash_exchange, EXCHANGE, routing_key=key)
    channel.queue_bind(spec.name, spec.hash_exchange, routing_key="1")  # the weight: an equal share each


def _refuse_single_queue_beside(channel: BlockingChannel, spec: QueueSpec) -> None:
    """A partition's worker stops, with the fix, while the queue it partitions is still there: that queue keeps its
    bindings and so a copy of every event, which nobody would consume. (A passive declare on a channel of its own:
    the 404 that says "not there" closes only that one.)"""
    queue = (spec.hash_exchange or "").removesuffix(".partitions")
    probe = channel.connection.channel()
    try:
        probe.queue_declare(queue, passive=True)
    except ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return
        raise
    probe.close()
    raise TopologyConflict(
        f"the queue {queue} is still there beside its partitions (AMQP_PARTITIONS above 1), and receives a copy of "
        f"every event. Fix: let it drain with AMQP_PARTITIONS=1, then delete it (rabbitmqctl delete_queue {queue}; "
        f"{queue}.retry, {queue}.parking and {queue}.holding too, once empty) and start again."
    )


def attempts_so_far(headers: dict | None, queue: str) -> int:
    """How many times this message has already failed in `queue` (rejected or over the delivery limit), or in
    its holding queue (a held message that failed as an ordinary error in the end).

    Counted from `x-death`, which the broker maintains per (queue, reason).
    """
    deaths = (headers or {}).get("x-death") or []
    mine = (queue, f"{queue}.holding")
    return sum(int(d.get("count", 0)) for d in deaths if _text(d.get("queue")) in mine)


def published_routing_key(exchange: str, routing_key: str, headers: dict | None, queue: str) -> str:
    """The routing key a delivery was first published under. A message back from `queue`'s retry queue (through
    the requeue exchange) carries the queue's name as its key; the broker's `x-death` entry for its first
    rejection from `queue` keeps the key it came in with (later deaths there only raise that entry's count).
    A consumer checks an event's key against its type on every delivery, so it needs this one."""
    if exchange != REQUEUE_EXCHANGE:
        return routing_key
    for death in (headers or {}).get("x-death") or []:
        if death.get("queue") == queue and death.get("exchange") == EXCHANGE and death.get("routing-keys"):
            return _text(death["routing-keys"][0])
    return routing_key


# What a copy put back on a queue's own paths says of the message it copies (see the module's docstring).
ORIGINAL_EXCHANGE = "x-original-exchange"
ORIGINAL_ROUTING_KEY = "x-original-routing-key"
ORIGINAL_USER_ID = "x-original-user-id"


@dataclass(frozen=True)
class Origin:
    """Where a delivery was first published: the exchange, the routing key and the broker-validated `user_id`.
    `relayed_by` is set for a copy put back on the queue's own paths: the user who put it there."""

    exchange: str
    routing_key: str
    user_id: str | None
    relayed_by: str | None = None

    def headers(self) -> dict[str, str]:
        """The `x-original-*` headers a copy of the message carries (an absent user_id as "")."""
        return {
            ORIGINAL_EXCHANGE: self.exchange,
            ORIGINAL_ROUTING_KEY: self.routing_key,
            ORIGINAL_USER_ID: self.user_id or "",
        }


def origin(exchange: str, routing_key: str, user_id: str | None, headers: dict | None, queue: str) -> Origin:
    """Where the delivery `queue` received (by `exchange` under `routing_key`, from `user_id`) was first
    published. The `x-original-*` headers count only on the queue's own paths (back through the requeue
    exchange, or from its holding queue), whose routes only the platform's users and the queue's own consumer
    may write to (deploy/rabbitmq/add-provider.sh); anywhere else they are whatever a publisher wrote."""
    headers = headers or {}
    own_path = exchange == REQUEUE_EXCHANGE or (exchange == RETRY_EXCHANGE and routing_key == f"{queue}.holding")
    if own_path and ORIGINAL_ROUTING_KEY in headers:
        return Origin(
            _text(headers.get(ORIGINAL_EXCHANGE)) or EXCHANGE,
            _text(headers[ORIGINAL_ROUTING_KEY]),
            _text(headers.get(ORIGINAL_USER_ID)) or None,
            relayed_by=user_id or "",
        )
    first = exchange
    if exchange == REQUEUE_EXCHANGE:
        for death in headers.get("x-death") or []:
            if _text(death.get("queue")) == queue and death.get("exchange"):
                first = _text(death["exchange"])
                break
    return Origin(first, published_routing_key(exchange, routing_key, headers, queue), user_id)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
