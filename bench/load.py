"""Load shapes: one at a time, open-loop arrivals at a fixed rate, and a closed-loop burst.

Open loop means arrivals follow the clock, not the server: referral i is due at t0 + i/rate whether or
not earlier ones have been answered, and its latency counts from when it was *due*. A slow server
therefore shows as latency instead of quietly lowering the offered rate (no coordinated omission).
Requests go to 127.0.0.1 only; every loop is bounded by a count.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Sent:
    due: float  # time.monotonic() when the referral was due (open loop) or sent (otherwise)
    status: int = 0
    referral_id: str | None = None
    error: str | None = None
    answered: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == 201 and self.referral_id is not None


class Poster:
    """POST /v1/referrals over plain http.client (gunicorn's sync workers close each connection anyway)."""

    def __init__(self, base_url: str, headers: dict[str, str]):
        self.base_url = base_url
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._headers = {**headers, "Content-Type": "application/json"}

    def post(self, body: bytes, sent: Sent) -> Sent:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            connection.request("POST", "/v1/referrals", body, self._headers)
            response = connection.getresponse()
            reply = response.read()
            sent.status = response.status
            if response.status == 201:
                sent.referral_id = json.loads(reply)["id"]
            else:
                sent.error = f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            sent.error = exc.__class__.__name__
        finally:
            connection.close()
            sent.answered = time.monotonic()
        return sent


def open_loop(poster: Poster, bodies: Sequence[bytes], rate: float, *, threads: int, into: list[Sent]) -> None:
    """Send len(bodies) referrals at `rate` per second on the clock. Each appears in `into` (in order) before
    the first is sent, so another thread can watch them being answered."""
    start = time.monotonic() + 0.1
    results = [Sent(due=start + i / rate) for i in range(len(bodies))]
    into.extend(results)
    _fan_out(threads, len(bodies), lambda i: _send_when_due(poster, bodies[i], results[i]))


def closed_loop(poster: Poster, bodies: Sequence[bytes], *, clients: int) -> list[Sent]:
    """`clients` concurrent clients, each sending its next referral as soon as the last was answered."""
    results: list[Sent] = [Sent(due=0.0) for _ in bodies]

    def send(i: int) -> None:
        results[i].due = time.monotonic()
        poster.post(bodies[i], results[i])

    _fan_out(clients, len(bodies), send)
    return results


def _send_when_due(poster: Poster, body: bytes, sent: Sent) -> None:
    wait = sent.due - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    poster.post(body, sent)


def _fan_out(threads: int, count: int, work: Callable[[int], None]) -> None:
    """Run work(0..count-1) on `threads` threads, taking indexes in order."""
    lock = threading.Lock()
    cursor = iter(range(count))

    def worker() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            work(i)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(threads, count)))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
