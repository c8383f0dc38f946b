"""Prometheus metrics of every process: each API at `GET /metrics`, each worker on its WORKER_PORT beside
`/healthz` and `/readyz` (shared.health_server). deploy/prometheus/alerts.yml alerts on them and
deploy/RUNBOOK.md says what to do about each alert.

Every metric the platform exports is defined here, once. Two kinds:

- **counters and histograms** of what a process did (a message consumed, a webhook attempted, a clock
  breached): incremented where it happens. Under gunicorn they are multi-process safe (PROMETHEUS_MULTIPROC_DIR,
  set by deploy/gunicorn.conf.py): `/metrics` answers the sum over the API's worker processes.
- **figures** read from a service's database when scraped (outbox pending, offers overdue, ...): each service
  registers its readers with `add_figures`; they are computed in the process answering the scrape, so every
  replica reports the same value (alerts take `max` by service).

Labels are bounded sets (a queue, an event type, an outcome, a route's rule, a status code): never an id,
never anything about a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Flask
from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric

from shared.config import Settings

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

# The figures' names (gauges read from a database at scrape time; see add_figures).
MESSAGES_PARKED = "referrals_messages_parked"  # [queue]
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


def add_figures(app: Flask, figures: Figures) -> None:
    """Have the app's `/metrics` answer what `figures` reads, on every scrape."""
    app.extensions.setdefault("metrics_figures", []).append(figures)


def init_app(app: Flask, settings: Settings) -> None:
    """`GET /metrics` and the request-duration histogram on a service's API."""
