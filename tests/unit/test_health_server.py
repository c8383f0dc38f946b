"""A worker's /healthz and /readyz (shared.health_server), and the API's /readyz with the loops inside it."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import shared.web
from shared import metrics
from shared.config import Settings
from shared.health import Health
from shared.health_server import HealthServer, health_address
from shared.messaging.worker import run_loops
from shared.web import create_api_app
from support.waiting import wait_until

pytestmark = pytest.mark.unit


def get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def server(health):
    server = HealthServer(port=0, health=health).start()
    yield server
    server.stop()


def test_healthz_answers_while_the_process_runs(server):
    assert get(server.port, "/healthz") == (200, {"status": "ok"})


def test_readyz_is_200_with_the_report_while_every_dependency_is_up(server):
    assert get(server.port, "/readyz") == (200, {"status": "ready", "down": {}})


def test_readyz_is_503_naming_each_dependency_down_and_why_until_it_is_back(server, health):
    health.down("database", "OperationalError")
    health.down("broker", "intake-consumer: amqp://referrals@rabbitmq:5672/%2F: ConnectionRefusedError")
    status, body = get(server.port, "/readyz")
    assert status == 503 and body["status"] == "not ready"
    assert set(body["down"]) == {"database", "broker"}
    assert body["down"]["database"]["reason"] == "OperationalError"
    health.up("database")
    health.up("broker")
    assert get(server.port, "/readyz")[0] == 200


def test_other_paths_are_not_found(server):
    assert get(server.port, "/metric?x=1") == (
        404,
        {"status": "not found", "paths": ["/healthz", "/readyz", "/metrics"]},
    )


def test_metrics_are_the_processes_in_prometheus_text_with_its_readiness_from_the_same_report(server, health):
    consumed = {"queue": "intake", "event_type": "referral.received", "outcome": "handled"}
    metrics.MESSAGES_CONSUMED.labels(**consumed).inc()
    status, content_type, text = scrape(server.port)
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert sample(text, "referrals_messages_consumed_total", **consumed) >= 1
    assert sample(text, "referrals_ready") == 1
    assert sample(text, "referrals_dependency_up", dependency="database") == 1
    assert sample(text, "referrals_dependency_up", dependency="broker") == 1

    health.down("broker", "intake-consumer: refused")
    health.down("intake", "unreachable (ConnectError)")
    text = scrape(server.port)[2]
    assert sample(text, "referrals_ready") == 0
    assert sample(text, "referrals_dependency_up", dependency="broker") == 0
    assert sample(text, "referrals_dependency_up", dependency="intake") == 0
    assert sample(text, "referrals_dependency_up", dependency="database") == 1
    # The reasons are for /readyz; a label is a dependency's name only. (Not `"refused" not in text`: a webhook
    # outcome is called that, and other tests' counters share this process's registry.)
    assert "intake-consumer" not in text and "ConnectError" not in text

    health.up("broker")
    health.up("intake")
    text = scrape(server.port)[2]
    assert sample(text, "referrals_ready") == 1
    assert sample(text, "referrals_dependency_up", dependency="intake") == 1  # its series stays, back at 1


def test_the_worker_serves_its_health_while_its_loops_run_and_stops_with_them():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = threading.Event()
    started = threading.Event()

    def loop(stop: threading.Event) -> None:
        started.set()
        stop.wait()

    worker = threading.Thread(target=run_loops, args=({"loop": loop}, stop), kwargs={"health_at": ("127.0.0.1", port)})
    worker.start()
    try:
        started.wait(5)
        assert wait_until(lambda: _answers(port), timeout=5) == 200
    finally:
        stop.set()
        worker.join(15)
    assert not worker.is_alive()
    assert _answers(port) is None  # the server stopped with the loops


def test_a_taken_port_stops_the_worker_with_a_reason(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_loops({"loop": lambda stop: stop.wait()}, health_at=("127.0.0.1", port)) == 1
    assert f"cannot serve /healthz and /readyz on 127.0.0.1:{port}" in caplog.text


def test_worker_port_and_host_come_from_the_settings():
    assert health_address(Settings.from_env("intake", {})) is None  # WORKER_PORT unset: no server
    assert health_address(Settings.from_env("intake", {"WORKER_PORT": "9101"})) == ("127.0.0.1", 9101)
    env = {"WORKER_PORT": "9101", "WORKER_HOST": "10.1.2.3"}
    assert health_address(Settings.from_env("intake", env)) == ("10.1.2.3", 9101)


def test_the_apis_readyz_names_what_the_loops_inside_it_find_down(monkeypatch, health):
    """WORKER_IN_API=true: the worker's loops report to the API process's health."""
    monkeypatch.setattr(shared.web, "HEALTH", health)
    database = {"ok": True}
    settings = Settings(service="intake", database_url="sqlite://", auth_jwks_url="https://idp.invalid/jwks")
    app, _ = create_api_app("t", settings, title="t", description="t", ready=lambda: database["ok"])
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    health.down("broker", "intake-consumer: refused")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["down"]["broker"]["reason"] == "intake-consumer: refused"
    assert response.json["reason"] == "broker unavailable"
    database["ok"] = False
    assert client.get("/readyz").json["reason"] == "database unreachable"
    assert set(client.get("/readyz").json["down"]) == {"broker", "database"}


def scrape(port: int) -> tuple[int, str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return None


def _answers(port: int) -> int | None:
    try:
        return get(port, "/healthz")[0]
    except OSError:
        return None
