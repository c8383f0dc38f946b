"""The whole platform as processes on a private vhost and throw-away PostgreSQL databases, with an agency's
webhook receiver and an OTLP sink standing in for the collector. Used by the e2e tests and the benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from services.migrate import migrate
from support.apps import UNLIMITED
from support.infra import private_vhost, temporary_databases
from support.processes import Platform
from support.receivers import OtlpSink, WebhookReceiver

PROVIDER = "demo-charity"
ADVOCATES = [
    {"name": "Advocate Kalo Demo", "email": "kalo@demo-charity.example", "languages": ["en", "sq"]},
    {"name": "Advocate Rune Demo", "email": "rune@demo-charity.example", "languages": ["en", "ro"]},
]


@dataclass
class Charity:
    """One charity's advocacy instance: its directory entry in intake and its advocates."""

    id: str = PROVIDER
    auto_accept: bool = True
    regions: tuple[str, ...] = ("london", "north_west")
    serves: tuple[str, ...] = ("adult", "child")
    languages: tuple[str, ...] = ("en", "sq", "ro")
    advocates: tuple[dict, ...] = tuple(ADVOCATES)
    max_caseload: int = 40
    worker_in_api: bool = False  # WORKER_IN_API=true: the worker's loops inside the API's one gunicorn worker


@dataclass
class Stack:
    platform: Platform
    amqp_url: str
    webhooks: WebhookReceiver
    sink: OtlpSink
    token: Callable[..., str]
    databases: dict[str, str]  # each service's (and each charity's) database URL

    def url(self, name: str) -> str:
        return self.platform.urls[name]

    def headers(self, org: str, kind: str, scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org, kind, scopes)}"}

    def subscribe(self, org: str, scopes: str, hook: str, events: list[str]) -> dict:
        """A police force's webhook subscription on notifications, to this stack's receiver at `/hooks/<hook>`."""
        response = requests.post(
            f"{self.url('notifications')}/v1/subscriptions",
            json={"url": f"{self.webhooks.url}/hooks/{hook}", "events": events},
            headers=self.headers(org, "police", scopes),
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return response.json()


@contextlib.contextmanager
def platform_stack(
    broker_url: str,
    pg_admin_url: str,
    keys: tuple[Path, Path],
    token: Callable[..., str],
    workdir: Path,
    *,
    advocate_capacity: int = 40,
    extra_env: dict[str, str] | None = None,
    charities: tuple[Charity, ...] | None = None,
    sqlite: bool = False,
) -> Iterator[Stack]:
    """`sqlite`: each service on a SQLite file in `workdir` (`<name>.db`, as `make run` keeps them), not PostgreSQL."""
    charities = charities or (Charity(max_caseload=advocate_capacity),)
    with (
        private_vhost(broker_url) as amqp_url,
        temporary_databases(pg_admin_url) as new_database,
        WebhookReceiver() as webhooks,
        OtlpSink() as sink,
    ):
        database = (lambda name, _: f"sqlite:///{workdir / name}.db") if sqlite else (lambda _, svc: new_database(svc))
        urls = {svc: database(svc, svc) for svc in ("intake", "notifications")}
        urls |= {c.id: database(f"advocacy-{c.id}", "advocacy") for c in charities}
        for name, url in urls.items():
            migrate(name if name in ("intake", "notifications") else "advocacy", url)
        env = {
            "AMQP_URL": amqp_url,
            "INTAKE_DATABASE_URL": urls["intake"],
            "NOTIFICATIONS_DATABASE_URL": urls["notifications"],
            "AUTH_PUBLIC_KEY_FILE": str(keys[1]),
            "AUTH_PRIVATE_KEY_FILE": str(keys[0]),
            "AMQP_RETRY_DELAY_MS": "200",
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # tests read the spans soon after the fact
            "LOG_LEVEL": "INFO",
            **UNLIMITED,  # one organisation and token send every referral of the run
            **(extra_env or {}),
        }
        platform = Platform(workdir, env)
        try:
            intake_url = platform.start_api("intake", {})
            platform.start_api("notifications", {})
            platform.start_worker("intake", {})
            platform.start_worker("notifications", {})
            for charity in charities:
                advocacy_env = {
                    "PROVIDER_ID": charity.id,
                    "AUTO_ACCEPT": str(charity.auto_accept).lower(),
                    "INTAKE_URL": intake_url,
                    "ADVOCACY_DATABASE_URL": urls[charity.id],
                }
                # The first instance is also known as plain "advocacy", as the single-charity tests expect.
                first = charity is charities[0]
                if charity.worker_in_api:
                    advocacy_env |= {"WORKER_IN_API": "true", "WEB_CONCURRENCY": "1"}
                platform.start_api("advocacy", advocacy_env, name=None if first else charity.id)
                platform.urls[charity.id] = platform.urls["advocacy" if first else charity.id]
                if not charity.worker_in_api:
                    platform.start_worker("advocacy", advocacy_env, name=None if first else f"{charity.id}-worker")
            queues = ["intake", "notifications", *(f"advocacy.{c.id}" for c in charities)]
            platform.wait_for_consumers(amqp_url, queues)
            stack = Stack(platform, amqp_url, webhooks, sink, token, urls)
            for charity in charities:
                _register(stack, charity)
            yield stack
        finally:
            platform.stop()


def _register(stack: Stack, charity: Charity) -> None:
    provider = {
        "name": f"{charity.id} (synthetic)",
        "regions": list(charity.regions),
        "languages": list(charity.languages),
        "serves": list(charity.serves),
        "accepting": True,
        "capacity": len(charity.advocates) * charity.max_caseload,
    }
    admin = stack.headers("platform", "coordinator", "providers:admin")
    response = requests.put(
        f"{stack.url('intake')}/v1/providers/{charity.id}", json=provider, headers=admin, timeout=10
    )
    assert response.status_code in (200, 201), response.text
    staff = stack.headers(charity.id, "provider", "cases:write cases:read")
    for advocate in charity.advocates:
        body = {
            **advocate,
            "email": advocate["email"].replace("demo-charity", charity.id),
            "max_caseload": charity.max_caseload,
        }
        response = requests.post(f"{stack.url(charity.id)}/v1/advocates", json=body, headers=staff, timeout=10)
        assert response.status_code == 201, response.text
