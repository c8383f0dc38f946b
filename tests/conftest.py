"""Session-wide fixtures: the real broker and database, dev keys, tokens.

The broker and database come from TEST_AMQP_URL / TEST_DATABASE_URL when set (CI and this machine), else
from testcontainers when a Docker engine answers. Containers are made lazily: creating one already talks
to Docker (PITFALLS: testcontainers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.auth.tokens import ensure_dev_keys, mint_token
from shared.telemetry import setup_tracing
from support.infra import private_vhost, temporary_databases

ROOT = Path(__file__).resolve().parent.parent
NO_SERVICES = (
    "integration tests need RabbitMQ and PostgreSQL: set TEST_AMQP_URL and TEST_DATABASE_URL "
    "(e.g. amqp://guest:guest@127.0.0.1:5672/%2F and postgresql+psycopg://postgres@127.0.0.1:5432/postgres) "
    "or start a Docker engine for testcontainers"
)


def pytest_collection_modifyitems(items):
    for item in items:
        for layer in ("unit", "integration", "e2e"):
            if f"{os.sep}tests{os.sep}{layer}{os.sep}" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, layer))


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


_SPANS = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def _tracing():
    """One tracer provider per process (it can be set only once): in memory, cleared between tests."""
    provider = TracerProvider(resource=Resource.create({"service.name": "tests"}))
    provider.add_span_processor(SimpleSpanProcessor(_SPANS))
    trace.set_tracer_provider(provider)
    setup_tracing("tests")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _SPANS.clear()
    yield _SPANS


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """The broker as given (its default vhost)."""
    if os.environ.get("TEST_AMQP_URL"):
        yield os.environ["TEST_AMQP_URL"]
        return
    if not _docker_answers():
        pytest.fail(NO_SERVICES)
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13-management") as container:
        params = container.get_connection_params()
        yield f"amqp://guest:guest@{params.host}:{params.port}/%2F"


@pytest.fixture
def amqp_url(broker_url) -> Iterator[str]:
    """A fresh vhost per test when we can make one (rabbitmqctl on this machine), so tests and test runs
    never share queues; else the broker's own vhost."""
    with private_vhost(broker_url) as url:
        yield url


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    if not _docker_answers():
        pytest.fail(NO_SERVICES)
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver="psycopg") as container:
        yield container.get_connection_url()


@pytest.fixture
def fresh_database(pg_admin_url) -> Iterator[Callable[[str], str]]:
    """Make empty PostgreSQL databases (one per service under test), dropped afterwards."""
    with temporary_databases(pg_admin_url) as make:
        yield make


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory) -> tuple[Path, Path]:
    private, public, _ = ensure_dev_keys(tmp_path_factory.mktemp("keys"))
    return private, public


@pytest.fixture(scope="session")
def make_token(dev_keys) -> Callable[..., str]:
    private_pem = dev_keys[0].read_text()

    def make(org: str, kind: str, scopes: str | list[str], *, ttl: int = 600, **claims) -> str:
        return mint_token(
            private_pem,
            org=org,
            org_kind=kind,
            scopes=scopes.split() if isinstance(scopes, str) else scopes,
            issuer="referrals-dev",
            audience="referrals",
            ttl_seconds=ttl,
            **claims,
        )

    return make


@pytest.fixture
def auth_header(make_token) -> Callable[..., dict[str, str]]:
    def header(org: str, kind: str, scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(org, kind, scopes)}"}

    return header
