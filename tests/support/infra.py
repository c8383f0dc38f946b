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
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from support.rabbit_node import Cluster, Node


@contextlib.contextmanager
def private_vhost(broker_url: str, node: Node | Cluster | None = None) -> Iterator[str]:
    """A fresh vhost on the broker (deleted afterwards) and `broker_url` pointing at it. Without `node`, the
    local shared broker through `rabbitmqctl`; with a private node or cluster (support.rabbit_node), through
    its own `rabbitmqctl -n NAME`, and `broker_url` may list the cluster's nodes comma-separated."""
    urls = [u.strip() for u in broker_url.split(",") if u.strip()]
    parsed = urlsplit(urls[0])
    local = parsed.hostname in ("127.0.0.1", "localhost") and shutil.which("rabbitmqctl")
    if node is None and not local:
        yield broker_url
        return
    ctl = node.ctl if node is not None else _rabbitmqctl
    vhost = f"test-{uuid.uuid4().hex[:10]}"
    user = unquote(parsed.username or "guest")
    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    try:
        yield ",".join(urlunsplit(urlsplit(u)._replace(path="/" + quote(vhost, safe=""))) for u in urls)
    finally:
        ctl("delete_vhost", vhost)


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60, text=True).stdout


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
