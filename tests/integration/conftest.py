"""Fixtures for in-process service tests on the real PostgreSQL, and charities' restricted broker users."""

from __future__ import annotations

import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from shared.messaging.topology import declare_exchanges
from support.advocacy import PROVIDER, SCOPES, Instance
from support.apps import notifications_instance, service_app
from support.infra import add_provider


@pytest.fixture
def intake(fresh_database, dev_keys):
    """intake's app on a fresh, migrated PostgreSQL database, and the session factory of its bootstrapped
    instance (services.intake.bootstrap), onto that database."""
    app = service_app("intake", fresh_database("intake"), dev_keys)
    yield app, app.extensions["intake"].sessions
    app.extensions["intake"].engine.dispose()


@pytest.fixture
def notifications(fresh_database, dev_keys):
    """notifications' bootstrapped instance on a fresh, migrated PostgreSQL database (webhooks to 127.0.0.1
    allowed, no retry waits), and a test client of its app."""
    root, client = notifications_instance(fresh_database("notifications"), dev_keys, WEBHOOK_RETRY_SCHEDULE="0")
    yield root, client
    root.engine.dispose()


@pytest.fixture
def providers(amqp_url):
    """Two charities, a and b, with their own restricted broker users made by deploy/rabbitmq/add-provider.sh:
    {"a": (provider id, AMQP URL), "b": ...}."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as platform:
        declare_exchanges(platform.channel())
    suffix = uuid.uuid4().hex[:6]
    ids = {name: f"iso-{name}-{suffix}" for name in ("a", "b")}
    with ThreadPoolExecutor(len(ids)) as pool:  # each is a handful of rabbitmqctl runs: both at once
        urls = dict(zip(ids, pool.map(lambda pid: add_provider(amqp_url, pid), ids.values()), strict=True))
    made = {name: (pid, urls[name]) for name, pid in ids.items()}
    yield made
    with ThreadPoolExecutor(len(ids)) as pool:
        for pid in ids.values():
            pool.submit(subprocess.run, ["rabbitmqctl", "-q", "delete_user", f"advocacy-{pid}"], capture_output=True,
                        timeout=60)  # fmt: skip


@pytest.fixture
def advocacy(fresh_database, dev_keys, broker_url, auth_header):
    """One migrated advocacy instance (provider charity-a) on a fresh database, and its handles."""
    # The API never publishes: no private vhost needed.
    app = service_app("advocacy", fresh_database("advocacy"), dev_keys, PROVIDER_ID=PROVIDER, AMQP_URL=broker_url)
    headers = auth_header(PROVIDER, "provider", SCOPES)
    yield Instance(app.test_client(), app.extensions["advocacy"], headers)
    app.extensions["advocacy"].engine.dispose()
