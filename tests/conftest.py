"""Session-wide fixtures: the real broker and database, dev keys, tokens.

Before collecting, the broker and the database are each found in this order: TEST_AMQP_URL /
TEST_DATABASE_URL when set (CI); else a local RabbitMQ on 127.0.0.1:5672 (guest/guest) / PostgreSQL on
127.0.0.1:5432 (as the first of postgres, root and the OS user that may create databases), written into
those variables for the fixtures and for subprocesses; else testcontainers when a Docker engine answers.
With none of these the run stops with one message. Runs of unit tests alone (-m unit, or only paths under
tests/unit) look for nothing. Containers are made lazily, in the session fixtures: creating one already
talks to Docker (PITFALLS: testcontainers).
"""

from __future__ import annotations

import getpass
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
LOCAL_HOST = "127.0.0.1"
AMQP_PORT = 5672
PG_PORT = 5432
PROBE_TIMEOUT = 3  # seconds
NO_SERVICES = (
    "The integration and end-to-end tests need RabbitMQ and PostgreSQL. Found no {missing}, "
    "and no Docker engine for testcontainers.\n"
    "Fix: start RabbitMQ (guest/guest on 127.0.0.1:5672) and PostgreSQL (127.0.0.1:5432) locally, "
    "or set TEST_AMQP_URL and TEST_DATABASE_URL (e.g. amqp://guest:guest@127.0.0.1:5672/%2F and "
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres), or start a Docker engine.\n"
    "The unit tests alone need none of these: pytest -m unit"
)
_USE_DOCKER = pytest.StashKey[bool]()


def pytest_collection_modifyitems(items):
    for item in items:
        for layer in ("unit", "integration", "e2e"):
            if f"{os.sep}tests{os.sep}{layer}{os.sep}" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, layer))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Find the broker and the database before collecting; stop once, clearly, when there are none."""
    if _unit_only(session.config):
        return
    missing = []
    if not _use_local("TEST_AMQP_URL", lambda: local_amqp_url(LOCAL_HOST, AMQP_PORT)):
        missing.append(f"RabbitMQ on {LOCAL_HOST}:{AMQP_PORT} taking guest/guest (TEST_AMQP_URL unset)")
    if not _use_local("TEST_DATABASE_URL", lambda: local_pg_url(LOCAL_HOST, PG_PORT)):
        missing.append(
            f"PostgreSQL on {LOCAL_HOST}:{PG_PORT} with a role that may create databases (TEST_DATABASE_URL unset)"
        )
    if missing and not _docker_answers():
        pytest.exit(NO_SERVICES.format(missing=", no ".join(missing)), returncode=3)
    session.config.stash[_USE_DOCKER] = bool(missing)


def _unit_only(config: pytest.Config) -> bool:
    """-m unit, or only paths under tests/unit: a run that needs no broker or database."""
    if config.option.markexpr.strip() == "unit":
        return True
    unit = ROOT / "tests" / "unit"
    paths = [Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args]
    return bool(paths) and all(path.is_relative_to(unit) for path in paths)


def _use_local(variable: str, probe: Callable[[], str | None]) -> bool:
    """Keep the variable when set, else set it to what the probe finds; False when neither."""
    if not os.environ.get(variable):
        url = probe()
        if url is None:
            return False
        os.environ[variable] = url
    return True


def local_amqp_url(host: str, port: int) -> str | None:
    """The URL of the RabbitMQ at host:port when it takes guest/guest, else None."""
    import pika

    parameters = pika.ConnectionParameters(
        host,
        port,
        credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=1,
        socket_timeout=PROBE_TIMEOUT,
        stack_timeout=PROBE_TIMEOUT,
    )
    try:
        pika.BlockingConnection(parameters).close()
    except Exception:  # refused, timed out, credentials refused: not usable
        return None
    return f"amqp://guest:guest@{host}:{port}/%2F"


def local_pg_url(host: str, port: int) -> str | None:
    """The URL of the PostgreSQL at host:port as the first of postgres, root and the OS user that may create
    databases (trust authentication), else None."""
    import psycopg

    for role in dict.fromkeys(("postgres", "root", getpass.getuser())):
        try:
            with psycopg.connect(
                host=host, port=port, dbname="postgres", user=role, connect_timeout=PROBE_TIMEOUT
            ) as connection:
                row = connection.execute(
                    "select rolsuper or rolcreatedb from pg_roles where rolname = current_user"
                ).fetchone()
        except psycopg.Error:
            continue
        if row and row[0]:
            return f"postgresql+psycopg://{role}@{host}:{port}/postgres"
    return None


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=PROBE_TIMEOUT).ping()
        return True
    except Exception:
        return False


def _require_docker(config: pytest.Config) -> None:
    """Containers only when the search at session start settled on them (a unit-only run searched nothing)."""
    if not config.stash.get(_USE_DOCKER, False):
        pytest.fail("no broker or database was looked for: this run selected unit tests only (-m unit, tests/unit)")


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
def broker_url(pytestconfig) -> Iterator[str]:
    """The broker as given (its default vhost)."""
    if os.environ.get("TEST_AMQP_URL"):
        yield os.environ["TEST_AMQP_URL"]
        return
    _require_docker(pytestconfig)
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
def pg_admin_url(pytestconfig) -> Iterator[str]:
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    _require_docker(pytestconfig)
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
