"""The whole platform as processes on a private vhost and throw-away PostgreSQL databases, with an agency's
webhook receiver and an OTLP sink standing in for the collector. Used by the e2e tests and the benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from shared.db import migrate
from support.infra import private_vhost, temporary_databases
from support.processes import Platform
from support.receivers import OtlpSink, WebhookReceiver

PROVIDER = "demo-charity"
ADVOCATES = [
    {"name": "Advocate Kalo Demo", "email": "kalo@demo-charity.example", "languages": ["en", "sq"]},
    {"name": "Advocate Rune Demo", "email": "rune@demo-charity.example", "languages": ["en", "ro"]},
]


@dataclass
class Stack:
    platform: Platform
    amqp_url: str
    webhooks: WebhookReceiver
    sink: OtlpSink
    token: Callable[..., str]

    def url(self, name: str) -> str:
        return self.platform.urls[name]

    def headers(self, org: str, kind: str, scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org, kind, scopes)}"}


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
) -> Iterator[Stack]:
    with (
        private_vhost(broker_url) as amqp_url,
        temporary_databases(pg_admin_url) as new_database,
        WebhookReceiver() as webhooks,
        OtlpSink() as sink,
    ):
        urls = {svc: new_database(svc) for svc in ("intake", "advocacy", "notifications")}
        for service, url in urls.items():
            migrate(service, url)
        env = {
            "AMQP_URL": amqp_url,
            "INTAKE_DATABASE_URL": urls["intake"],
            "ADVOCACY_DATABASE_URL": urls["advocacy"],
            "NOTIFICATIONS_DATABASE_URL": urls["notifications"],
            "AUTH_PUBLIC_KEY_FILE": str(keys[1]),
            "AUTH_PRIVATE_KEY_FILE": str(keys[0]),
            "AMQP_RETRY_DELAY_MS": "200",
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        platform = Platform(workdir, env)
        try:
            intake_url = platform.start_api("intake", {})
            advocacy_env = {"PROVIDER_ID": PROVIDER, "AUTO_ACCEPT": "true", "INTAKE_URL": intake_url}
            platform.start_api("advocacy", advocacy_env)
            platform.start_api("notifications", {})
            platform.start_worker("intake", {})
            platform.start_worker("advocacy", advocacy_env)
            platform.start_worker("notifications", {})
            platform.wait_for_consumers(amqp_url, ["intake", f"advocacy.{PROVIDER}", "notifications"])
            stack = Stack(platform, amqp_url, webhooks, sink, token)
            _register_demo_provider(stack, advocate_capacity)
            yield stack
        finally:
            platform.stop()


def _register_demo_provider(stack: Stack, advocate_capacity: int) -> None:
    provider = {
        "name": "Demo Charity (synthetic)",
        "regions": ["london", "north_west"],
        "languages": ["en", "sq", "ro"],
        "serves": ["adult", "child"],
        "accepting": True,
        "capacity": 10 * advocate_capacity,
    }
    admin = stack.headers("platform", "coordinator", "providers:admin")
    url = f"{stack.url('intake')}/v1/providers/{PROVIDER}"
    response = requests.put(url, json=provider, headers=admin, timeout=10)
    assert response.status_code in (200, 201), response.text
    charity = stack.headers(PROVIDER, "provider", "cases:write cases:read")
    for advocate in ADVOCATES:
        body = {**advocate, "max_caseload": advocate_capacity}
        response = requests.post(f"{stack.url('advocacy')}/v1/advocates", json=body, headers=charity, timeout=10)
        assert response.status_code == 201, response.text
