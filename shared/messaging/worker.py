"""Run a service's background loops (consumer, relay, dispatcher) as threads until SIGTERM or Ctrl-C.

Each loop makes its own broker connection in its own thread. If one loop dies, the process exits non-zero
so that its supervisor (honcho, compose, Kubernetes) restarts it rather than limping on half-alive. With
WORKER_PORT set, the process serves /healthz and /readyz meanwhile (shared.health_server).

`WORKER_IN_API=true` runs the same loops inside the API's one gunicorn worker instead of a process of their
own (`InApiLoops`, started by deploy/gunicorn.conf.py with the platform's builders, services.workers.LOOPS):
one process less, for a charity on a small server.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Collection, Mapping

from shared.config import ConfigError
from shared.health_server import HealthServer
from shared.messaging.topology import TopologyConflict

log = logging.getLogger(__name__)

Loop = Callable[[threading.Event], None]
LoopsBuilder = Callable[[], dict[str, Loop]]  # a service's named loops, built from its settings


def run_loops(
    loops: dict[str, Loop], stop: threading.Event | None = None, *, health_at: tuple[str, int] | None = None
) -> int:
    """Run `loops` until `stop` (or SIGTERM, Ctrl-C); 1 if one died. `health_at`: (host, port) to serve
    /healthz and /readyz on while they run (shared.health_server.health_address(settings))."""
    stop = stop or threading.Event()
    failed: list[str] = []
    server = None
    if health_at is not None:
        try:
            server = HealthServer(*health_at, alive=lambda: not stop.is_set()).start()
        except OSError as exc:  # the port is taken or the host is not this machine's: say so, do not limp on
            log.error(f"cannot serve /healthz and /readyz on {health_at[0]}:{health_at[1]}: {exc}")
            return 1

    def guard(name: str, loop: Loop) -> None:
        try:
            loop(stop)
        except TopologyConflict as exc:  # a one-line reason and the fix, not a traceback
            log.error(str(exc), extra={"loop": name})
            failed.append(name)
            stop.set()
        except Exception:
            log.exception("background loop died", extra={"loop": name})
            failed.append(name)
            stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    threads = [threading.Thread(target=guard, args=item, name=item[0], daemon=True) for item in loops.items()]
    for thread in threads:
        thread.start()
    log.info("worker started", extra={"loops": list(loops)})
    while not stop.is_set():
        stop.wait(0.5)
    for thread in threads:
        thread.join(timeout=10)
    if server is not None:
        server.stop()
    log.info("worker stopped", extra={"failed": failed})
    return 1 if failed else 0


def main_exit(code: int) -> None:
    from shared.telemetry import flush

    flush()
    sys.exit(code)


def check_worker_in_api(service: str, workers: int, services: Collection[str]) -> None:
    """`services`: the names of the services that have loops to run (the keys of InApiLoops' `builders`)."""
    if service not in services:
        raise ConfigError(f"WORKER_IN_API: no worker for {service!r}; choose one of {', '.join(services)}")
    if workers != 1:
        raise ConfigError(
            f"WORKER_IN_API=true needs exactly one gunicorn worker, not {workers}: set WEB_CONCURRENCY=1 "
            "(or run the worker as its own process)"
        )


class InApiLoops:
    """A service's worker loops on a thread of the API's gunicorn worker (WORKER_IN_API=true).

    Only with a single gunicorn worker: two would be two competing consumers of one queue, which takes away
    the order in which one publisher's events arrive. If a loop dies, the gunicorn worker is told to stop,
    and gunicorn starts a new one, loops and all: the supervisor's part, as for the worker process.
    """

    def __init__(self, service: str, workers: int, builders: Mapping[str, LoopsBuilder]):
        """`builders`: each service's loops, built from its settings when called; only `service`'s builder is
        called, and only once the set-up is checked."""
        check_worker_in_api(service, workers, builders.keys())
        self._loops = builders[service]()
        self._stop = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"{service}-worker-loops", daemon=True)

    def start(self) -> InApiLoops:
        self._thread.start()
        return self

    def _run(self) -> None:
        run_loops(self._loops, self._stop)  # returns once stopped: by stop(), or because a loop died
        if not self._stopping:
            log.error("a background loop died; stopping this API worker so that gunicorn starts a new one")
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping = True
        self._stop.set()
        self._thread.join(timeout)
