"""The whole platform as processes (gunicorn APIs and workers) on the real broker and PostgreSQL, with an
agency's webhook receiver and an OTLP sink standing in for the collector."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from shared.db import migrate
from support.infra import private_vhost, temporary_databases
from support.processes import Platform
from support.receivers import OtlpSink, WebhookReceiver

PROVIDER = "demo-charity"
ADVOCATES = [
    {
        "name": "Advocate Kalo Demo",
        "email": "kalo@demo-charity.example",
        "languages": ["en", "sq"],
        "max_caseload": 40,
    },
    {
        "name": "Advocate Rune Demo",
        "email": "rune@demo-charity.example",
        "languages": ["en", "ro"],
        "max_caseload": 40,
    },
]


@dataclass
class Running:
    platform: Platform
    amqp_url: str
    webhooks: WebhookReceiver
    sink: OtlpSink
    token: object

    def url(self, name: str) -> str:
        return self.platform.urls[name]

    def headers(self, org: str, kind: str, scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org, kind, scopes)}"}


@pytest.fixture(scope="module")
def running_platform(broker_url, pg_admin_url, dev_keys, make_token, tmp_path_factory):
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
            "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
            "AUTH_PRIVATE_KEY_FILE": str(dev_keys[0]),
            "AMQP_RETRY_DELAY_MS": "200",
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1",
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "LOG_LEVEL": "INFO",
        }
        platform = Platform(tmp_path_factory.mktemp("platform"), env)
        try:
            intake_url = platform.start_api("intake", {})
            advocacy_env = {"PROVIDER_ID": PROVIDER, "AUTO_ACCEPT": "true", "INTAKE_URL": intake_url}
            platform.start_api("advocacy", advocacy_env)
            platform.start_api("notifications", {})
            platform.start_worker("intake", {})
            platform.start_worker("advocacy", advocacy_env)
            platform.start_worker("notifications", {})
            platform.wait_for_consumers(amqp_url, ["intake", f"advocacy.{PROVIDER}", "notifications"])
            running = Running(platform, amqp_url, webhooks, sink, make_token)
            _register_demo_provider(running)
            yield running
        finally:
            platform.stop()


def _register_demo_provider(running: Running) -> None:
    provider = {
        "name": "Demo Charity (synthetic)",
        "regions": ["london", "north_west"],
        "languages": ["en", "sq", "ro"],
        "serves": ["adult", "child"],
        "accepting": True,
        "capacity": 50,
    }
    admin = running.headers("platform", "coordinator", "providers:admin")
    response = requests.put(
        f"{running.url('intake')}/v1/providers/{PROVIDER}", json=provider, headers=admin, timeout=10
    )
    assert response.status_code in (200, 201), response.text
    charity = running.headers(PROVIDER, "provider", "cases:write cases:read")
    for advocate in ADVOCATES:
        response = requests.post(
            f"{running.url('advocacy')}/v1/advocates",
            json={**advocate, "max_caseload": 40},
            headers=charity,
            timeout=10,
        )
        assert response.status_code == 201, response.text
