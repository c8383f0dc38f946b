"""intake's directories of providers and agencies (`GET /v1/directory/providers|agencies`, ids and names) for the
case page's choosers of a receiving provider or agency, so an advocate picks a name instead of typing an id.

Asked through the intake client with this provider's service token (scope cases:read) and kept for a minute;
when intake cannot be asked (unreachable, failing, no service token configured) the answer is None for a
while, and the form falls back to a typed id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.messaging.errors import DependencyUnavailable

log = logging.getLogger(__name__)
Fetch = Callable[[str], list[dict[str, Any]]]  # "providers" | "agencies" -> rows
FRESH_SECONDS = 60.0
RETRY_SECONDS = 30.0


class Directory:
    def __init__(self, fetch: Fetch | None, *, fresh_seconds: float = FRESH_SECONDS, retry_seconds=RETRY_SECONDS):
        self._fetch = fetch
        self._fresh, self._retry = fresh_seconds, retry_seconds
        self._kept: dict[str, tuple[float, list[tuple[str, str]] | None]] = {}
        self._lock = threading.Lock()

    def providers(self) -> list[tuple[str, str]] | None:
        """(id, name) of every provider, by name; None when intake cannot be asked now."""
        return self._get("providers", "id")

    def agencies(self) -> list[tuple[str, str]] | None:
        """(org id, name) of every agency, by name; None when intake cannot be asked now."""
        return self._get("agencies", "org_id")

    def _get(self, which: str, key: str) -> list[tuple[str, str]] | None:
        if self._fetch is None:
            return None
        with self._lock:
            kept = self._kept.get(which)
            if kept is not None and time.monotonic() < kept[0]:
                return kept[1]
            try:
                rows = self._fetch(which)
                found: list[tuple[str, str]] | None = [
                    (str(row[key]), str(row.get("name") or row[key])) for row in rows if row.get(key)
                ]
                until = time.monotonic() + self._fresh
            except (DependencyUnavailable, KeyError) as exc:
                log.warning("intake's directory unavailable: the page asks for a typed id", extra={"why": str(exc)})
                found, until = None, time.monotonic() + self._retry
            self._kept[which] = (until, found)
            return found
