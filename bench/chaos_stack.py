"""The platform as `make chaos` runs it: every part a fault can reach is a handle here.

- the broker: a private RabbitMQ node or cluster (tests/support/rabbit_node.py), never the shared one;
- each service's PostgreSQL database (fresh, dropped afterwards) reached through a loopback TCP proxy that
  can be cut (tests/support/tcp_proxy.py): "the database refuses connections" without touching PostgreSQL;
- the three APIs and three workers as processes on fixed ports, restarted by a supervisor thread when they
  exit unplanned (as honcho, compose or Kubernetes would), each exit counted;
- the agency's webhook receiver (chaos_receiver.py), which can be made to fail.
Every process started is stopped by PID; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.chaos_receiver import Receiver
from bench.stack import PROVIDER, _headers, _register_demo_provider
from services.migrate import migrate
from support.apps import UNLIMITED
from support.infra import private_vhost, temporary_databases
from support.processes import BIN, Platform, Process, free_port
from support.rabbit_node import Cluster, Node
from support.tcp_proxy import TcpProxy

SERVICES = ("intake", "advocacy", "notifications")
QUEUES = {"intake": "intake", "advocacy": f"advocacy.{PROVIDER}", "notifications": "notifications"}
WEB_CONCURRENCY = {"intake": "2", "advocacy": "1", "notifications": "1"}
AGENCY = ("met-police", "police", "referrals:write referrals:read subscriptions:write")


@dataclass
class Managed:
    """One process the harness owns: how to start it again, and whether it is down on purpose."""

    name: str
    argv: list[str]
    env: dict[str, str]
    process: Process | None = None
    incarnation: int = 0
    planned_down: bool = False
    unplanned_exits: list[tuple[float, int]] = field(default_factory=list)
    port: int = 0  # the API's HTTP port, or the worker's WORKER_PORT


@dataclass
class ChaosStack:
    broker: Node | Cluster
    amqp_url: str
    platform: Platform
    databases: dict[str, str]  # service -> direct URL (the harness's own reads)
    proxies: dict[str, TcpProxy]
    receiver: Receiver
    token: object
    managed: dict[str, Managed] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    advocates: int = 0
    poison: set[str] = field(default_factory=set)  # message ids of the poison published (chaos_faults.poison)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- processes
    def launch(self, name: str) -> None:
        m = self.managed[name]
        with self._lock:
            m.incarnation += 1
            m.process = self.platform.start(f"{name}.{m.incarnation}", m.argv, m.env)
            m.planned_down = False

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        m = self.managed[name]
        with self._lock:
            m.planned_down = True
            if m.process is not None:
                self.platform.stop(m.process, sig)
                m.process = None

    def supervise(self, stop: threading.Event) -> None:
        """Restart a process that exited unplanned, after a second, and count the exit."""
        while not stop.wait(0.5):
            for m in self.managed.values():
                with self._lock:
                    exited = m.process is not None and not m.planned_down and m.process.popen.poll() is not None
                    if exited:
                        assert m.process is not None
                        m.unplanned_exits.append((time.monotonic(), m.process.popen.returncode))
                        self.platform.processes.remove(m.process)
                        m.process = None
                if exited:
                    stop.wait(1.0)
                    self.launch(m.name)

    # --- readiness
    def broker_urls(self) -> list[str]:
        return self.amqp_url.split(",")

    def consumers(self) -> dict[str, int]:
        """Consumers on each service's queue, from whichever node answers (a passive declare)."""
        for url in self.broker_urls():
            try:
                params = pika.URLParameters(url)
                params.socket_timeout, params.connection_attempts = 2, 1
                with pika.BlockingConnection(params) as connection:
                    channel = connection.channel()
                    return {s: channel.queue_declare(q, passive=True).method.consumer_count for s, q in QUEUES.items()}
            except Exception:  # noqa: S112 - this node is down or booting; try the next
                continue
        return {s: 0 for s in QUEUES}

    def worker_ready(self, service: str, consumers: dict[str, int] | None = None) -> bool:
        """A worker is ready when its queue has a consumer and, if it serves one, its /readyz answers 200."""
        consumers = consumers if consumers is not None else self.consumers()
        if consumers.get(service, 0) < 1:
            return False
        m = self.managed[f"{service}-worker"]
        try:
            return requests.get(f"http://127.0.0.1:{m.port}/readyz", timeout=2).status_code == 200
        except requests.RequestException:  # no health server in this build: the consumer is the sign
            return True

    def wait_ready(self, services=SERVICES, timeout: float = 120) -> float | None:
        """Seconds until every named worker is ready (None: not within `timeout`)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            consumers = self.consumers()
            if all(self.worker_ready(s, consumers) for s in services):
                return time.monotonic() - start
            time.sleep(0.2)
        return None

    def report(self) -> str:
        """Each process's unplanned exits and the end of its log: what a failed start prints."""
        lines = []
        for m in self.managed.values():
            log = self.platform.workdir / f"{m.name}.{m.incarnation}.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else "(no log)"
            lines.append(f"--- {m.name} (incarnation {m.incarnation}, unplanned exits {m.unplanned_exits}):\n{tail}")
        return "\n".join(lines)

    def health_served(self) -> bool:
        m = self.managed["intake-worker"]
        with contextlib.suppress(requests.RequestException):
            requests.get(f"http://127.0.0.1:{m.port}/healthz", timeout=2)
            return True
        return False

    def terminate_backends(self) -> int:
        """pg_terminate_backend on every connection to this run's databases (and no other), from the server."""
        names = [make_url(u).database for u in self.databases.values()]
        engine = create_engine(next(iter(self.databases.values())), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                sql = text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = ANY(:names) AND pid <> pg_backend_pid()"
                )
                return int(connection.execute(sql, {"names": names}).scalar_one())
        finally:
            engine.dispose()


def _proxied(url: str, proxy: TcpProxy) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@contextlib.contextmanager
def chaos_stack(
    broker: Node | Cluster, pg_admin_url: str, keys: tuple[Path, Path], token, workdir: Path, *,
    referrals: int, extra_env: dict[str, str] | None = None,
) -> Iterator[ChaosStack]:  # fmt: skip
    urls = broker.amqp_url
    with (
        private_vhost(urls, broker) as amqp_url,
        temporary_databases(pg_admin_url) as new_database,
        Receiver() as receiver,
    ):
        databases = {s: new_database(s) for s in SERVICES}
        for service, url in databases.items():
            migrate(service, url)
        target = make_url(pg_admin_url)
        proxies = {s: TcpProxy(target.host or "127.0.0.1", target.port or 5432) for s in SERVICES}
        for proxy in proxies.values():
            proxy.open()
        env = {
            "AMQP_URL": amqp_url,
            **{f"{s.upper()}_DATABASE_URL": _proxied(databases[s], proxies[s]) for s in SERVICES},
            "AUTH_PUBLIC_KEY_FILE": str(keys[1]),
            "AUTH_PRIVATE_KEY_FILE": str(keys[0]),
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "OTEL_SDK_DISABLED": "true",
            "LOG_LEVEL": "WARNING",
            **UNLIMITED,  # one organisation and token send every referral of the run
            **(extra_env or {}),
        }
        stack = ChaosStack(broker, amqp_url, Platform(workdir, env), databases, proxies, receiver, token)
        intake_port = free_port()
        per_service = {
            "intake": {},
            "advocacy": {"PROVIDER_ID": PROVIDER, "AUTO_ACCEPT": "true", "INTAKE_URL": f"http://127.0.0.1:{intake_port}"},
            "notifications": {},
        }  # fmt: skip
        for service in SERVICES:
            port = intake_port if service == "intake" else free_port()
            argv = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                    f"services.{service}.app:create_app()"]  # fmt: skip
            api_env = {**per_service[service], "WEB_CONCURRENCY": WEB_CONCURRENCY[service], "PORT": str(port)}
            stack.managed[f"{service}-api"] = Managed(f"{service}-api", argv, api_env, port=port)
            stack.urls[service] = f"http://127.0.0.1:{port}"
            worker_port = free_port()
            worker_env = {**per_service[service], "WORKER_PORT": str(worker_port)}
            argv = [str(BIN / "python"), "-m", f"services.{service}.worker"]
            stack.managed[f"{service}-worker"] = Managed(f"{service}-worker", argv, worker_env, port=worker_port)
        stop = threading.Event()
        supervisor = threading.Thread(target=stack.supervise, args=(stop,), daemon=True)
        try:
            for name in stack.managed:
                stack.launch(name)
            supervisor.start()  # from the first launch: a process that dies while booting is started again
            for service in SERVICES:
                wait_http(stack.urls[service], stack)
            if stack.wait_ready(timeout=90) is None:
                raise RuntimeError(f"workers not ready after 90 s; consumers {stack.consumers()}\n{stack.report()}")
            _register_demo_provider(stack, token, referrals)  # type: ignore[arg-type]
            hook = {"url": f"{receiver.url}/hooks", "events": ["referral.received", "referral.allocated"]}
            subscriptions = f"{stack.urls['notifications']}/v1/subscriptions"
            response = requests.post(subscriptions, json=hook, headers=_headers(token, *AGENCY), timeout=10)
            response.raise_for_status()
            yield stack
        finally:
            stop.set()
            supervisor.join(timeout=10) if supervisor.is_alive() else None
            stack.platform.stop()
            for proxy in proxies.values():
                proxy.close()


def wait_http(url: str, stack: ChaosStack, timeout: float = 90) -> float | None:
    """Seconds until `url`/readyz answers 200 (None: not within `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                return time.monotonic() - start
        time.sleep(0.2)
    return None
