"""What this machine can do at all, measured in the same run as the platform (absolute times drift on
shared machines; ratios to these drift less).

- broker hop: a persistent message published with a confirm to a quorum queue, until a consumer has it;
- confirmed publishing, waiting for each confirm, and with 100 confirms in flight (the kit's AsyncPublisher);
- a bare consumer: parse the event, insert-or-ignore an inbox row and an effect row in one PostgreSQL
  transaction, then ack;
- a bare Flask stage: intake's validation and an insert with an outbox row (bench/stage_app.py) under the
  same gunicorn settings as intake.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pika
from sqlalchemy import Column, MetaData, String, Table, create_engine
from sqlalchemy.dialects import postgresql

from bench.load import Poster, closed_loop
from bench.stats import percentiles
from shared.messaging import CONTENT_TYPE, EXCHANGE
from shared.messaging.envelope import Event
from shared.messaging.publisher import AsyncPublisher
from support.processes import BIN, Platform, free_port

HOP_QUEUE = "bench.hop"
LOAD_QUEUE = "bench.load"


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
    """Confirmed publishes with up to `window` confirms outstanding, through the kit's AsyncPublisher."""
    sent = {"published": 0, "settled": 0, "started": 0.0, "ended": 0.0}
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    _declare(connection.channel(), "bench.window", "bench.window")
    connection.close()

    def top_up(publisher: AsyncPublisher) -> None:
        while publisher.in_flight < window and sent["published"] < count:
            body, props = _message("bench.window")
            publisher.publish("bench.window", body, props, sent["published"])
            sent["published"] += 1

    def on_ready(publisher: AsyncPublisher) -> None:
        sent["started"] = time.monotonic()
        top_up(publisher)

    def on_settled(settled) -> None:
        sent["settled"] += len(settled)
        if sent["settled"] >= count:
            sent["ended"] = time.monotonic()
            publisher.close()
        else:
            top_up(publisher)

    publisher = AsyncPublisher(amqp_url, "bench-window", on_ready=on_ready, on_settled=on_settled)
    publisher.run()
    elapsed = (sent["ended"] or time.monotonic()) - sent["started"]
    return {"count": sent["settled"], "window": window, "msg_per_s": round(sent["settled"] / elapsed)}


def bare_consumer(amqp_url: str, database_url: str, count: int) -> dict:
    """Consume LOAD_QUEUE: parse, one transaction (inbox row + effect row), commit, ack."""
    metadata = MetaData()
    inbox = Table("inbox", metadata, Column("message_id", String(64), primary_key=True))
    effects = Table("effects", metadata, Column("id", String(64), primary_key=True), Column("subject", String(64)))
    engine = create_engine(database_url)
    metadata.create_all(engine)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=20)
    handled = {"n": 0, "started": 0.0}

    def on_message(ch, method, _properties, body):
        if handled["n"] == 0:
            handled["started"] = time.monotonic()
        event = Event.from_json(body)
        with engine.begin() as db:
            new = db.execute(
                postgresql.insert(inbox)
                .values(message_id=event.id)
                .on_conflict_do_nothing()
                .returning(inbox.c.message_id)
            ).first()
            if new:
                db.execute(effects.insert().values(id=event.id, subject=event.subject))
        ch.basic_ack(method.delivery_tag)
        handled["n"] += 1

    channel.basic_consume(LOAD_QUEUE, on_message)
    deadline = time.monotonic() + 60
    while handled["n"] < count and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.2)
    elapsed = time.monotonic() - handled["started"]
    connection.close()
    engine.dispose()
    return {"count": handled["n"], "msg_per_s": round(max(handled["n"] - 1, 1) / elapsed)}


def flask_stage(
    workdir: Path, database_url: str, bodies: list[bytes], *, workers: int, clients: int, on_start: Callable[[], None]
) -> dict:
    """The bare validate-and-insert stage under gunicorn (sync workers), driven by `clients` closed loops."""
    from bench.stage_app import create_schema

    create_schema(database_url)
    platform = Platform(workdir, {"BENCH_STAGE_DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
            "--access-logfile", "/dev/null", "bench.stage_app:create_app()"]  # fmt: skip
    try:
        platform.start("flask-stage", argv, {"WEB_CONCURRENCY": str(workers)})
        poster = Poster(f"http://127.0.0.1:{port}", {})
        _wait_listening(platform, poster)
        on_start()
        closed_loop(poster, bodies[:200], clients=clients)  # warm-up: imports, connection pool
        started = time.monotonic()
        results = closed_loop(poster, bodies[200:], clients=clients)
        elapsed = time.monotonic() - started
    finally:
        platform.stop()
    ok = sum(1 for r in results if r.ok)
    latencies = [(r.answered - r.due) * 1000 for r in results if r.ok]
    return {"count": ok, "errors": len(results) - ok, "workers": workers, "clients": clients,
            "req_per_s": round(ok / elapsed), **percentiles(latencies)}  # fmt: skip


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
