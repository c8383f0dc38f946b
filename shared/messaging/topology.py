"""Exchanges and queues, declared (idempotently) on every connect.

Each consumer owns one quorum queue `Q` with:
- `x-delivery-limit`: RabbitMQ 3.10 quorum queues have none by default, so a message that crashes its
  consumer would loop forever (https://www.rabbitmq.com/docs/quorum-queues#poison-message-handling);
- a dead-letter exchange with the at-least-once strategy (needs `x-overflow: reject-publish`), so a
  rejected message moves to `Q.retry` without being lost
  (https://www.rabbitmq.com/blog/2022/03/29/at-least-once-dead-lettering);
- `Q.retry`: a fixed queue TTL (not per-message TTLs, which block behind older messages), dead-lettering
  back into `Q` (through `referrals.requeue`) when it expires;
- `Q.parking`: where a message goes after its last attempt, for a person to look at.
"""

from __future__ import annotations

from dataclasses import dataclass

from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from shared.messaging import EXCHANGE, EXCHANGES, PARKING_EXCHANGE, REQUEUE_EXCHANGE, RETRY_EXCHANGE

_DEAD_LETTER_SAFE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


class TopologyConflict(Exception):
    """A queue or exchange exists with other arguments than this version declares (RabbitMQ's 406)."""


@dataclass(frozen=True)
class QueueSpec:
    name: str
    bindings: tuple[str, ...]
    delivery_limit: int = 5
    retry_delay_ms: int = 2000
    declare_exchanges: bool = True

    @property
    def retry_queue(self) -> str:
        return f"{self.name}.retry"

    @property
    def parking_queue(self) -> str:
        return f"{self.name}.parking"


def declare_exchanges(channel: BlockingChannel, *, passive: bool = False) -> None:
    """Declare the platform's exchanges, or with `passive` only check they exist: a charity's broker user
    has no configure permission on shared exchanges (deploy/rabbitmq/), and a passive declare needs none."""
    for name, kind in EXCHANGES:
        channel.exchange_declare(name, kind, durable=True, passive=passive)


def declare_queue(channel: BlockingChannel, spec: QueueSpec) -> None:
    try:
        _declare_queue(channel, spec)
    except ChannelClosedByBroker as exc:
        if exc.reply_code != 406:
            raise
        raise TopologyConflict(
            f"RabbitMQ refused the topology of {spec.name}: {exc.reply_text}. It was probably made by an older "
            f"version. Fix: let {spec.name} drain, then delete {spec.name}, {spec.retry_queue} and "
            f"{spec.parking_queue} (rabbitmqctl delete_queue <name>) and start again."
        ) from None


def _declare_queue(channel: BlockingChannel, spec: QueueSpec) -> None:
    declare_exchanges(channel, passive=not spec.declare_exchanges)
    channel.queue_declare(
        spec.name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": spec.delivery_limit,
            "x-dead-letter-exchange": RETRY_EXCHANGE,
            "x-dead-letter-routing-key": spec.name,
            **_DEAD_LETTER_SAFE,
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
    for key in spec.bindings:
        channel.queue_bind(spec.name, EXCHANGE, routing_key=key)


def attempts_so_far(headers: dict | None, queue: str) -> int:
    """How many times this message has already left `queue` (rejected or over the delivery limit).

    Counted from `x-death`, which the broker maintains per (queue, reason).
    """
    deaths = (headers or {}).get("x-death") or []
    return sum(int(d.get("count", 0)) for d in deaths if d.get("queue") == queue)


def published_routing_key(exchange: str, routing_key: str, headers: dict | None, queue: str) -> str:
    """The routing key a delivery was first published under. A message back from `queue`'s retry queue (through
    the requeue exchange) carries the queue's name as its key; the broker's `x-death` entry for its first
    rejection from `queue` keeps the key it came in with (later deaths there only raise that entry's count).
    A consumer checks an event's key against its type on every delivery, so it needs this one."""
    if exchange != REQUEUE_EXCHANGE:
        return routing_key
    for death in (headers or {}).get("x-death") or []:
        if death.get("queue") == queue and death.get("exchange") == EXCHANGE and death.get("routing-keys"):
            key = death["routing-keys"][0]
            return key.decode() if isinstance(key, bytes) else str(key)
    return routing_key
