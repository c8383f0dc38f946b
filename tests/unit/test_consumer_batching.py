"""Batched consumption through a fake unit of work and a fake channel (no broker, no database): what a lane
has waiting is handled in one unit of work and acked only after it commits; a refused message is parked alone
and leaves the batch; a failure inside rolls the whole batch back and its messages go one by one, so a poison
message is retried alone, a transient fault is held, and nothing is applied twice."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from types import SimpleNamespace

import pika
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from shared.health import Health
from shared.inbox import EventHandlers, alone
from shared.messaging import EXCHANGE, PARKING_EXCHANGE
from shared.messaging.catalogue import EventData, Subscriptions, envelope
from shared.messaging.consumer import Consumer, Delivery, _Lanes
from shared.messaging.topology import QueueSpec
from shared.retry import Backoff
from shared.uow import UnitOfWork
from support.kit import KIT, NobodyListens, ThingHappened, ThingRefused

NO_WAIT = Backoff(first=0.001, cap=0.001)


class Store:
    """What survives a unit of work: the inbox and the effects its commits kept, and a journal of begins,
    commits, rollbacks, event ends and channel calls, in the order they happened."""

    def __init__(self) -> None:
        self.inbox: set[str] = set()
        self.effects: list[tuple[str, int]] = []
        self.journal: list[str] = []

    def unit(self) -> FakeUnit:
        return FakeUnit(self)

    def transactions(self) -> list[str]:
        return [entry for entry in self.journal if entry in ("commit", "rollback")]


class FakeUnit(UnitOfWork):
    """One transaction over the store: its inbox rows and effects are kept only if it commits."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.inbox: set[str] = set()
        self.effects: list[tuple[str, int]] = []

    def __enter__(self) -> FakeUnit:
        self.store.journal.append("begin")
        return self

    def stage(self, data: EventData):
        raise NotImplementedError

    def first_delivery(self, consumer: str, message_id: str) -> bool:
        if message_id in self.store.inbox or message_id in self.inbox:
            return False
        self.inbox.add(message_id)
        return True

    def first_deliveries(self, consumer: str, message_ids) -> set[str]:
        self.store.journal.append(f"inbox {len(message_ids)}")  # one multi-row insert
        return super().first_deliveries(consumer, message_ids)

    def end_event(self) -> None:
        self.store.journal.append("end event")

    def commit(self) -> None:
        self.store.inbox |= self.inbox
        self.store.effects += self.effects
        self.store.journal.append("commit")

    def rollback(self) -> None:
        self.store.journal.append("rollback")


class FakeChannel:
    is_open = True

    def __init__(self, journal: list[str]):
        self.journal = journal

    def basic_ack(self, delivery_tag):
        self.journal.append(f"ack {delivery_tag}")

    def basic_reject(self, delivery_tag, requeue):
        self.journal.append(f"reject {delivery_tag}")

    def basic_publish(self, exchange, routing_key, body, properties, mandatory=False):
        self.journal.append(f"publish {exchange}")


class Failing:
    """A handler's dependency that fails the first `times` calls for one event with `error`."""

    def __init__(self, n: int, error: Exception, times: int):
        self.n, self.error, self.left = n, error, times

    def check(self, n: int) -> None:
        if n == self.n and self.left > 0:
            self.left -= 1
            raise self.error


def handlers(store: Store, failing: Failing | None = None, *, alone_too: bool = False) -> EventHandlers:
    def effect(uow: FakeUnit, event) -> None:
        if event.data.poison:
            raise RuntimeError("this handler can never succeed")
        if failing is not None:
            failing.check(event.data.n)
        uow.effects.append((event.subject, event.data.n))

    handled = Subscriptions(KIT, "kit").on(ThingHappened, effect)
    if alone_too:
        handled.on(ThingRefused, alone(effect))
    return EventHandlers("kit", store.unit, handled, trusted={"guest"})


def delivery(tag: int, data: EventData, *, event_id: str | None = None, amqp_type: str | None = "") -> Delivery:
    event, key = envelope(data)
    if event_id is not None:
        event = dataclasses.replace(event, id=event_id)
    method = SimpleNamespace(delivery_tag=tag, exchange=EXCHANGE, routing_key=key)
    kind = event.type if amqp_type == "" else amqp_type
    properties = pika.BasicProperties(type=kind, message_id=event.id, headers={}, user_id="guest")
    return method, properties, event.to_json()


def again(tag: int, item: Delivery) -> Delivery:
    """A second delivery of the same message (e.g. the relay published it twice)."""
    method, properties, body = item
    return SimpleNamespace(delivery_tag=tag, exchange=method.exchange, routing_key=method.routing_key), properties, body


def things(subject: str, count: int, start: int = 1, **data) -> list[Delivery]:
    return [delivery(start + n, ThingHappened(referral_id=subject, n=n, **data)) for n in range(count)]


def consume(handle, deliveries: list[Delivery], journal: list[str], *, batch_size: int = 20) -> Consumer:
    """Put `deliveries` on a lane as the connection's thread would, then run the lane until it has them all."""
    queue = f"unit.batch.{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        "amqp://guest:guest@127.0.0.1:1/%2F",
        QueueSpec(queue, ("#",)),
        handle,
        batch_size=batch_size,
        transient=NO_WAIT,
        health=Health(),
    )
    lanes = _Lanes(1)
    for item in deliveries:
        lanes.queues[0].put(item)
    lanes.queues[0].put(None)
    consumer._lane(0, lanes, FakeChannel(journal))  # type: ignore[arg-type]
    return consumer


def counted(consumer: Consumer, outcome: str, event_type: str = "thing.happened") -> float:
    labels = {"queue": consumer.spec.name, "event_type": event_type, "outcome": outcome}
    return REGISTRY.get_sample_value("referrals_messages_consumed_total", labels) or 0.0


def test_what_a_lane_has_waiting_is_one_unit_of_work_with_one_inbox_insert_and_each_message_is_acked_after_it():
    store = Store()
    consumer = consume(handlers(store), things("ref-a", 5), store.journal)
    assert store.journal == [
        "begin",
        "inbox 5",
        *["end event"] * 5,
        "commit",
        "ack 1",
        "ack 2",
        "ack 3",
        "ack 4",
        "ack 5",
    ]
    assert store.effects == [("ref-a", n) for n in range(5)]
    assert counted(consumer, "handled") == 5  # each message counted once, as before


def test_a_batch_takes_at_most_the_batch_size_and_a_message_left_alone_takes_the_one_by_one_path():
    store = Store()
    consume(handlers(store), things("ref-a", 7), store.journal, batch_size=3)
    assert store.journal.count("inbox 3") == 2  # two batches of three, then the seventh alone
    assert store.transactions() == ["commit"] * 3
    assert store.effects == [("ref-a", n) for n in range(7)]


def test_a_poison_message_rolls_the_batch_back_and_is_retried_alone_while_the_others_commit_once_each():
    store = Store()
    sent = things("ref-a", 2) + [delivery(3, ThingHappened(referral_id="ref-b", poison=True))]
    sent += [delivery(4, ThingHappened(referral_id="ref-a", n=2))]
    consumer = consume(handlers(store), sent, store.journal)
    assert store.transactions() == ["rollback", "commit", "commit", "rollback", "commit"]
    assert "reject 3" in store.journal  # to the retry queue, an attempt spent: it comes back alone
    assert store.effects == [("ref-a", 0), ("ref-a", 1), ("ref-a", 2)]
    assert store.inbox == {item[1].message_id for item in sent if item[0].delivery_tag != 3}
    assert counted(consumer, "handled") == 3 and counted(consumer, "retried") == 1
    acks = [entry for entry in store.journal if entry.startswith("ack")]
    assert acks == ["ack 1", "ack 2", "ack 4"]  # none before its own commit


def test_a_refused_message_is_parked_alone_at_once_and_the_rest_of_the_batch_still_commits_together():
    store = Store()
    refused = delivery(2, NobodyListens(referral_id="ref-a"))  # in the catalogue, but kit handles no such event
    sent = [things("ref-a", 1)[0], refused, delivery(3, ThingHappened(referral_id="ref-a", n=1))]
    consumer = consume(handlers(store), sent, store.journal)
    assert store.journal[:3] == [f"publish {PARKING_EXCHANGE}", "ack 2", "begin"]
    assert store.journal.count("inbox 2") == 1 and store.transactions() == ["commit"]
    assert store.effects == [("ref-a", 0), ("ref-a", 1)]
    assert counted(consumer, "parked", "nobody.listens") == 1


def test_a_duplicate_inside_the_batch_and_one_already_in_the_inbox_do_nothing_and_are_counted_as_duplicates():
    store = Store()
    seen = str(uuid.uuid4())
    store.inbox.add(seen)  # handled before, by an earlier batch
    first = delivery(1, ThingHappened(referral_id="ref-a", n=0))
    old = delivery(3, ThingHappened(referral_id="ref-a", n=9), event_id=seen)
    consumer = consume(handlers(store), [first, again(2, first), old], store.journal)
    assert store.effects == [("ref-a", 0)]
    assert store.transactions() == ["commit"] and store.journal.count("end event") == 1
    assert [entry for entry in store.journal if entry.startswith("ack")] == ["ack 1", "ack 2", "ack 3"]
    assert counted(consumer, "handled") == 1 and counted(consumer, "duplicate") == 2


def test_a_transient_fault_inside_a_batch_is_held_one_by_one_and_everything_applies_once_in_each_subjects_order(
    caplog,
):
    store = Store()
    sent = [
        delivery(1, ThingHappened(referral_id="ref-a", n=0)),
        delivery(2, ThingHappened(referral_id="ref-b", n=10)),
        delivery(3, ThingHappened(referral_id="ref-a", n=1)),
        delivery(4, ThingHappened(referral_id="ref-b", n=11)),
        delivery(5, ThingHappened(referral_id="ref-a", n=2)),
    ]
    # The database drops out at the third message: in the batch, then again at its first attempt alone.
    down = Failing(1, OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")), times=2)
    caplog.set_level(logging.WARNING, logger="shared.messaging.consumer")
    consumer = consume(handlers(store, down), sent, store.journal)
    assert store.transactions()[0] == "rollback"
    assert "dependency unavailable; retrying the message in place" in caplog.text
    assert sorted(store.effects) == sorted([("ref-a", 0), ("ref-a", 1), ("ref-a", 2), ("ref-b", 10), ("ref-b", 11)])
    assert [n for subject, n in store.effects if subject == "ref-a"] == [0, 1, 2]
    assert [n for subject, n in store.effects if subject == "ref-b"] == [10, 11]
    assert not [entry for entry in store.journal if entry.startswith(("reject", "publish"))]  # nothing spent
    assert counted(consumer, "handled") == 5


def test_a_handler_marked_alone_gets_a_unit_of_work_of_its_own_between_the_batches_around_it():
    store = Store()
    sent = things("ref-a", 2) + [delivery(3, ThingRefused(referral_id="ref-a", n=2))]
    sent += [delivery(4, ThingHappened(referral_id="ref-a", n=3)), delivery(5, ThingHappened(referral_id="ref-a", n=4))]
    consume(handlers(store, alone_too=True), sent, store.journal)
    assert store.transactions() == ["commit"] * 3
    assert store.journal.count("inbox 2") == 2  # [0, 1], then 2 alone (first_delivery), then [3, 4]
    assert store.effects == [("ref-a", n) for n in range(5)]


def test_a_message_without_an_amqp_type_is_handled_alone():
    store = Store()
    sent = things("ref-a", 2) + [delivery(3, ThingHappened(referral_id="ref-a", n=2), amqp_type=None)]
    consume(handlers(store), sent, store.journal)
    assert store.transactions() == ["commit", "commit"]
    assert store.effects == [("ref-a", n) for n in range(3)]


def test_a_plain_callable_is_called_once_per_message():
    calls: list[str] = []
    journal: list[str] = []
    consume(lambda event: calls.append(event.id), things("ref-a", 4), journal)
    assert len(calls) == 4 and journal == ["ack 1", "ack 2", "ack 3", "ack 4"]


def test_batch_size_one_is_a_transaction_per_message():
    store = Store()
    consume(handlers(store), things("ref-a", 3), store.journal, batch_size=1)
    assert store.transactions() == ["commit"] * 3 and not [e for e in store.journal if e.startswith("inbox")]


def test_each_message_of_a_batch_has_its_own_consumer_span_in_its_own_trace(spans):
    store = Store()
    consume(handlers(store), things("ref-a", 3), store.journal)
    mine = [s for s in spans.get_finished_spans() if s.name == "thing.happened process"]
    assert len(mine) == 3
    assert {s.attributes["messaging.batch.message_count"] for s in mine} == {3}
    assert len({s.context.trace_id for s in mine}) == 3  # each continues its own message's trace


def test_a_failed_batch_leaves_its_messages_span_marked_and_the_failing_ones_error_without_its_text(spans):
    store = Store()
    sent = things("ref-a", 1) + [delivery(2, ThingHappened(referral_id="ref-a", poison=True))]
    consume(handlers(store), sent, store.journal)
    batched = [s for s in spans.get_finished_spans() if "messaging.batch.message_count" in s.attributes]
    assert len(batched) == 2 and all(e.name == "batch rolled back" for s in batched for e in s.events[-1:])
    failed = [s for s in batched if s.status.status_code.name == "ERROR"]
    assert len(failed) == 1 and "never succeed" not in (failed[0].status.description or "")
    assert [e.attributes["exception.type"] for e in failed[0].events if e.name == "exception"] == ["RuntimeError"]


@pytest.mark.parametrize("marker_after", [1, 3])
def test_a_flush_marker_among_waiting_messages_is_seen_after_those_before_it(marker_after):
    from shared.messaging.consumer import _FLUSH

    store = Store()
    consumer = Consumer("amqp://guest:guest@127.0.0.1:1/%2F", QueueSpec("unit.flush", ("#",)), handlers(store),
                        batch_size=20, health=Health())  # fmt: skip
    lanes = _Lanes(1)
    sent = things("ref-a", 4)
    for item in sent[:marker_after]:
        lanes.queues[0].put(item)
    lanes.queues[0].put(_FLUSH)
    for item in sent[marker_after:]:
        lanes.queues[0].put(item)
    lanes.queues[0].put(None)
    consumer._lane(0, lanes, FakeChannel(store.journal))  # type: ignore[arg-type]
    assert lanes.flushed[0].is_set()
    assert store.effects == [("ref-a", n) for n in range(4)]
