"""The outbox relay keeping confirms in flight and waking on commit, on the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import timedelta

import pika
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from contracts import events
from shared.clock import utcnow
from shared.db import make_engine, make_session_factory
from shared.messaging.catalogue import EventData
from shared.messaging.envelope import Event
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import declare_exchanges
from support.amqp import declare_tap, drain, running
from support.db import drop_connections_to
from support.infra import add_provider
from support.kit import Base, KitUnitOfWork, Outbox, Thing, thing
from support.waiting import wait_until


@pytest.fixture
def sessions(fresh_database):
    engine = make_engine(fresh_database("relay"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def event(kind: str = "thing.happened", **data) -> Thing:
    return thing(kind, **data)


def stage(sessions, *payloads: EventData) -> list[Event]:
    """Stage the events in one unit of work; the events as they will be published."""
    with KitUnitOfWork(sessions) as uow:
        return [uow.stage(p) for p in payloads]


def rows(sessions) -> dict[str, Outbox]:
    with sessions() as session:
        return {row.id: row for row in session.scalars(select(Outbox))}


def test_a_batch_with_confirms_in_flight_marks_sent_all_but_the_unroutable_event_in_its_middle(amqp_url, sessions):
    declare_tap(amqp_url, "kit.batch", "thing.happened")
    # more than one batch of 100, with one event nobody listens for
    staged = stage(sessions, *(event(n=i) for i in range(120)), event("nobody.listens"),
                   *(event(n=i) for i in range(120, 250)))  # fmt: skip
    before, unroutable, after = staged[:120], staged[120], staged[121:]
    relay = OutboxRelay(amqp_url, sessions, Outbox, name="kit", poll_interval=0.02)
    with running(relay.run):
        got = drain(amqp_url, "kit.batch", expect=250, timeout=30)
        wait_until(lambda: sum(r.sent_at is not None for r in rows(sessions).values()) == 250, timeout=15)
    assert {p.message_id for p, _ in got} == {e.id for e in before + after}
    found = rows(sessions)
    assert found[unroutable.id].sent_at is None
    assert found[unroutable.id].attempts == 1
    assert "no queue is bound" in found[unroutable.id].last_error
    assert all(found[e.id].sent_at is not None and found[e.id].attempts == 1 for e in before + after)


def test_an_event_the_broker_nacks_stays_pending_with_its_reason(amqp_url, sessions):
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.exchange_declare("referrals", "topic", durable=True)
    # A queue that refuses every message: with `reject-publish` the broker nacks the publish.
    channel.queue_declare("kit.full", durable=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    channel.queue_bind("kit.full", "referrals", routing_key="thing.refused")
    connection.close()
    declare_tap(amqp_url, "kit.fine", "thing.refused.elsewhere")
    refused, fine = stage(sessions, event("thing.refused"), event("thing.refused.elsewhere"))
    relay = OutboxRelay(amqp_url, sessions, Outbox, name="kit", poll_interval=0.02)
    with running(relay.run):
        wait_until(
            lambda: rows(sessions)[refused.id].attempts >= 1 and rows(sessions)[fine.id].sent_at is not None, timeout=15
        )
    row = rows(sessions)[refused.id]
    assert row.sent_at is None
    assert "broker nack" in row.last_error
    assert row.next_attempt_at > row.created_at


def test_a_commit_wakes_the_relay_without_waiting_for_its_poll(amqp_url, sessions):
    declare_tap(amqp_url, "kit.notify", "thing.happened")
    relay = OutboxRelay(amqp_url, sessions, Outbox, name="kit", poll_interval=30.0)  # a poll would take 30 s
    with running(relay.run):
        wait_until(lambda: relay.listening, timeout=10)
        time.sleep(0.3)  # past the relay's first look at the table
        for i in range(3):
            committed = time.monotonic()
            stage(sessions, event(n=i))
            got = drain(amqp_url, "kit.notify", expect=1, timeout=5)
            assert got, "the commit did not wake the relay"
            assert time.monotonic() - committed < 2.0


def test_a_rolled_back_transaction_publishes_nothing(amqp_url, sessions):
    declare_tap(amqp_url, "kit.rollback", "thing.happened")
    relay = OutboxRelay(amqp_url, sessions, Outbox, name="kit", poll_interval=0.02)
    with running(relay.run):
        wait_until(lambda: relay.listening, timeout=10)
        with pytest.raises(RuntimeError), KitUnitOfWork(sessions) as uow:
            uow.stage(event())
            raise RuntimeError("the use case failed after staging its event")
        assert drain(amqp_url, "kit.rollback", expect=1, timeout=1.0) == []
    assert rows(sessions) == {}


def test_the_relay_outlives_the_database_dropping_its_connections(amqp_url, sessions, pg_admin_url):
    """No pool pre-ping: the relay's next look fails on its dead connection, and it must start again, not die."""
    declare_tap(amqp_url, "kit.dropped", "thing.happened")
    relay = OutboxRelay(amqp_url, sessions, Outbox, name="kit", poll_interval=0.05)
    with running(relay.run):
        stage(sessions, event(n=1))
        assert len(drain(amqp_url, "kit.dropped", expect=1, timeout=10)) == 1

        drop_connections_to(sessions.kw["bind"].url.database, pg_admin_url)
        time.sleep(1.0)  # the relay's next looks at the table meet the dead connection first
        try:
            stage(sessions, event(n=2))
        except OperationalError:  # this test's own pooled connection was dropped too: a second try gets a new one
            stage(sessions, event(n=2))
        assert len(drain(amqp_url, "kit.dropped", expect=1, timeout=15)) == 1
    wait_until(lambda: all(r.sent_at is not None for r in rows(sessions).values()), timeout=15)


def test_on_sqlite_the_relay_polls(amqp_url, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'relay.db'}", instrument=False)
    Base.metadata.create_all(engine)
    sessions = make_session_factory(engine)
    declare_tap(amqp_url, "kit.sqlite", "thing.happened")
    relay = OutboxRelay(amqp_url, sessions, Outbox, name="kit", poll_interval=0.02)
    assert not relay.listening
    with running(relay.run):
        stage(sessions, *(event(n=i) for i in range(5)))
        got = drain(amqp_url, "kit.sqlite", expect=5, timeout=10)
        wait_until(lambda: all(r.sent_at is not None for r in rows(sessions).values()), timeout=15)
    assert len(got) == 5
    engine.dispose()


def test_a_publish_the_broker_refuses_holds_back_only_its_own_row(amqp_url, sessions):
    """A charity's restricted user (deploy/rabbitmq/add-provider.sh) may not publish intake's events: the one
    row it may not publish is held back with the broker's reason, and the rows around it flow on."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as platform:
        declare_exchanges(platform.channel())
    provider_id = f"relay-{uuid.uuid4().hex[:6]}"
    charity_url = add_provider(amqp_url, provider_id)
    declare_tap(amqp_url, "kit.refusals", "provider.capacity_changed", "referral.escalated")
    try:

        def capacity(n: int) -> events.ProviderCapacityChanged:
            return events.ProviderCapacityChanged(provider_id=provider_id, capacity=n, advocates=1)

        not_its_own = events.ReferralEscalated(
            referral_id="r-1", org_id="met-police", external_reference="MET-1", status="escalated",
            reason="none_accepted",
        )  # fmt: skip
        staged = stage(sessions, capacity(1), capacity(2), not_its_own, capacity(3), capacity(4))
        refused = staged[2]
        relay = OutboxRelay(charity_url, sessions, Outbox, name="kit", poll_interval=0.02, declare_exchanges=False)
        with running(relay.run):  # a crash of the relay would surface here
            wait_until(lambda: rows(sessions)[refused.id].last_error is not None, timeout=15)
            wait_until(lambda: sum(r.sent_at is not None for r in rows(sessions).values()) == 4, timeout=15)
            got = drain(amqp_url, "kit.refusals", expect=8, timeout=2)
            [later] = stage(sessions, capacity(5))  # and the relay goes on publishing
            got += drain(amqp_url, "kit.refusals", expect=1, timeout=15)
            wait_until(lambda: rows(sessions)[later.id].sent_at is not None, timeout=15)
    finally:
        user = f"{events.PROVIDER_USER_PREFIX}{provider_id}"
        subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60)
    # Each of the others at least once (one published before the refusal closed the channel, and not yet
    # confirmed, goes again: consumers' inboxes drop the duplicate); the refused one never.
    assert {json.loads(body)["data"]["capacity"] for _, body in got} == {1, 2, 3, 4, 5}
    row = rows(sessions)[refused.id]
    assert row.sent_at is None and row.attempts == 1
    assert "refused by the broker" in row.last_error and "ACCESS_REFUSED" in row.last_error
    assert row.next_attempt_at > utcnow() + timedelta(seconds=30)  # held back, not retried in a tight loop
    assert all(r.sent_at is not None for r in rows(sessions).values() if r.id != refused.id)
