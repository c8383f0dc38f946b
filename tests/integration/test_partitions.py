"""Scale-out by partitions on the real RabbitMQ (issue 17 item 4): two worker processes of one queue split into
four single-active-consumer partitions behind a consistent-hash exchange, 500 referrals' events published by the
outbox relay (which sets the header the exchange hashes on), one worker SIGKILLed while they flow.

Needs the broker's rabbitmq_consistent_hash_exchange plugin (the fixture below says how to enable it).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import defaultdict
from urllib.parse import unquote, urlsplit

import pika
import pytest
from sqlalchemy import text

from services.migrate import migrate
from shared.db import make_engine, make_session_factory
from shared.messaging.relay import OutboxRelay
from shared.messaging.topology import HASH_EXCHANGE_TYPE, HASH_PLUGIN, partition_names
from support.amqp import running
from support.kit import Base, KitUnitOfWork, Outbox, thing
from support.processes import Platform
from support.waiting import wait_until

QUEUE = "kit.partitioned"
PARTITIONS = 4
REFERRALS = 500


@pytest.fixture
def hash_exchange_plugin(amqp_url):
    """Fails at once, with the fix, on a broker without the consistent-hash exchange."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.exchange_declare("partition-test.probe", HASH_EXCHANGE_TYPE, auto_delete=True)
        channel.exchange_delete("partition-test.probe")
    except pika.exceptions.ConnectionClosedByBroker:
        pytest.fail(f"RabbitMQ has no {HASH_EXCHANGE_TYPE} exchange. Fix: rabbitmq-plugins enable {HASH_PLUGIN}")
    finally:
        if connection.is_open:
            connection.close()


@pytest.fixture
def database(fresh_database):
    url = fresh_database("partitions")
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE handled (id serial PRIMARY KEY, referral_id text, n int, queue text, worker text)")
        )
    yield url, engine
    engine.dispose()


@pytest.fixture
def platform(tmp_path, amqp_url, database):
    env = {
        "AMQP_URL": amqp_url,
        "KIT_DATABASE_URL": database[0],
        "PYTHONPATH": "tests",
        "PARTITION_TEST_QUEUE": QUEUE,
        "AMQP_PARTITIONS": str(PARTITIONS),
        "WORKER_COUNT": "2",
        "AMQP_STANDBY_DELAY_SECONDS": "2",
        "AMQP_RETRY_DELAY_MS": "200",
    }
    processes = Platform(tmp_path, env)
    yield processes
    processes.stop()


def stage(sessions, steps: range) -> None:
    """Each referral's events `steps`, step by step across all referrals: n=0 for every referral, then n=1..."""
    for n in steps:
        for first in range(0, REFERRALS, 100):
            with KitUnitOfWork(sessions) as uow:
                for r in range(first, first + 100):
                    uow.stage(thing(referral_id=f"ref-{r:03d}", n=n))
                uow.commit()


def handled(engine) -> list[tuple[str, int, str, str]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(text("SELECT referral_id, n, queue, worker FROM handled ORDER BY id"))
        ]


def settled(engine, platform: Platform, count: int) -> None:
    """Wait until `count` events have been applied; else fail with what the workers logged."""
    try:
        wait_until(lambda: len(handled(engine)) >= count, 45)
    except AssertionError:
        said = platform.logs()[-3000:]
        raise AssertionError(f"{len(handled(engine))} of {count} applied; the workers said:\n{said}") from None


def consumers(amqp_url: str) -> dict[str, list[bool]]:
    """Each partition's consumers' `active` flags, as the broker lists them."""
    vhost = unquote(urlsplit(amqp_url).path[1:])
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_consumers", "-p", vhost, "queue_name", "active", "--formatter", "json"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    listed: dict[str, list[bool]] = defaultdict(list)
    for entry in json.loads(out or "[]"):
        listed[entry["queue_name"]].append(entry["active"] in (True, "true"))
    return listed


def test_two_workers_share_the_partitions_in_order_and_one_takes_over_when_the_other_is_killed(
    amqp_url, database, platform, hash_exchange_plugin
):
    _, engine = database
    sessions = make_session_factory(engine)
    names = partition_names(QUEUE, PARTITIONS)
    argv = [sys.executable, "-m", "support.partition_worker"]
    workers = [platform.start(f"worker-{i}", argv, {"WORKER_INDEX": str(i)}) for i in range(2)]
    # Each partition has both workers subscribed, exactly one of them active.
    wait_until(lambda: (platform.check_alive(), all(len(consumers(amqp_url).get(q, [])) == 2 for q in names))[1], 45)
    assert all(flags.count(True) == 1 for flags in consumers(amqp_url).values())

    relay = OutboxRelay(amqp_url, sessions, Outbox, name="partition-test", poll_interval=0.05)
    with running(relay.run):
        stage(sessions, range(2))
        with KitUnitOfWork(sessions) as uow:  # fails once, then passes: back to its own partition by name
            uow.stage(thing(referral_id="ref-retried", poison=True))
            uow.commit()
        settled(engine, platform, 2 * REFERRALS + 1)
        before = handled(engine)
        stage(sessions, range(2, 4))
        wait_until(lambda: len(handled(engine)) > 2 * REFERRALS + 100, 45)
        platform.stop(workers[0], sig=signal.SIGKILL)  # mid-flow: its unacked deliveries go to the standby
        settled(engine, platform, 4 * REFERRALS + 1)
    rows = [row for row in handled(engine) if row[0] != "ref-retried"]

    # The workers shared the partitions, each worker active on its own share: p0, p2 for w0, p1, p3 for w1.
    by_partition = defaultdict(set)
    for referral, _, queue, worker in before:
        if referral == "ref-retried":
            continue
        by_partition[queue].add(worker)
    assert dict(by_partition) == {names[0]: {"w0"}, names[1]: {"w1"}, names[2]: {"w0"}, names[3]: {"w1"}}
    # Nothing lost, nothing applied twice (the inbox), and every referral's events applied in order.
    steps = defaultdict(list)
    for referral, n, _, _ in rows:
        steps[referral].append(n)
    assert len(steps) == REFERRALS
    assert all(ns == [0, 1, 2, 3] for ns in steps.values()), {r: ns for r, ns in steps.items() if ns != [0, 1, 2, 3]}
    # One referral, one partition; each partition served by one worker at a time: w0's share handed to w1 once.
    partitions_of = defaultdict(set)
    workers_of = defaultdict(list)
    for referral, _, queue, worker in rows:
        partitions_of[referral].add(queue)
        if not workers_of[queue] or workers_of[queue][-1] != worker:
            workers_of[queue].append(worker)
    assert all(len(queues) == 1 for queues in partitions_of.values())
    assert dict(workers_of) == {names[0]: ["w0", "w1"], names[1]: ["w1"], names[2]: ["w0", "w1"], names[3]: ["w1"]}
    # The survivor is now the only, and active, consumer of every partition.
    assert consumers(amqp_url) == {q: [True] for q in names}


def test_notifications_workers_take_their_own_partitions_and_refuse_to_start_beside_the_single_queue(
    amqp_url, fresh_database, dev_keys, tmp_path, hash_exchange_plugin
):
    """The service's own worker (services.notifications.worker) with AMQP_PARTITIONS: its consumer loops are the
    partitions', and one started while the single queue is still there stops with the fix."""
    url = fresh_database("notifications")
    migrate("notifications", url)
    env = {
        "AMQP_URL": amqp_url,
        "NOTIFICATIONS_DATABASE_URL": url,
        "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
        "AMQP_PARTITIONS": "2",
        "WORKER_COUNT": "2",
        "AMQP_STANDBY_DELAY_SECONDS": "1",
    }
    platform = Platform(tmp_path, env)
    names = partition_names("notifications", 2)
    try:
        for i in range(2):
            platform.start_worker("notifications", {"WORKER_INDEX": str(i)}, name=f"notifications-worker-{i}")
        wait_until(
            lambda: (platform.check_alive(), all(len(consumers(amqp_url).get(q, [])) == 2 for q in names))[1], 45
        )
        assert {q: flags.count(True) for q, flags in consumers(amqp_url).items()} == {q: 1 for q in names}
        assert "notifications" not in consumers(amqp_url)
        platform.stop()

        with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
            connection.channel().queue_declare("notifications", durable=True, arguments={"x-queue-type": "quorum"})
        late = platform.start_worker("notifications", {"WORKER_INDEX": "0"})
        late.popen.wait(timeout=45)
        assert late.popen.returncode == 1
        assert "rabbitmqctl delete_queue notifications;" in late.output()
    finally:
        platform.stop()
