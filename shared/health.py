"""What a process knows of its own health, for `/healthz` (alive) and `/readyz` (able to do its work).

Each loop reports the dependencies it finds down and up again (`HEALTH.down("database", "...")`,
`HEALTH.up("database")`); `/readyz` answers 503 naming every dependency down, with the reason, while any is.
One registry per process: loops run on threads of it, and each names its own dependencies.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Down:
    dependency: str
    reason: str
    since: float  # time.monotonic()


class Health:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[str, Down] = {}

    def down(self, dependency: str, reason: str) -> None:
        """`dependency` (e.g. "database", "broker", "intake") is unavailable; `reason` is one line, no data."""
        with self._lock:
            known = self._down.get(dependency)
            self._down[dependency] = Down(dependency, reason[:200], known.since if known else time.monotonic())

    def up(self, dependency: str) -> None:
        with self._lock:
            self._down.pop(dependency, None)

    def problems(self) -> list[Down]:
        with self._lock:
            return sorted(self._down.values(), key=lambda d: d.dependency)

    @property
    def ready(self) -> bool:
        return not self.problems()

    def report(self) -> dict:
        """The body of /readyz."""
        now = time.monotonic()
        down = {d.dependency: {"reason": d.reason, "for_s": round(now - d.since, 1)} for d in self.problems()}
        return {"status": "ready" if not down else "not ready", "down": down}


HEALTH = Health()
