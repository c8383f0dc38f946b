"""The batch consumer on the real RabbitMQ and PostgreSQL: messages waiting for a lane are handled in one
transaction with one inbox insert and acked after it commits; one poison message among them is retried and
parked alone while the others take effect once; duplicates do nothing; a worker killed between the commit and
the acks has its batch redelivered as no-ops; a database outage in the middle of a batch is held and then
everything applies once, in each referral's order. The kit's events (support.kit), so no service's meaning."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from shared.db import make_engine, make_session_factory
from shared.health import Health
from shared.inbox import EventHandlers
from shared.messaging.catalogue import Subscriptions
from shared.messaging.envelope import Event
from shared.messaging.topology import QueueSpec
from shared.retry import Backoff
from support.amqp import drain, running
from support.batches import Gathering, queued
from support.events import arriving
from support.kit import KIT, Base, Inbox, KitUnitOfWork, Outbox, ThingHappened, thing
from support.tcp_proxy import TcpProxy
from support.waiting import wait_until

QUICK = Backoff(first=0.2, cap=1.0)  # shared.retry.TRANSIENT's shape, compressed for tests


class Database:
    """The kit's tables on a fresh PostgreSQL database (behind a proxy the test can close), and what each
    transaction did: `commits` and `rollbacks` counted by the engine, `applied` the (subject, n) each commit
    kept, in commit order."""

    def __init__(self, url: str, proxy: TcpProxy | None = None):
        self.url = url
        self.proxy = proxy
        reach = make_url(url)
        if proxy is not None:
            reach = reach.set(host="127.0.0.1", port=proxy.port)
        self.engine = make_engine(reach.render_as_string(hide_password=False), instrument=False)
        self.sessions = make_session_factory(self.engine)
        self.commits = 0
        self.rollbacks = 0
        self.applied: list[tuple[str, int]] = []
        sa_event.listen(self.engine, "commit", self._committed)
        sa_event.listen(self.engine, "rollback", self._rolled_back)

    def _committed(self, _connection) -> None:
        self.commits += 1

    def _rolled_back(self, _connection) -> None:
        self.rollbacks += 1

    def unit(self) -> Noting:
        return Noting(self.sessions, self.applied)

    def count(self, model) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model))


class Noting(KitUnitOfWork):
    """The kit's unit of work, noting what its handlers applied once (and only once) it has committed."""

    def __init__(self, sessions, applied: list[tuple[str, int]]):
        super().__init__(sessions)
        self._applied, self.noted = applied, []

    def commit(self) -> None:
        super().commit()
        self._applied.extend(self.noted)


@pytest.fixture
def database(fresh_database):
    url = fresh_database("kit")
    direct = make_engine(url)
    Base.metadata.create_all(direct)
    direct.dispose()
    db = Database(url)
    yield db
    db.engine.dispose()


@pytest.fixture
def proxied(fresh_database):
    """The same, reached through a TCP proxy the test closes to make PostgreSQL unreachable."""
    url = fresh_database("kit")
    direct = make_engine(url)
    Base.metadata.create_all(direct)
    direct.dispose()
    parsed = make_url(url)
    proxy = RefusingProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    proxy.open()
    db = Database(url, proxy)
    yield db
    proxy.close()
    db.engine.dispose()


class RefusingProxy(TcpProxy):
    """A proxy whose close() also wakes its accepting thread, so no connection gets through while closed."""

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
        super().close()


def kit_handlers(db: Database, during=None) -> EventHandlers:
    """The kit's handler, batch-capable: stages one outbox row (the effect); poison never succeeds; `during`
    is called with each event first."""

    def effect(uow: Noting, event: Event) -> None:
        if during is not None:
            during(event)
        if event.data.poison:
            raise RuntimeError("this handler can never succeed")
        uow.stage(thing(referral_id=event.subject, n=event.data.n))
        uow.noted.append((event.subject, event.data.n))

    return EventHandlers("kit", db.unit, Subscriptions(KIT, "kit").on(ThingHappened, effect), trusted={"guest"})


def spec_of(name: str) -> QueueSpec:
    return QueueSpec(f"{name}.{uuid.uuid4().hex[:6]}", ("thing.happened",), delivery_limit=5, retry_delay_ms=100)


def consumer(url: str, spec: QueueSpec, handle, *, gather: int, journal=None, **options) -> Gathering:
    options = {"max_attempts": 3, "prefetch": 20, "batch_size": 20, "transient": QUICK, **options}
    return Gathering(url, spec, handle, gather=gather, journal=journal, **options)


def counted(queue: str, outcome: str) -> float:
    labels = {"queue": queue, "event_type": "thing.happened", "outcome": outcome}
    return REGISTRY.get_sample_value("referrals_messages_consumed_total", labels) or 0.0


def events(subjects: int, each: int, **data) -> list[Event]:
    """`each` events for each of `subjects` referrals, interleaved as they would arrive."""
    ids = [str(uuid.uuid4()) for _ in range(subjects)]
    return [arriving(thing(referral_id=s, n=n, **data)) for n in range(each) for s in ids]


def by_subject(applied: list[tuple[str, int]]) -> dict[str, list[int]]:
    ordered: dict[str, list[int]] = {}
    for subject, n in applied:
        ordered.setdefault(subject, []).append(n)
    return ordered


def test_a_batch_commits_in_one_transaction_with_one_inbox_insert_and_acks_each_message_after_it(amqp_url, database):
    spec = spec_of("kit.batch")
    sent = events(subjects=4, each=5)
    queued(amqp_url, spec, sent)
    journal: list = database.applied  # what each commit applied, and each ack, in the order they happened
    inserts: list[str] = []
    sa_event.listen(
        database.engine, "before_cursor_execute", lambda *a: inserts.append(a[2][: len("INSERT INTO inbox")])
    )
    handle = kit_handlers(database)
    with running(consumer(amqp_url, spec, handle, gather=len(sent), journal=journal).run):
        wait_until(lambda: sum(isinstance(e, str) for e in journal) == len(sent), timeout=30)
    assert database.commits == 1 and database.rollbacks == 0
    assert journal[: len(sent)] == [(e.subject, e.data["n"]) for e in sent]  # applied in arrival order, committed
    assert journal[len(sent) :] == [f"ack {tag}" for tag in range(1, len(sent) + 1)]  # and only then acked
    assert inserts.count("INSERT INTO inbox") == 1
    assert database.count(Inbox) == database.count(Outbox) == len(sent)
    assert counted(spec.name, "handled") == len(sent)


def test_a_poison_message_in_a_batch_of_twenty_is_parked_alone_while_the_other_nineteen_apply_once(amqp_url, database):
    spec = spec_of("kit.batch.poison")
    sent = events(subjects=4, each=5)
    sent[7] = arriving(thing(referral_id=sent[7].subject, n=99, poison=True))
    queued(amqp_url, spec, sent)
    with running(consumer(amqp_url, spec, kit_handlers(database), gather=len(sent)).run):
        [(properties, _)] = drain(amqp_url, spec.parking_queue, expect=1, timeout=30)
        wait_until(lambda: len(database.applied) == len(sent) - 1, timeout=10)
    # The batch rolled back, then the poison message's three attempts did; the nineteen committed one by one.
    good = [e for e in sent if not e.data["poison"]]
    assert (database.rollbacks, database.commits) == (1 + 3, len(good))
    assert properties.message_id == sent[7].id
    assert properties.headers["x-parked-reason"] == "failed 3 times: RuntimeError"
    assert sorted(database.applied) == sorted((e.subject, e.data["n"]) for e in good)  # each exactly once
    assert by_subject(database.applied) == by_subject([(e.subject, e.data["n"]) for e in good])
    assert database.count(Inbox) == database.count(Outbox) == len(good)
    assert counted(spec.name, "handled") == len(good)
    assert counted(spec.name, "retried") == 2 and counted(spec.name, "parked") == 1


def test_a_duplicate_inside_a_batch_and_one_already_in_the_inbox_do_nothing(amqp_url, database):
    spec = spec_of("kit.batch.dupes")
    handle = kit_handlers(database)
    before = arriving(thing(referral_id="ref-seen", n=0))
    handle(before)  # handled before, by an earlier delivery
    fresh = events(subjects=2, each=3)
    sent = [fresh[0], before, *fresh[1:3], fresh[1], *fresh[3:]]  # fresh[1] published twice (a relay's retry)
    queued(amqp_url, spec, sent)
    with running(consumer(amqp_url, spec, handle, gather=len(sent)).run):
        wait_until(lambda: counted(spec.name, "duplicate") == 2, timeout=30)
    assert database.commits == 2  # the earlier delivery's, and the batch's
    assert database.count(Inbox) == database.count(Outbox) == len(fresh) + 1
    assert sorted(database.applied) == sorted([(before.subject, 0)] + [(e.subject, e.data["n"]) for e in fresh])
    assert counted(spec.name, "handled") == len(fresh)


def test_a_worker_killed_after_its_batch_commits_and_before_its_acks_has_the_batch_redelivered_as_no_ops(
    amqp_url, database
):
    spec = QueueSpec(f"kit.batch.crash.{uuid.uuid4().hex[:6]}", ("thing.happened",), retry_delay_ms=100)
    sent = events(subjects=3, each=4)
    queued(amqp_url, spec, sent)
    script = Path(__file__).parents[1] / "support" / "crash_after_batch_commit.py"
    crashing = subprocess.Popen([sys.executable, str(script), amqp_url, database.url, spec.name, str(len(sent))])
    try:
        assert crashing.wait(timeout=60) == 17, "the worker should die right after its batch's commit"
    finally:
        if crashing.poll() is None:
            crashing.kill()
    assert database.count(Outbox) == len(sent)  # the whole batch committed, none of it acked

    handle = kit_handlers(database)
    with running(consumer(amqp_url, spec, handle, gather=len(sent)).run):
        wait_until(lambda: counted(spec.name, "duplicate") == len(sent), timeout=30)  # redelivered, every one
    assert database.count(Outbox) == database.count(Inbox) == len(sent)
    assert database.applied == [] and counted(spec.name, "handled") == 0


def test_a_database_outage_in_the_middle_of_a_batch_is_held_then_everything_applies_once_in_order(
    amqp_url, proxied, caplog
):
    spec = spec_of("kit.batch.dbdown")
    sent = events(subjects=4, each=5)
    queued(amqp_url, spec, sent)
    outage = threading.Event()

    def cut_at_the_sixth(event: Event) -> None:
        if event.id == sent[5].id and not outage.is_set():
            outage.set()
            proxied.proxy.close()  # the batch's own connection is cut, and PostgreSQL refuses new ones
            threading.Timer(3.0, proxied.proxy.open).start()

    health = Health()
    handle = kit_handlers(proxied, during=cut_at_the_sixth)
    caplog.set_level("INFO", logger="shared.messaging.consumer")
    with running(consumer(amqp_url, spec, handle, gather=len(sent), health=health).run):
        wait_until(lambda: len(proxied.applied) == len(sent), timeout=60)
    assert outage.is_set()
    assert "a batch failed and was rolled back; handling its messages one by one" in caplog.text
    assert "dependency unavailable; retrying the message in place" in caplog.text
    assert sorted(proxied.applied) == sorted((e.subject, e.data["n"]) for e in sent)  # each once
    assert by_subject(proxied.applied) == by_subject([(e.subject, e.data["n"]) for e in sent])
    assert proxied.count(Outbox) == proxied.count(Inbox) == len(sent)
    assert counted(spec.name, "retried") == counted(spec.name, "parked") == 0  # no attempt spent
    assert counted(spec.name, "handled") == len(sent)
    assert health.ready
