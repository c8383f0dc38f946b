"""shared.metrics: what an API's /metrics answers, the labels it may carry, and gunicorn's multi-process sums."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pika
import pytest
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from shared import metrics
from shared.config import Settings
from shared.messaging.consumer import DUPLICATE, Consumer
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.messaging.topology import QueueSpec
from shared.web import create_api_app

pytestmark = pytest.mark.unit

SETTINGS = Settings(service="intake", database_url="sqlite://", auth_jwks_url="https://idp.invalid/jwks")


def make_app(ready=lambda: True):
    app, api = create_api_app("t", SETTINGS, title="t", description="t", ready=ready)

    @app.get("/v1/referrals/<referral_id>")
    def one(referral_id: str):
        return {"id": referral_id}

    return app, api


def samples(text: str, name: str) -> dict[tuple, float]:
    """{sorted label items: value} of every sample called `name` in a text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- the API's /metrics --------------------------------------------------------------------------------


def test_requests_are_counted_by_their_routes_rule_never_their_path():
    app, _ = make_app()
    client = app.test_client()
    referral_id = f"ref-{uuid.uuid4()}"
    assert client.get(f"/v1/referrals/{referral_id}").status_code == 200
    client.get(f"/no/such/{referral_id}")
    client.open("/healthz", method="BREW")  # a method no one serves is `other`, not a label of the sender's
    text = client.get("/metrics").text
    counts = samples(text, "http_server_request_duration_seconds_count")
    assert counts[(("method", "GET"), ("route", "/v1/referrals/<referral_id>"), ("status", "200"))] >= 1
    assert counts[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] >= 1
    assert counts[(("method", "other"), ("route", "unmatched"), ("status", "405"))] >= 1
    assert referral_id not in text
    assert "BREW" not in text
    assert "_created" not in text  # one series per count, not a second with its creation time


def test_metrics_is_open_like_healthz_not_cached_and_not_an_operation_of_the_api():
    app, api = make_app()
    response = app.test_client().get("/metrics")  # no Authorization header
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    assert response.headers["Cache-Control"] == "no-store"
    assert "/metrics" not in api.spec.to_dict()["paths"]


def test_ready_and_dependency_up_are_what_readyz_answers_at_the_scrape():
    database = {"ok": True}
    app, _ = make_app(ready=lambda: database["ok"])
    client = app.test_client()
    text = client.get("/metrics").text
    assert samples(text, metrics.READY) == {(): 1.0}
    assert samples(text, metrics.DEPENDENCY_UP) == {(("dependency", "database"),): 1.0}
    database["ok"] = False
    text = client.get("/metrics").text
    assert samples(text, metrics.READY) == {(): 0.0}
    assert samples(text, metrics.DEPENDENCY_UP) == {(("dependency", "database"),): 0.0}


def test_a_failing_figure_reader_is_skipped_logged_and_counted_and_the_others_still_answer(caplog):
    app, _ = make_app()

    def broken_figures():
        raise RuntimeError("the database is gone")
        yield  # a generator: it fails only when read

    def offers_figures():
        yield GaugeMetricFamily(metrics.OFFERS_OVERDUE, "Offers past their deadline.", 3)

    metrics.add_figures(app, broken_figures)
    metrics.add_figures(app, offers_figures)
    label = "test_a_failing_figure_reader_is_skipped_logged_and_counted_and_the_others_still_answer.broken_figures"
    before = value("referrals_figures_failed_total", figures=label)
    with caplog.at_level(logging.WARNING, logger="shared.metrics"):
        response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert samples(response.text, metrics.OFFERS_OVERDUE) == {(): 3.0}
    assert samples(response.text, metrics.READY) == {(): 1.0}
    assert samples(response.text, "referrals_figures_failed_total")[(("figures", label),)] == before + 1
    assert "a figure reader failed" in caplog.text
    assert "the database is gone" not in caplog.text  # the class only: a database error's text may quote values


# --- gunicorn's processes --------------------------------------------------------------------------------

_ONE_PROCESS = """
import sys
from shared import metrics
metrics.consumed("intake", "referral.received", "handled")
metrics.HTTP_REQUEST_DURATION.labels("/v1/referrals", "POST", "201").observe(0.02)
metrics.MESSAGES_PARKED.labels("intake").set(float(sys.argv[1]))
"""


def test_under_a_multiprocess_dir_metrics_answers_the_sum_over_the_processes(tmp_path):
    from prometheus_client import multiprocess

    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    pids = []
    for parked in ("3", "5"):
        done = subprocess.run([sys.executable, "-c", _ONE_PROCESS, parked], env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    pids = sorted(int(p.stem.rsplit("_", 1)[1]) for p in tmp_path.glob("counter_*.db"))
    assert len(pids) == 2

    text = metrics.exposition([], env=env).decode()
    consumed = samples(text, "referrals_messages_consumed_total")
    assert consumed == {(("event_type", "referral.received"), ("outcome", "handled"), ("queue", "intake")): 2.0}
    posts = samples(text, "http_server_request_duration_seconds_count")
    assert posts == {(("method", "POST"), ("route", "/v1/referrals"), ("status", "201")): 2.0}
    assert samples(text, "referrals_messages_parked") == {(("queue", "intake"),): 5.0}  # the last measured

    multiprocess.mark_process_dead(pids[1], path=str(tmp_path))  # gunicorn.conf.py's child_exit
    text = metrics.exposition([], env=env).decode()
    assert samples(text, "referrals_messages_parked") == {(("queue", "intake"),): 3.0}
    assert samples(text, "referrals_messages_consumed_total")  # a dead worker's counts stay in the sums


# --- what a consumer counts ------------------------------------------------------------------------------


class FakeChannel:
    is_open = True

    def __init__(self):
        self.calls: list[str] = []

    def basic_ack(self, delivery_tag):
        self.calls.append("ack")

    def basic_reject(self, delivery_tag, requeue):
        self.calls.append("reject")

    def basic_publish(self, exchange, routing_key, body, properties, mandatory=False):
        self.calls.append(f"publish {exchange}")


def deliver(consumer: Consumer, event_type: str, amqp_type: str | None = None) -> FakeChannel:
    event = Event(type=event_type, source="/test", subject="ref-1", data={})
    method = SimpleNamespace(delivery_tag=1, exchange="referrals", routing_key=event_type)
    properties = pika.BasicProperties(type=amqp_type or event_type, message_id=event.id, headers={})
    channel = FakeChannel()
    consumer._attempt(channel, (method, properties, event.to_json()))
    return channel


def consumed(queue: str, event_type: str, outcome: str) -> float:
    return value("referrals_messages_consumed_total", queue=queue, event_type=event_type, outcome=outcome)


def test_a_consumer_counts_each_message_by_its_outcome():
    def handle(event: Event):
        if event.data.get("fail"):
            raise RuntimeError("poison")
        return DUPLICATE if event.type == "thing.again" else None

    queue = f"unit.{uuid.uuid4().hex[:8]}"
    consumer = Consumer("amqp://guest:guest@127.0.0.1:1/%2F", QueueSpec(queue, ("#",)), handle,
                        event_types={"thing.happened", "thing.again"})  # fmt: skip
    assert deliver(consumer, "thing.happened").calls == ["ack"]
    assert deliver(consumer, "thing.again").calls == ["ack"]
    assert consumed(queue, "thing.happened", "handled") == 1
    assert consumed(queue, "thing.again", "duplicate") == 1

    failing = Consumer("amqp://guest:guest@127.0.0.1:1/%2F", QueueSpec(queue, ("#",)), lambda e: handle(
        Event(type=e.type, source=e.source, subject=e.subject, data={"fail": True})), max_attempts=3,
        event_types={"thing.happened"})  # fmt: skip
    assert deliver(failing, "thing.happened").calls == ["reject"]
    assert consumed(queue, "thing.happened", "retried") == 1
    assert deliver(failing, "thing.happened", amqp_type="thing.other").calls == ["publish referrals.parked", "ack"]
    assert consumed(queue, "thing.happened", "parked") == 1


def test_a_made_up_event_type_is_counted_as_unknown_never_as_a_label_of_its_own():
    def refuse(event: Event):
        raise PermanentError("its type is not an event type of the catalogue")

    queue = f"unit.{uuid.uuid4().hex[:8]}"
    consumer = Consumer("amqp://guest:guest@127.0.0.1:1/%2F", QueueSpec(queue, ("#",)), refuse,
                        event_types={"thing.happened"})  # fmt: skip
    forged = f"forged.{uuid.uuid4().hex}"
    deliver(consumer, forged)
    assert consumed(queue, "unknown", "parked") == 1
    assert forged not in metrics.exposition().decode()
    assert metrics.event_type_label(None, {"thing.happened"}) == "unknown"
    assert metrics.event_type_label("thing.happened", {"thing.happened"}) == "thing.happened"


def test_the_inbox_says_which_types_its_consumer_may_label():
    from shared.inbox import EventHandlers
    from shared.messaging.catalogue import Subscriptions
    from support.kit import KIT, ThingHappened

    handlers = EventHandlers("kit", lambda: None, Subscriptions(KIT, "kit").on(ThingHappened, lambda u, e: None),
                             trusted={"guest"})  # fmt: skip
    assert handlers.event_types == {entry.name for entry in KIT}
    assert Consumer("amqp://guest:guest@127.0.0.1:1/%2F", QueueSpec("kit", ("#",)), handlers)._event_types == {
        entry.name for entry in KIT
    }
