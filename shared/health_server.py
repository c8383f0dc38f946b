"""A worker's `/healthz`, `/readyz` and `/metrics` on WORKER_PORT (DESIGN.md section 5), for its supervisor's
probes and for Prometheus.

- `GET /healthz`: 200 while the process runs its loops (the liveness probe: restart it when this fails);
- `GET /readyz`: 200 with shared.health's report while every dependency is up, else 503 with the report
  naming each dependency down and why (the readiness probe, and what an operator reads first);
- `GET /metrics`: the process's Prometheus metrics (shared.metrics: its loops' counters, and under
  PROMETHEUS_MULTIPROC_DIR every process's there) with `referrals_ready` and `referrals_dependency_up` read
  from the same report as /readyz.

The standard library's threaded HTTP server, on 127.0.0.1 unless WORKER_HOST says otherwise (a container's
probe from outside the container needs `0.0.0.0`): a worker has no web framework and needs none for three
routes. Each request is answered on a thread of the server's, which only reads: the loops keep their broker
channels to themselves (a loop measures what it needs, e.g. its parking queue, on its own). The worker's API,
when the loops run inside it (WORKER_IN_API=true), answers /readyz and /metrics itself (shared.web).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shared import metrics
from shared.config import Settings
from shared.health import HEALTH, Health

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
# What every worker depends on: its dependency_up series exist (at 1) before either is ever found down.
DEPENDENCIES = ("database", "broker")
PATHS = ["/healthz", "/readyz", "/metrics"]


def health_address(settings: Settings) -> tuple[str, int] | None:
    """Where the worker serves its health: (WORKER_HOST, WORKER_PORT), or None when WORKER_PORT is 0 or unset."""
    if not settings.worker_port:
        return None
    return (settings.env.get("WORKER_HOST") or DEFAULT_HOST, settings.worker_port)


class HealthServer:
    """`/healthz`, `/readyz` and `/metrics` on a thread of their own, from `start()` until `stop()`. Port 0: any
    free one (tests), then `port` says which."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        alive: Callable[[], bool] = lambda: True,
        health: Health = HEALTH,
    ):
        self._server = ThreadingHTTPServer((host, port), _handler(alive, health))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-server", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> HealthServer:
        self._thread.start()
        host = self._server.server_address[0]
        log.info("health endpoints served", extra={"address": f"{host!s}:{self.port}"})
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler(alive: Callable[[], bool], health: Health) -> type[BaseHTTPRequestHandler]:
    known = metrics.Known(DEPENDENCIES)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok = alive()
                self._answer(200 if ok else 503, {"status": "ok" if ok else "stopping"})
            elif path == "/readyz":
                report = health.report()
                self._answer(200 if not report["down"] else 503, report)
            elif path == "/metrics":
                down = set(health.report()["down"])
                readiness = metrics.readiness(not down, down, known(down))
                self._answer(200, metrics.exposition([readiness]), metrics.CONTENT_TYPE)
            else:
                self._answer(404, {"status": "not found", "paths": PATHS})

        def _answer(self, status: int, body: dict | bytes, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
            pass  # a probe every few seconds is not news; the loops log what matters

    return Handler
