"""For the batch consumer's tests on the real broker: a consumer whose lane starts only once a given number of
messages wait for it, so they are handled as one batch however the connection's thread and the lane's
interleave; a journal of each ack beside the commits; and the kit's events queued before any consumer runs."""

from __future__ import annotations

import pika

from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Event
from shared.messaging.topology import QueueSpec, declare_queue
from support.amqp import publish
from support.waiting import wait_until


class Gathering(Consumer):
    """A consumer (one lane) that takes its first messages only once `gather` of them wait on its lane; each
    ack is noted in `journal` (if given) as `ack <delivery tag>`."""

    def __init__(self, *args, gather: int, journal: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.gather, self.journal = gather, journal

    def _lane(self, index, lanes, channel):
        if self.gather:
            wait_until(lambda: lanes.queues[index].qsize() >= self.gather, timeout=30)
            self.gather = 0  # once: what the broker redelivers later is taken as it comes
        super()._lane(index, lanes, _Noting(channel, self.journal) if self.journal is not None else channel)


class _Noting:
    def __init__(self, channel, journal: list[str]):
        self._channel, self._journal = channel, journal

    @property
    def is_open(self) -> bool:
        return self._channel.is_open

    def basic_ack(self, delivery_tag: int) -> None:
        self._journal.append(f"ack {delivery_tag}")
        self._channel.basic_ack(delivery_tag)

    def basic_reject(self, delivery_tag: int, requeue: bool) -> None:
        self._channel.basic_reject(delivery_tag, requeue)

    def basic_publish(self, exchange, routing_key, body, properties, mandatory=False) -> None:
        self._channel.basic_publish(exchange, routing_key, body, properties, mandatory)


def queued(url: str, spec: QueueSpec, events: list[Event]) -> None:
    """Declare `spec`'s queue as its consumer will, and publish `events` onto it, before any consumer runs."""
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        declare_queue(connection.channel(), spec)
    for event in events:
        publish(url, event)
