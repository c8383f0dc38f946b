"""The platform started as a deployment would start it, for the benchmark.

Gunicorn sync workers from deploy/gunicorn.conf.py (WEB_CONCURRENCY each), one worker process per service
except where the worker's loops run inside the API (WORKER_IN_API: the charity's instance, by default),
throw-away PostgreSQL databases, a private RabbitMQ vhost, tracing on (batch span processor exporting OTLP
over HTTP to a sink started here), one agency with a webhook receiver, and the demo provider with AUTO_ACCEPT
and enough advocate capacity. Everything listens on 127.0.0.1 and every process started is stopped by PID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pika
import requests

from services.migrate import migrate
from shared.auth.tokens import ensure_dev_keys, mint_token
from support.apps import UNLIMITED
from support.infra import private_vhost, temporary_databases
from support.processes import BIN, Platform, Process, free_port
from support.receivers import LocalServer

PROVIDER = "demo-charity"
AGENCY = ("met-police", "police", "referrals:write referrals:read subscriptions:write")
MAX_CASELOAD = 100  # the most advocacy accepts for one advocate
LANGUAGES = (["en", "sq"], ["en", "ro"])
QUEUES = ("intake", f"advocacy.{PROVIDER}", "notifications")
PARTITIONED = ("intake", "notifications")  # with AMQP_PARTITIONS; a charity's instance keeps one queue
# Settings of issue 17 that a run may set before the build it measures reads them (bench.run warns).
ISSUE_17_SETTINGS = ("AMQP_BATCH_SIZE", "AMQP_PARTITIONS")


def queues_of(partitions: int) -> dict[str, tuple[str, ...]]:
    """Each queue of QUEUES -> the broker queues that make it: itself, or with `partitions` above 1 the
    partitions of intake's and notifications' (`<queue>.p<i>`, shared.messaging.topology)."""
    if partitions <= 1:
        return {q: (q,) for q in QUEUES}
    from shared.messaging.topology import partition_names  # only in a build with partitions (issue 17)

    return {q: partition_names(q, partitions) if q in PARTITIONED else (q,) for q in QUEUES}


def unread_settings(settings: dict[str, str]) -> list[str]:
    """Which of these issue-17 settings this build's shared.config.Settings does not read (set, they have no
    effect: a bench run on an earlier commit, for a before/after pair)."""
    from shared.config import ConfigError, Settings

    base = {"INTAKE_DATABASE_URL": "sqlite://"}

    def read(env: dict[str, str]) -> dict:
        found = Settings.from_env("intake", env)
        return {f.name: getattr(found, f.name) for f in dataclasses.fields(found) if f.name != "env"}

    unread = []
    for name in ISSUE_17_SETTINGS:
        if name not in settings:
            continue
        try:
            if read(base) == read({**base, name: settings[name]}):
                unread.append(name)
        except ConfigError:
            pass  # read, and refused: the services will say why when they start
    return unread


def partitions_unavailable(broker_url: str) -> str | None:
    """Why intake's and notifications' workers cannot run partitioned here, or None: this build's settings
    have no AMQP_PARTITIONS yet, or the broker has no consistent-hash exchange type (its plugin is off)."""
    if unread_settings({"AMQP_PARTITIONS": "2"}):
        return "this build's shared.config.Settings does not read AMQP_PARTITIONS (partitions are not in it)"
    with private_vhost(broker_url) as amqp_url:
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            connection.channel().exchange_declare("bench.hash-check", "x-consistent-hash", auto_delete=True)
        except pika.exceptions.ConnectionClosedByBroker as exc:
            return (
                f"RabbitMQ refused an x-consistent-hash exchange ({exc.reply_code} {exc.reply_text}). "
                "Fix: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange (online, no restart)"
            )
        finally:
            if connection.is_open:
                connection.close()
    return None


class LocalSetup(NamedTuple):
    broker: str
    database: str
    work: Path
    keys: tuple[Path, Path]
    token: Callable[..., str]


def local_setup(prefix: str) -> LocalSetup:
    """What every benchmark starts from: the broker and PostgreSQL the tests use (TEST_AMQP_URL,
    TEST_DATABASE_URL), a work directory, dev keys in it, and a minter of dev tokens signed with them."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    keys = ensure_dev_keys(work / "keys")[:2]
    private = keys[0].read_text()

    def token(org: str, kind: str, scopes: str) -> str:
        return mint_token(private, org=org, org_kind=kind, scopes=scopes.split(), issuer="referrals-dev",
                          audience="referrals")  # fmt: skip

    return LocalSetup(
        os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        work,
        keys,
        token,
    )


class WebhookClock(LocalServer):
    """The agency's endpoint: notes when each referral's `referral.allocated` webhook arrived."""

    def __init__(self):
        self.arrived: dict[str, float] = {}
        super().__init__(self._on_post, keep_alive=True)

    @staticmethod
    def _on_post(owner: WebhookClock, path, headers, body: bytes) -> tuple[int, bytes]:
        at = time.monotonic()
        referral_id = json.loads(body)["data"]["referral_id"]
        with owner.changed:
            owner.arrived.setdefault(referral_id, at)
            owner.changed.notify_all()
        return 200, b""

    def arrival(self, referral_id: str) -> float | None:
        return self.arrived.get(referral_id)

    def wait_for_arrival(self, referral_id: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while referral_id not in self.arrived:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.changed.wait(remaining)
            return self.arrived[referral_id]

    def count(self) -> int:
        return len(self.arrived)


class NullCollector(LocalServer):
    """Stands in for the OpenTelemetry collector: accepts OTLP/HTTP exports and only counts their bytes, so
    that parsing spans costs the benchmark nothing (an empty body is a valid empty export response)."""

    def __init__(self):
        self.exports = 0
        self.bytes = 0
        super().__init__(self._on_post, keep_alive=True)

    @staticmethod
    def _on_post(owner: NullCollector, path, headers, body: bytes) -> tuple[int, bytes]:
        with owner.changed:
            owner.exports += 1
            owner.bytes += len(body)
        return 200, b""


@dataclass
class Deployment:
    platform: Platform
    amqp_url: str
    database_urls: dict[str, str]
    urls: dict[str, str]
    webhooks: WebhookClock
    collector: NullCollector
    processes: dict[str, Process] = field(default_factory=dict)
    advocates: int = 0
    queues: dict[str, tuple[str, ...]] = field(default_factory=lambda: queues_of(1))


@contextlib.contextmanager
def deployed(
    broker_url: str,
    pg_admin_url: str,
    keys: tuple[Path, Path],
    token,
    workdir: Path,
    *,
    web_concurrency: dict[str, int],
    referrals: int,
    extra_env: dict[str, str] | None = None,
    worker_in_api: tuple[str, ...] = ("advocacy",),
    workers_per_service: int = 1,
) -> Iterator[Deployment]:
    """`workers_per_service` above 1: intake's and notifications' workers started that many times each, with
    AMQP_PARTITIONS set to it and each its WORKER_INDEX of WORKER_COUNT (a build with partitions only)."""
    with (
        private_vhost(broker_url) as amqp_url,
        temporary_databases(pg_admin_url) as new_database,
        WebhookClock() as webhooks,
        NullCollector() as collector,
    ):
        databases = {svc: new_database(svc) for svc in ("intake", "advocacy", "notifications")}
        for service, url in databases.items():
            migrate(service, url)
        env = {
            "AMQP_URL": amqp_url,
            "INTAKE_DATABASE_URL": databases["intake"],
            "ADVOCACY_DATABASE_URL": databases["advocacy"],
            "NOTIFICATIONS_DATABASE_URL": databases["notifications"],
            "AUTH_PUBLIC_KEY_FILE": str(keys[1]),
            "AUTH_PRIVATE_KEY_FILE": str(keys[0]),
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "LOG_LEVEL": "WARNING",  # the access log and per-event INFO lines would measure the log file
            **UNLIMITED,  # one organisation and token send every referral of the run
            **(extra_env or {}),
        }
        platform = Platform(workdir, env)
        deployment = Deployment(platform, amqp_url, databases, {}, webhooks, collector)
        deployment.queues = queues_of(workers_per_service)
        try:
            ports = {svc: free_port() for svc in ("intake", "advocacy", "notifications")}
            intake_url = f"http://127.0.0.1:{ports['intake']}"
            advocacy_env = {"PROVIDER_ID": PROVIDER, "AUTO_ACCEPT": "true", "INTAKE_URL": intake_url}
            partitioned = {"AMQP_PARTITIONS": str(workers_per_service)} if workers_per_service > 1 else {}
            extra = {"intake": partitioned, "advocacy": advocacy_env, "notifications": partitioned}
            for service, port in ports.items():
                argv = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                        f"services.{service}.app:create_app()"]  # fmt: skip
                run_env = {**extra[service], "WEB_CONCURRENCY": str(web_concurrency[service])}
                if service in worker_in_api:
                    run_env["WORKER_IN_API"] = "true"
                deployment.processes[f"{service}-api"] = platform.start(f"{service}-api", argv, run_env)
                deployment.urls[service] = f"http://127.0.0.1:{port}"
            for service in ports:
                if service in worker_in_api:
                    continue
                count = workers_per_service if service in PARTITIONED else 1
                for index in range(count):
                    name, env = f"{service}-worker", dict(extra[service])
                    if count > 1:
                        name += f"-{index}"
                        env |= {"WORKER_INDEX": str(index), "WORKER_COUNT": str(count)}
                    deployment.processes[name] = platform.start_worker(service, env, name=name)
            for service in ports:
                _wait_ready(platform, deployment.urls[service])
            every_queue = [q for queues in deployment.queues.values() for q in queues]
            platform.wait_for_consumers(amqp_url, every_queue, timeout=60)
            _register_demo_provider(deployment, token, referrals)
            _subscribe_agency(deployment, token)
            yield deployment
        finally:
            platform.stop()


def _wait_ready(platform: Platform, url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        platform.check_alive()
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def _headers(token, org: str, kind: str, scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(org, kind, scopes)}"}


def _register_demo_provider(deployment: Deployment, token, referrals: int) -> None:
    """The demo charity, with enough advocates (at most MAX_CASELOAD cases each) to take every referral."""
    provider = {
        "name": "Demo Charity (synthetic)",
        "regions": ["london", "north_west"],
        "languages": ["en", "sq", "ro"],
        "serves": ["adult", "child"],
        "accepting": True,
        "capacity": min(100_000, 2 * referrals),
    }
    admin = _headers(token, "platform", "coordinator", "providers:admin")
    response = requests.put(
        f"{deployment.urls['intake']}/v1/providers/{PROVIDER}", json=provider, headers=admin, timeout=10
    )
    response.raise_for_status()
    charity = _headers(token, PROVIDER, "provider", "cases:write cases:read")
    with requests.Session() as http:
        for i in range(referrals // MAX_CASELOAD + 2):
            body = {"name": f"Advocate {i:03d} Bench", "email": f"advocate-{i:03d}@demo-charity.example",
                    "languages": LANGUAGES[i % len(LANGUAGES)], "max_caseload": MAX_CASELOAD}  # fmt: skip
            url = f"{deployment.urls['advocacy']}/v1/advocates"
            http.post(url, json=body, headers=charity, timeout=10).raise_for_status()
    deployment.advocates = referrals // MAX_CASELOAD + 2


def _subscribe_agency(deployment: Deployment, token) -> None:
    hook = {"url": f"{deployment.webhooks.url}/hooks", "events": ["referral.allocated"]}
    url = f"{deployment.urls['notifications']}/v1/subscriptions"
    requests.post(url, json=hook, headers=_headers(token, *AGENCY), timeout=10).raise_for_status()
