"""Scale-out by partitions: a worker's consumers of a partitioned queue, subscribed in the order that spreads them.

With `AMQP_PARTITIONS=N` above 1, a queue is N single-active-consumer partitions behind a consistent-hash
exchange (shared.messaging.topology). On RabbitMQ 3.10 the first consumer to subscribe to such a queue is its
active one, and the next in line takes over when it goes (its connection closes: the worker stopped or died);
there is no rebalancing. So each of `WORKER_COUNT` workers subscribes first to its own share, the partitions i
with i % WORKER_COUNT == WORKER_INDEX, and only once each of those is subscribed, and after a grace period
(`AMQP_STANDBY_DELAY_SECONDS`) that lets workers starting together take their own shares, to the others, as
standby. One Consumer per partition, each on a loop (a thread and a connection) of its own: one partition's
failure or held message never stops another's.

A worker that (re)starts while another has taken over its share stays standby there until that one stops:
restart the workers together (a rolling restart moves each share back as its owner's successor goes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from shared.config import Settings
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Event
from shared.messaging.topology import hash_exchange_of, partition_names

Loop = Callable[[threading.Event], None]


def subscription_order(partitions: int, index: int, count: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The partitions worker `index` of `count` subscribes to first (its own share, active) and then (standby)."""
    own = tuple(i for i in range(partitions) if i % count == index)
    standby = tuple(i for i in range(partitions) if i % count != index)
    return own, standby


def consumer_loops(
    settings: Settings, queue: str, bindings: tuple[str, ...], handle: Callable[[Event], object]
) -> dict[str, Loop]:
    """The consumer loops of `queue` as the settings say: `consumer` alone (one partition: the queue itself), or
    `consumer.p<i>` for each partition, own share first (see the module's docstring)."""
    if settings.partitions <= 1:
        return {"consumer": Consumer.from_settings(settings, queue, bindings, handle).run}
    exchange = hash_exchange_of(queue)
    consumers = [
        Consumer.from_settings(settings, name, bindings, handle, hash_exchange=exchange)
        for name in partition_names(queue, settings.partitions)
    ]
    own, standby = subscription_order(settings.partitions, settings.worker_index, settings.worker_count)
    return ordered_loops(consumers, own, standby, settings.partition_standby_seconds)


def ordered_loops(
    consumers: Sequence[Consumer], own: Sequence[int], standby: Sequence[int], standby_after: float
) -> dict[str, Loop]:
    """A loop per consumer (by partition index): those of `own` run at once; those of `standby` once every one of
    `own` has subscribed, and `standby_after` seconds more."""
    loops: dict[str, Loop] = {f"consumer.p{i}": consumers[i].run for i in own}
    first = [consumers[i].subscribed for i in own]

    def after_own_share(consumer: Consumer) -> Loop:
        def run(stop: threading.Event) -> None:
            for subscribed in first:
                while not stop.is_set() and not subscribed.wait(0.5):
                    pass
            if not stop.wait(max(0.0, standby_after)):
                consumer.run(stop)

        return run

    loops.update({f"consumer.p{i}": after_own_share(consumers[i]) for i in standby})
    return loops
