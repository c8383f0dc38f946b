"""Run a service's background loops (consumer, relay, dispatcher) as threads until SIGTERM or Ctrl-C.

Each loop makes its own broker connection in its own thread. If one loop dies, the process exits non-zero
so that its supervisor (honcho, compose, Kubernetes) restarts it rather than limping on half-alive.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable

from shared.messaging.topology import TopologyConflict

log = logging.getLogger(__name__)

Loop = Callable[[threading.Event], None]


def run_loops(loops: dict[str, Loop], stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    failed: list[str] = []

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
    log.info("worker stopped", extra={"failed": failed})
    return 1 if failed else 0


def main_exit(code: int) -> None:
    from shared.telemetry import flush

    flush()
    sys.exit(code)
