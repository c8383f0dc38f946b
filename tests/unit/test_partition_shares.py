"""Scale-out by partitions without a broker: each worker's share and subscription order, the partitions'
topology as declared, the partition key the publisher sets, and the settings (shared.messaging.partitions)."""

from __future__ import annotations

import threading

import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from shared.config import ConfigError, Settings
from shared.messaging import EXCHANGE
from shared.messaging.envelope import PARTITION_HEADER, Event, partition_key
from shared.messaging.partitions import consumer_loops, ordered_loops, subscription_order
from shared.messaging.topology import QueueSpec, TopologyConflict, declare_queue, hash_exchange_of, partition_names


def test_each_worker_subscribes_first_to_its_own_share_then_to_the_rest():
    assert subscription_order(4, 0, 2) == ((0, 2), (1, 3))
    assert subscription_order(4, 1, 2) == ((1, 3), (0, 2))
    assert subscription_order(4, 0, 1) == ((0, 1, 2, 3), ())
    # More workers than partitions: the extra worker is standby everywhere.
    assert subscription_order(2, 2, 3) == ((), (0, 1))


def test_the_shares_of_all_workers_cover_every_partition_once():
    for partitions, count in ((4, 2), (5, 3), (8, 3), (3, 3)):
        owned = [i for index in range(count) for i in subscription_order(partitions, index, count)[0]]
        assert sorted(owned) == list(range(partitions))


class FakeConsumer:
    def __init__(self, started: list[int], index: int):
        self.subscribed = threading.Event()
        self._started, self._index = started, index

    def run(self, stop: threading.Event) -> None:
        self._started.append(self._index)
        self.subscribed.set()
        stop.wait()


def test_standby_consumers_start_only_once_the_own_share_is_subscribed():
    started: list[int] = []
    consumers = [FakeConsumer(started, i) for i in range(4)]
    loops = ordered_loops(consumers, (1, 3), (0, 2), standby_after=0.0)  # type: ignore[arg-type]
    assert sorted(loops) == ["consumer.p0", "consumer.p1", "consumer.p2", "consumer.p3"]
    stop = threading.Event()
    standby = [threading.Thread(target=loops[f"consumer.p{i}"], args=(stop,)) for i in (0, 2)]
    for thread in standby:
        thread.start()
    standby[0].join(0.3)
    assert started == []  # waiting on p1 and p3
    own = [threading.Thread(target=loops[f"consumer.p{i}"], args=(stop,)) for i in (1, 3)]
    own[0].start()
    own[0].join(0.3)
    assert started == [1]  # p3 not yet subscribed: the standby ones still wait
    own[1].start()
    for _ in range(100):
        if len(started) == 4:
            break
        standby[0].join(0.05)
    stop.set()
    for thread in own + standby:
        thread.join(2)
    assert sorted(started[:2]) == [1, 3] and sorted(started[2:]) == [0, 2]


def test_a_standby_consumer_that_is_stopped_while_waiting_never_subscribes():
    started: list[int] = []
    consumers = [FakeConsumer(started, i) for i in range(2)]
    loops = ordered_loops(consumers, (0,), (1,), standby_after=0.0)  # type: ignore[arg-type]
    stop = threading.Event()
    stop.set()
    loops["consumer.p1"](stop)
    assert started == []


def settings(**env: str) -> Settings:
    return Settings.from_env("kit", {"AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F", **env})


def test_one_partition_is_the_queue_itself_with_its_one_consumer():
    assert partition_names("intake", 1) == ("intake",)
    assert list(consumer_loops(settings(), "intake", ("offer.accepted",), lambda e: None)) == ["consumer"]


def test_partitions_are_named_after_the_queue_and_consumed_own_share_first():
    assert partition_names("intake", 3) == ("intake.p0", "intake.p1", "intake.p2")
    loops = consumer_loops(
        settings(AMQP_PARTITIONS="3", WORKER_INDEX="1", WORKER_COUNT="2"), "intake", ("offer.accepted",), lambda e: None
    )
    assert list(loops) == ["consumer.p1", "consumer.p0", "consumer.p2"]


def test_worker_index_must_be_below_worker_count_and_may_be_a_pod_name():
    assert settings(WORKER_INDEX="intake-worker-2", WORKER_COUNT="3").worker_index == 2
    assert settings().partitions == 1 and settings().worker_count == 1
    with pytest.raises(ConfigError, match="WORKER_INDEX=2 must be below WORKER_COUNT=2"):
        settings(WORKER_INDEX="2", WORKER_COUNT="2")
    with pytest.raises(ConfigError, match="AMQP_PARTITIONS"):
        settings(AMQP_PARTITIONS="0")


def test_the_partition_key_is_the_subject_else_the_event_id():
    assert partition_key(Event("thing.happened", "/t", "ref-7", {}).to_json()) == "ref-7"
    unaddressed = Event("thing.happened", "/t", "", {})
    assert partition_key(unaddressed.to_json()) == unaddressed.id
    assert partition_key(b"not json") == ""


class RecordingChannel:
    def __init__(self, refuse_exchange_type: bool = False, queues: tuple[str, ...] = ()):
        self.calls: list[tuple] = []
        self._refuse = refuse_exchange_type
        self._existing = queues
        self.connection = self

    def channel(self) -> RecordingChannel:
        return self

    def close(self) -> None:
        pass

    def exchange_declare(self, name, kind, durable=True, passive=False, arguments=None):
        if self._refuse and kind == "x-consistent-hash":
            raise ConnectionClosedByBroker(503, "COMMAND_INVALID - unknown exchange type 'x-consistent-hash'")
        self.calls.append(("exchange", name, kind, arguments))

    def queue_declare(self, name, durable=True, arguments=None, passive=False):
        if passive:
            if name not in self._existing:
                raise ChannelClosedByBroker(404, f"NOT_FOUND - no queue '{name}'")
            return
        self.calls.append(("queue", name, arguments))

    def queue_bind(self, queue, exchange, routing_key):
        self.calls.append(("bind", queue, exchange, routing_key))

    def exchange_bind(self, destination, source, routing_key):
        self.calls.append(("e2e", destination, source, routing_key))


def test_a_partition_is_a_single_active_consumer_queue_behind_the_hash_exchange():
    channel = RecordingChannel()
    spec = QueueSpec("intake.p1", ("offer.accepted", "offer.declined"), hash_exchange=hash_exchange_of("intake"))
    declare_queue(channel, spec)  # type: ignore[arg-type]
    queues = {call[1]: call[2] for call in channel.calls if call[0] == "queue"}
    assert queues["intake.p1"]["x-single-active-consumer"] is True
    assert set(queues) == {"intake.p1", "intake.p1.retry", "intake.p1.parking", "intake.p1.holding"}
    assert ("exchange", "intake.partitions", "x-consistent-hash", {"hash-header": PARTITION_HEADER}) in channel.calls
    assert ("e2e", "intake.partitions", EXCHANGE, "offer.accepted") in channel.calls
    assert ("e2e", "intake.partitions", EXCHANGE, "offer.declined") in channel.calls
    assert ("bind", "intake.p1", "intake.partitions", "1") in channel.calls
    assert not [call for call in channel.calls if call[0] == "bind" and call[1] == "intake.p1" and call[2] == EXCHANGE]


def test_a_single_queue_keeps_competing_consumers_and_its_direct_bindings():
    channel = RecordingChannel()
    declare_queue(channel, QueueSpec("intake", ("offer.accepted",)))  # type: ignore[arg-type]
    queues = {call[1]: call[2] for call in channel.calls if call[0] == "queue"}
    assert "x-single-active-consumer" not in queues["intake"]
    assert ("bind", "intake", EXCHANGE, "offer.accepted") in channel.calls
    assert not [call for call in channel.calls if call[0] in ("e2e",) or call[2:3] == ("x-consistent-hash",)]


def test_a_broker_without_the_plugin_stops_the_worker_with_the_fix():
    spec = QueueSpec("intake.p0", ("offer.accepted",), hash_exchange="intake.partitions")
    with pytest.raises(TopologyConflict, match="rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"):
        declare_queue(RecordingChannel(refuse_exchange_type=True), spec)  # type: ignore[arg-type]


def test_a_partition_refuses_to_start_beside_the_single_queue_it_replaces():
    spec = QueueSpec("intake.p0", ("offer.accepted",), hash_exchange="intake.partitions")
    with pytest.raises(TopologyConflict, match="rabbitmqctl delete_queue intake;"):
        declare_queue(RecordingChannel(queues=("intake",)), spec)  # type: ignore[arg-type]
