"""The test broker and database: a private vhost and throw-away databases, usable at any fixture scope, and a
charity's restricted broker user made by the project's own script."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextlib.contextmanager
def private_vhost(broker_url: str) -> Iterator[str]:
    parsed = urlsplit(broker_url)
    local = parsed.hostname in ("127.0.0.1", "localhost") and shutil.which("rabbitmqctl")
    if not local:
        yield broker_url
        return
    vhost = f"test-{uuid.uuid4().hex[:10]}"
    user = unquote(parsed.username or "guest")
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    try:
        yield urlunsplit(parsed._replace(path="/" + quote(vhost, safe="")))
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def temporary_databases(pg_admin_url: str) -> Iterator[Callable[[str], str]]:
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make(label: str) -> str:
        name = f"t_{label}_{uuid.uuid4().hex[:8]}".replace("-", "_").lower()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as connection:
            for name in made:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


ADD_PROVIDER = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "add-provider.sh"


def add_provider(amqp_url: str, provider_id: str, **env: str) -> str:
    """Make `provider_id`'s broker user on the test's vhost with the project's script; its AMQP URL."""
    parts = urlsplit(amqp_url)
    password = uuid.uuid4().hex
    vhost = unquote(parts.path[1:]) or "/"
    env = {**os.environ, "RABBITMQ_VHOST": vhost, "PROVIDER_AMQP_PASSWORD": password, **env}
    result = subprocess.run([str(ADD_PROVIDER), provider_id], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    netloc = f"advocacy-{provider_id}:{password}@{parts.hostname}:{parts.port or 5672}"
    return parts._replace(netloc=netloc).geturl()
