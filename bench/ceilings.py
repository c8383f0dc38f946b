"""What this machine can do at all, measured in the same run as the platform (absolute times drift on
shared machines; ratios to these drift less).

- broker hop: a persistent message published with a confirm to a quorum queue, until a consumer has it;
- confirmed publishing, waiting for each confirm, and with 100 confirms in flight (the kit's AsyncPublisher);
- a bare consumer: parse the event, insert-or-ignore an inbox row and an effect row in one PostgreSQL
  transaction, then ack;
- a batched bare consumer: the same for up to BATCH messages at once (what has been delivered), one
  multi-row inbox insert and one multi-row effect insert in one transaction, then an ack for each;
- a bare Flask stage: intake's validation and an insert with an outbox row (bench/stage_app.py) under the
  same gunicorn settings as intake.

Each also measures its CPU per message or request: the client thread (or the gunicorn processes), the
PostgreSQL backends serving its database, and (apart) the RabbitMQ node, so that the run can put the
platform's CPU per referral beside the floor of four bare transactions and their messages (bench.figures).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pika
from sqlalchemy import Column, MetaData, String, Table, create_engine, text
from sqlalchemy.engine import make_url

from bench.load import Poster, closed_loop
from bench.probe import CpuMeter, cpu_seconds, tree
from bench.stats import percentiles
from shared.messaging import CONTENT_TYPE, EXCHANGE
from shared.messaging.envelope import Event
from shared.messaging.publisher import AsyncPublisher
from support.processes import BIN, Platform, free_port

HOP_QUEUE = "bench.hop"
LOAD_QUEUE = "bench.load"
WINDOW_QUEUE = "bench.window"  # filled by publish_in_flight; the batched consumer reads it
BATCH = 50  # the most messages the batched consumer handles in one transaction
POSTGRES, RABBITMQ = "postgres (platform databases)", "rabbitmq (whole node)"  # CpuMeter's names


class CpuWatch:
    """CPU used between start() and stop() by the calling thread (pika's blocking and asynchronous clients
    do their I/O in it; `this_thread=False` leaves it out), by given processes with their children, by the
    PostgreSQL backends serving `database_url`, and by the RabbitMQ node."""

    def __init__(
        self,
        database_url: str | None = None,
        pg_admin_url: str = "",
        pids: tuple[int, ...] = (),
        *,
        this_thread: bool = True,
    ):
        databases = [make_url(database_url).database or ""] if database_url else []
        self._meter = CpuMeter({}, databases, pg_admin_url)
        self._pids = pids
        self._this_thread = this_thread
        self._start: tuple[float, float, dict[str, float]] = (0.0, 0.0, {})

    def _own(self) -> tuple[float, float]:
        processes = sum(cpu_seconds(tree(pid)) for pid in self._pids)
        return (time.thread_time() if self._this_thread else 0.0), processes

    def start(self) -> None:
        meter = self._meter.read()  # before this thread's clock starts: reading it costs the thread CPU
        self._start = (*self._own(), meter)

    def stop(self, count: float) -> dict[str, float]:
        """CPU ms per message (or request) over `count`: this side (thread + processes) with PostgreSQL,
        and RabbitMQ's apart."""
        thread, processes = self._own()
        meter = self._meter.read()
        own = thread - self._start[0] + processes - self._start[1]
        postgres = meter[POSTGRES] - self._start[2][POSTGRES]
        rabbitmq = meter[RABBITMQ] - self._start[2][RABBITMQ]
        n = max(1, count)
        return {
            "cpu_ms_per_msg": round(1000 * (own + postgres) / n, 3),
            "postgres_cpu_ms_per_msg": round(1000 * postgres / n, 3),
            "rabbitmq_cpu_ms_per_msg": round(1000 * rabbitmq / n, 3),
        }


def _declare(channel, queue: str, key: str) -> None:
    channel.exchange_declare(EXCHANGE, "topic", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue, EXCHANGE, routing_key=key)


def _message(key: str) -> tuple[bytes, pika.BasicProperties]:
    event = Event(type=key, source="/bench", subject=str(uuid.uuid4()), data={"referral_id": "r", "n": 1})
    props = pika.BasicProperties(message_id=event.id, type=key, delivery_mode=2, content_type=CONTENT_TYPE)
    return event.to_json(), props


def broker_hop(amqp_url: str, count: int = 200) -> dict:
    """Confirmed publish -> a consumer has it, one message at a time."""
    arrived: dict[str, float] = {}
    ready, done = threading.Event(), threading.Event()
    stop = threading.Event()

    def consume() -> None:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        _declare(channel, HOP_QUEUE, "bench.hop")

        def on_message(ch, method, properties, _body):
            arrived[properties.message_id] = time.monotonic()
            ch.basic_ack(method.delivery_tag)
            done.set()

        channel.basic_consume(HOP_QUEUE, on_message)
        ready.set()
        while not stop.is_set():
            connection.process_data_events(time_limit=0.05)
        connection.close()

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    ready.wait(10)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    hops = []
    for _ in range(count):
        body, props = _message("bench.hop")
        done.clear()
        started = time.monotonic()
        channel.basic_publish(EXCHANGE, "bench.hop", body, props, mandatory=True)
        done.wait(5)
        if props.message_id in arrived:
            hops.append((arrived[props.message_id] - started) * 1000)
    stop.set()
    consumer.join(5)
    connection.close()
    return {"count": len(hops), **percentiles(hops)}


def publish_waiting_each(amqp_url: str, count: int = 1000) -> dict:
    """Confirmed publishes, each waiting for its confirm (what pika's BlockingChannel does). They stay in
    LOAD_QUEUE for the bare consumer below."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    _declare(channel, LOAD_QUEUE, "bench.load")
    channel.confirm_delivery()
    started = time.monotonic()
    for _ in range(count):
        body, props = _message("bench.load")
        channel.basic_publish(EXCHANGE, "bench.load", body, props, mandatory=True)
    elapsed = time.monotonic() - started
    connection.close()
    return {"count": count, "msg_per_s": round(count / elapsed)}


def publish_in_flight(amqp_url: str, count: int = 5000, window: int = 100) -> dict:
    """Confirmed publishes with up to `window` confirms outstanding, through the kit's AsyncPublisher. They
    stay in WINDOW_QUEUE for the batched consumer below."""
    sent = {"published": 0, "settled": 0, "started": 0.0, "ended": 0.0}
    cpu = CpuWatch()
    spent: dict[str, float] = {}
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    _declare(connection.channel(), WINDOW_QUEUE, WINDOW_QUEUE)
    connection.close()

    def top_up(publisher: AsyncPublisher) -> None:
        while publisher.in_flight < window and sent["published"] < count:
            body, props = _message(WINDOW_QUEUE)
            publisher.publish(WINDOW_QUEUE, body, props, sent["published"])
            sent["published"] += 1

    def on_ready(publisher: AsyncPublisher) -> None:
        sent["started"] = time.monotonic()
        cpu.start()
        top_up(publisher)

    def on_settled(settled) -> None:
        sent["settled"] += len(settled)
        if sent["settled"] >= count:
            sent["ended"] = time.monotonic()
            spent.update(cpu.stop(sent["settled"]))
            publisher.close()
        else:
            top_up(publisher)

    publisher = AsyncPublisher(amqp_url, "bench-window", on_ready=on_ready, on_settled=on_settled)
    publisher.run()  # its I/O loop runs in this thread, which CpuWatch measures
    elapsed = (sent["ended"] or time.monotonic()) - sent["started"]
    return {"count": sent["settled"], "window": window, "msg_per_s": round(sent["settled"] / elapsed), **spent}


def _effect_tables(engine, inbox: str, effects: str) -> None:
    """An inbox table (message ids) and an effects table (one row per new message)."""
    metadata = MetaData()
    Table(inbox, metadata, Column("message_id", String(64), primary_key=True))
    Table(effects, metadata, Column("id", String(64), primary_key=True), Column("subject", String(64)))
    metadata.create_all(engine)


def bare_consumer(amqp_url: str, database_url: str, count: int, pg_admin_url: str) -> dict:
    """Consume LOAD_QUEUE: parse, one transaction (inbox row + effect row), commit, ack. Its statements are
    text built once, as the kit's inbox insert is (shared.db.insert_or_ignore)."""
    engine = create_engine(database_url)
    _effect_tables(engine, "inbox", "effects")
    new_message = text("INSERT INTO inbox (message_id) VALUES (:id) ON CONFLICT DO NOTHING RETURNING message_id")
    effect = text("INSERT INTO effects (id, subject) VALUES (:id, :subject)")
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=20)
    handled = {"n": 0, "started": 0.0}
    cpu = CpuWatch(database_url, pg_admin_url)

    def on_message(ch, method, _properties, body):
        if handled["n"] == 0:
            handled["started"] = time.monotonic()
        event = Event.from_json(body)
        with engine.begin() as db:
            if db.execute(new_message, {"id": event.id}).first():
                db.execute(effect, {"id": event.id, "subject": event.subject})
        ch.basic_ack(method.delivery_tag)
        handled["n"] += 1

    with engine.connect():  # the pool's connection, and so its backend, exists before the CPU is read
        pass
    cpu.start()
    channel.basic_consume(LOAD_QUEUE, on_message)
    deadline = time.monotonic() + 60
    while handled["n"] < count and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.2)
    elapsed = time.monotonic() - handled["started"]
    spent = cpu.stop(handled["n"])
    connection.close()
    engine.dispose()
    return {"count": handled["n"], "msg_per_s": round(max(handled["n"] - 1, 1) / elapsed), **spent}


def batched_consumer(amqp_url: str, database_url: str, count: int, pg_admin_url: str, batch: int = BATCH) -> dict:
    """Consume WINDOW_QUEUE in batches: take what has been delivered (up to `batch`), parse each, one
    transaction with one multi-row inbox insert (insert-or-ignore) and one multi-row effect insert for the
    new ones, commit, then ack each message. Each insert is one statement over arrays (unnest), so its text
    is the same for every batch size."""
    engine = create_engine(database_url)
    _effect_tables(engine, "inbox_batched", "effects_batched")
    new_messages = text(
        "INSERT INTO inbox_batched (message_id) SELECT unnest(CAST(:ids AS varchar[])) "
        "ON CONFLICT DO NOTHING RETURNING message_id"
    )
    effect_rows = text(
        "INSERT INTO effects_batched (id, subject) "
        "SELECT * FROM unnest(CAST(:ids AS varchar[]), CAST(:subjects AS varchar[]))"
    )
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=2 * batch)  # a batch handled while the next is delivered
    delivered: list[tuple[int, bytes]] = []
    handled = {"n": 0, "batches": 0, "started": 0.0}
    cpu = CpuWatch(database_url, pg_admin_url)

    def on_message(_ch, method, _properties, body):
        if not handled["started"]:
            handled["started"] = time.monotonic()
        delivered.append((method.delivery_tag, body))

    def handle(taken: list[tuple[int, bytes]]) -> None:
        events = [Event.from_json(body) for _, body in taken]
        with engine.begin() as db:
            new = {row[0] for row in db.execute(new_messages, {"ids": [e.id for e in events]})}
            fresh = [e for e in events if e.id in new]
            if fresh:
                db.execute(effect_rows, {"ids": [e.id for e in fresh], "subjects": [e.subject for e in fresh]})
        for tag, _ in taken:
            channel.basic_ack(tag)
        handled["n"] += len(taken)
        handled["batches"] += 1

    with engine.connect():
        pass
    cpu.start()
    channel.basic_consume(WINDOW_QUEUE, on_message)
    deadline = time.monotonic() + 60
    while handled["n"] < count and time.monotonic() < deadline:
        before = len(delivered)
        connection.process_data_events(time_limit=0 if delivered else 0.2)
        # A full batch, or nothing more arrived since the last look: handle what has been delivered.
        if len(delivered) >= batch or (delivered and len(delivered) == before):
            taken, delivered[:] = delivered[:batch], delivered[batch:]
            handle(taken)
    elapsed = time.monotonic() - handled["started"]
    spent = cpu.stop(handled["n"])
    connection.close()
    engine.dispose()
    return {
        "count": handled["n"],
        "batch": batch,
        "mean_batch": round(handled["n"] / max(1, handled["batches"]), 1),
        "msg_per_s": round(handled["n"] / elapsed) if elapsed > 0 else 0,
        **spent,
    }


def flask_stage(
    workdir: Path,
    database_url: str,
    bodies: list[bytes],
    *,
    workers: int,
    clients: int,
    on_start: Callable[[], None],
    pg_admin_url: str = "",
) -> dict:
    """The bare validate-and-insert stage under gunicorn (sync workers), driven by `clients` closed loops;
    its CPU per request is gunicorn's processes and the PostgreSQL backends of its database (`pg_admin_url`
    lists them), not the clients'."""
    from bench.stage_app import create_schema

    create_schema(database_url)
    platform = Platform(workdir, {"BENCH_STAGE_DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
            "--access-logfile", "/dev/null", "bench.stage_app:create_app()"]  # fmt: skip
    try:
        stage = platform.start("flask-stage", argv, {"WEB_CONCURRENCY": str(workers)})
        poster = Poster(f"http://127.0.0.1:{port}", {})
        _wait_listening(platform, poster)
        on_start()
        closed_loop(poster, bodies[:200], clients=clients)  # warm-up: imports, connection pool
        cpu = CpuWatch(database_url, pg_admin_url, pids=(stage.popen.pid,), this_thread=False)
        cpu.start()
        started = time.monotonic()
        results = closed_loop(poster, bodies[200:], clients=clients)
        elapsed = time.monotonic() - started
        spent = cpu.stop(sum(1 for r in results if r.ok))
    finally:
        platform.stop()
    ok = sum(1 for r in results if r.ok)
    latencies = [(r.answered - r.due) * 1000 for r in results if r.ok]
    per_request = {k.replace("_per_msg", "_per_req"): v for k, v in spent.items()}
    return {"count": ok, "errors": len(results) - ok, "workers": workers, "clients": clients,
            "req_per_s": round(ok / elapsed), **percentiles(latencies), **per_request}  # fmt: skip


def _wait_listening(platform: Platform, poster: Poster, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    url = f"{poster.base_url}/readyz"
    while time.monotonic() < deadline:
        platform.check_alive()
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("the Flask stage did not start")
