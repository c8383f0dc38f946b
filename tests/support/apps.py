"""A service's API app as the in-process tests make it: on a migrated database, verifying the dev keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path

import redis
from flask import Flask
from sqlalchemy import Engine

from services.migrate import migrate
from services.notifications.app import create_app as notifications_app
from services.notifications.bootstrap import bootstrap as notifications_bootstrap
from shared.config import Settings

# Rate limits far past what a generated or benchmark load sends from one address, subject and organisation, for
# the tests and benches that legitimately send that much (the limits themselves: tests/*/test_rate_limits.py).
UNLIMITED = {
    "RATE_LIMIT_AUTH_FAILURES": "1000000/minute",
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_REFERRALS": "1000000/minute",
}


def service_app(service: str, database_url: str, keys: tuple[Path, Path], **env: str) -> Flask:
    """`services.<service>.app:create_app()` on `database_url` (migrated first), with `env` on top."""
    migrate(service, database_url)
    base = {f"{service.upper()}_DATABASE_URL": database_url, "AUTH_PUBLIC_KEY_FILE": str(keys[1])}
    return import_module(f"services.{service}.app").create_app(Settings.from_env(service, env={**base, **env}))


def notifications_instance(database_url: str, keys: tuple[Path, Path], **env: str):
    """notifications bootstrapped on `database_url` (migrated first), webhooks to 127.0.0.1 allowed and `env` on
    top, and a test client of its app: (root, client). Dispose of `root.engine` after."""
    migrate("notifications", database_url)
    base = {"NOTIFICATIONS_DATABASE_URL": database_url, "AUTH_PUBLIC_KEY_FILE": str(keys[1])}
    base["WEBHOOK_ALLOW_PRIVATE"] = "true"
    root = notifications_bootstrap(Settings.from_env("notifications", env={**base, **env}), instrument=False)
    return root, notifications_app(notifications=root).test_client()


def dispose(app: Flask) -> None:
    """Close the database engine of the service's instance the app holds (each keeps its composition root's
    instance on `app.extensions[<service>]`)."""
    for extension in app.extensions.values():
        if isinstance(getattr(extension, "engine", None), Engine):
            extension.engine.dispose()


@contextmanager
def redis_key_prefix(url: str) -> Iterator[tuple[str, redis.Redis]]:
    """A RATE_LIMIT_KEY_PREFIX of the caller's own on the Redis at `url` (the machine's, shared), a client of it,
    and every key under that prefix deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(url)
    try:
        yield prefix, client
    finally:
        for key in client.scan_iter(match=f"*{prefix}*"):
            client.delete(key)
        client.close()
