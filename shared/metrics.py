"""Prometheus metrics of every process: each API at `GET /metrics`, each worker on its WORKER_PORT beside
`/healthz` and `/readyz` (shared.health_server). deploy/prometheus/alerts.yml alerts on them and
deploy/RUNBOOK.md says what to do about each alert.

Every metric the platform exports is defined here, once. Three kinds:

- **counters and histograms** of what a process did (a message consumed, a webhook attempted, a clock
  breached): incremented where it happens. Under gunicorn they are multi-process safe (PROMETHEUS_MULTIPROC_DIR,
  set by deploy/gunicorn.conf.py): `/metrics` answers the sum over the API's worker processes.
- **gauges a loop sets** from what it sees on its own connection (`referrals_messages_parked`: the consumer
  counts its parking queue on its own channel, since pika's channels are not thread-safe).
- **figures** read when scraped: each service registers its database readers with `add_figures`; they are
  computed in the process answering the scrape, so every replica reports the same value (alerts take `max` by
  service). `referrals_ready` and `referrals_dependency_up` are figures of every process, from its /readyz.

Labels are bounded sets (a queue, an event type of the catalogue, an outcome, a route's rule, a status code):
never an id, never anything about a person.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any

import prometheus_client
from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from shared.config import Settings

log = logging.getLogger(__name__)

# No `<name>_created` series beside each counter and histogram: Prometheus does not use them in the text
# format, and they would double every scrape.
prometheus_client.disable_created_metrics()

# --- what a process did ------------------------------------------------------------------------------------

HTTP_REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Time to answer an HTTP request, by the route's rule (never the path itself), method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MESSAGES_CONSUMED = Counter(
    "referrals_messages_consumed",  # exported as referrals_messages_consumed_total
    "Messages a consumer took off its queue, by what came of them.",
    ["queue", "event_type", "outcome"],  # outcome: handled | duplicate | retried | parked
)
WEBHOOK_DELIVERIES = Counter(
    "referrals_webhook_deliveries",  # referrals_webhook_deliveries_total
    "Webhook delivery attempts, by outcome.",
    ["outcome"],  # delivered | retried | failed (gave up) | refused (the receiver's address is not allowed)
)
CLOCKS_BREACHED = Counter(
    "referrals_clocks_breached",  # referrals_clocks_breached_total
    "NRM clocks that passed their deadline unanswered.",
    ["clock"],  # the clock's kind (a bounded set), never the case
)
TRANSITIONS_MISSED = Counter(
    "referrals_transitions_missed",  # referrals_transitions_missed_total
    "Transitions of a person's support (move-on, handover) whose date passed with nothing done.",
    ["transition"],
)
FIGURES_FAILED = Counter(
    "referrals_figures_failed",  # referrals_figures_failed_total
    "Scrapes at which a figure reader failed (its figures were left out of that scrape; the log says why).",
    ["figures"],  # the reader's function name
)

# --- what a loop sees --------------------------------------------------------------------------------------

MESSAGES_PARKED = Gauge(
    "referrals_messages_parked",
    "Messages waiting in a consumer's parking queue (<queue>.parking) for an operator (referrals-parked).",
    ["queue"],
    # With the loops inside a gunicorn worker (WORKER_IN_API), the value of the process that measured last; a
    # dead worker's value goes with it (gunicorn.conf.py's child_exit).
    multiprocess_mode="livemostrecent",
)

# The figures' names (gauges read from a database at scrape time; see add_figures).
OUTBOX_PENDING = "referrals_outbox_pending"  # [service]
OUTBOX_OLDEST_PENDING_SECONDS = "referrals_outbox_oldest_pending_seconds"  # [service]
WEBHOOK_OLDEST_PENDING_SECONDS = "referrals_webhook_oldest_pending_seconds"
OFFERS_OVERDUE = "referrals_offers_overdue"
ESCALATIONS_OPEN = "referrals_escalations_open"
ERASURES_OVERDUE = "referrals_erasures_overdue"
# Every process: 1 while it is ready (what its /readyz answers), else 0; and each dependency's state.
READY = "referrals_ready"
DEPENDENCY_UP = "referrals_dependency_up"  # [dependency]: database, broker, ...

# Scrape targets carry two labels set by the scrape configuration (deploy/prometheus/prometheus.yml, the
# Kubernetes PodMonitors), not by the process: `service` (intake | advocacy | notifications) and `process`
# (api | worker). Alerts and the dashboard select on them.

Figures = Callable[[], Iterable[Metric]]
"""Reads a service's figures when scraped: yields prometheus_client GaugeMetricFamily objects."""

OUTCOMES = ("handled", "duplicate", "retried", "parked")
UNKNOWN = "unknown"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus reads
UNMATCHED = "unmatched"  # a request no route matched (404, 405): its path is the sender's, not a label

# --- what a consumer counts --------------------------------------------------------------------------------


def event_type_label(event_type: str | None, known: Collection[str]) -> str:
    """The event_type label of a message: its type if it is one of the catalogue's (`known`), else `unknown`:
    a type a sender made up must not become a series of its own."""
    return event_type if event_type and event_type in known else UNKNOWN


def consumed(queue: str, event_type: str, outcome: str) -> None:
    """Count one message `queue`'s consumer settled; `event_type` already bounded (event_type_label)."""
    MESSAGES_CONSUMED.labels(queue=queue, event_type=event_type, outcome=outcome).inc()


# --- what a scrape answers ---------------------------------------------------------------------------------


def multiprocess_dir(env: dict[str, str] | None = None) -> str | None:
    """PROMETHEUS_MULTIPROC_DIR: where each process of a gunicorn API writes its counters (deploy/gunicorn.conf.py)."""
    return (os.environ if env is None else env).get("PROMETHEUS_MULTIPROC_DIR") or None


class _Process:
    """The default registry's metrics (this process's), as one collector of a registry made for one scrape."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class _Figures:
    """Figure readers, read now; one that fails is logged, counted and left out, not the whole scrape."""

    def __init__(self, readers: Iterable[Figures]):
        self._readers = list(readers)

    def collect(self) -> Iterator[Metric]:
        for reader in self._readers:
            name = (getattr(reader, "__qualname__", None) or type(reader).__name__).replace(".<locals>", "")
            try:
                found = list(reader())  # a generator fails while it is read, not when it is called
            except Exception as exc:
                log.warning("a figure reader failed; its figures are left out", extra={"figures": name,
                            "error": exc.__class__.__name__})  # fmt: skip
                FIGURES_FAILED.labels(figures=name).inc()
                continue
            yield from found


def readiness(ready: bool, down: Iterable[str], dependencies: Iterable[str] = ()) -> Figures:
    """`referrals_ready` and `referrals_dependency_up`: 0 for each of `down`, 1 for each of `dependencies` (the
    ones this process always has, and any seen down before) that is not."""
    down = set(down)

    def read() -> Iterator[Metric]:
        yield GaugeMetricFamily(READY, "1 while this process is ready (its /readyz answers 200), else 0.", float(ready))
        up = GaugeMetricFamily(DEPENDENCY_UP, "1 while this process reaches the dependency, else 0.",
                               labels=["dependency"])  # fmt: skip
        for dependency in sorted(set(dependencies) | down):
            up.add_metric([dependency], 0 if dependency in down else 1)
        yield up

    return read


class Known:
    """The dependencies a process has found down, and those it always has: its dependency_up series, which stay
    (at 1) once a dependency is back, so an alert on one resolves rather than loses its series."""

    def __init__(self, always: Iterable[str]):
        self._seen = set(always)
        self._lock = threading.Lock()  # scrapes may come on several threads at once

    def __call__(self, down: Iterable[str]) -> set[str]:
        with self._lock:
            self._seen |= set(down)
            return set(self._seen)


def exposition(figures: Iterable[Figures] = (), env: dict[str, str] | None = None) -> bytes:
    """The text format of this process's metrics (under PROMETHEUS_MULTIPROC_DIR: the sum over every process
    writing there) and of `figures`, read now."""
    registry = CollectorRegistry()
    registry.register(_Figures(figures))  # first: a reader's failure is counted in this very scrape
    path = multiprocess_dir(env)
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_Process())
    return _generate_latest(registry)


# --- an API's /metrics -------------------------------------------------------------------------------------


def add_figures(app: Flask, figures: Figures) -> None:
    """Have the app's `/metrics` answer what `figures` reads, on every scrape."""
    app.extensions.setdefault("metrics_figures", []).append(figures)


def init_app(app: Flask, settings: Settings) -> None:
    """`GET /metrics` and the request-duration histogram on a service's API. Not authenticated (as /healthz:
    nothing in it is about a person) and not in the OpenAPI document; its readiness figures are what the app's
    own /readyz answers, asked at the scrape."""
    known = Known(["database"])

    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            method = request.method if request.method in METHODS else "other"
            labels = {"route": rule, "method": method, "status": str(response.status_code)}
            HTTP_REQUEST_DURATION.labels(**labels).observe(time.perf_counter() - started)
        return response

    def app_readiness() -> Iterable[Metric]:
        answer: Any = app.view_functions["readyz"]()  # shared.web: a body, or (body, 503) naming what is down
        body, status = answer if isinstance(answer, tuple) else (answer, 200)
        down = set(body.get("down", {}))
        return readiness(status == 200, down, known(down))()

    @app.get("/metrics")
    def metrics():
        body = exposition([*app.extensions.get("metrics_figures", []), app_readiness])
        return Response(body, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
