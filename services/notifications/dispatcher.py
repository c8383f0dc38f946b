"""The webhook dispatcher: sends due deliveries, signed, in the trace of the event that caused them.

Standard Webhooks (https://www.standardwebhooks.com/): `webhook-id` is stable across retries,
`webhook-timestamp` is the attempt's time, `webhook-signature` is `v1,<base64 HMAC-SHA256>` over
"id.timestamp.body". A receiver's response body is never read, stored or logged.

Deliveries are *claimed*, up to five in one short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so
two dispatchers never take the same row), which moves their `next_attempt_at` past the time their attempts
can take one after another; each HTTP call runs with no transaction open; a short transaction records each
outcome. A dispatcher
that dies mid-send leaves the row to be retried when that lease ends: at-least-once, and the stable
`webhook-id` lets the receiver drop the duplicate. On SQLite, run a single dispatcher.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import requests
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import Table, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker
from standardwebhooks import Webhook

from services.notifications.config import WebhookSettings
from services.notifications.domain import UnsafeWebhookUrl, is_success, next_attempt_delay
from services.notifications.egress import UrlGuard, webhook_session
from services.notifications.models import DELIVERED, FAILED, PENDING, Delivery, Subscription
from shared.clock import utcnow
from shared.retry import DATABASE_OUTAGE
from shared.telemetry import context_from, set_ids, tracer

log = logging.getLogger(__name__)

USER_AGENT = "referrals-notifications/1"
IDLE_WAIT_SECONDS = 0.2
LEASE_MARGIN = timedelta(seconds=60)
CLAIM_BATCH = 5  # deliveries claimed per transaction; their lease covers five attempts in a row


@dataclass(frozen=True)
class _Claimed:
    delivery_id: str
    webhook_id: str
    subscription_id: str
    url: str
    secret: str
    payload: str
    traceparent: str | None
    tracestate: str | None
    referral_id: str
    event_type: str
    org_id: str
    attempts: int


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and is_success(self.status_code)


class WebhookDispatcher:
    def __init__(
        self,
        session_factory: sessionmaker,
        settings: WebhookSettings,
        *,
        guard: UrlGuard | None = None,
        http: requests.Session | None = None,
        batch_size: int = 50,
    ):
        self._sessions = session_factory
        self._settings = settings
        self._guard = guard or UrlGuard(settings.allow_private)
        self._http = http or webhook_session(settings.allow_private)
        self._batch = batch_size
        # Longer than one attempt can take (DNS, connect and read timeouts), so no one else takes the row.
        self._attempt_time = timedelta(seconds=3 * settings.timeout_seconds)
        self._wake = threading.Event()
        self._tracer = tracer(__name__)

    def wake(self) -> None:
        """Called after a handler committed new deliveries: send now rather than at the next poll."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                sent = self.dispatch_due(stop)
                failures = 0
            except OperationalError as exc:
                failures += 1
                delay = DATABASE_OUTAGE.delay(failures)
                log.warning(
                    "database unavailable; dispatcher backing off",
                    extra={"error": exc.__class__.__name__, "retry_in_s": delay},
                )
                stop.wait(delay)
                continue
            if sent == 0:
                self._wake.wait(IDLE_WAIT_SECONDS)

    def dispatch_due(self, stop: threading.Event | None = None) -> int:
        """Send up to one batch of due deliveries, one at a time. Returns how many were attempted."""
        done = 0
        while done < self._batch and not (stop and stop.is_set()):
            claimed = self._claim(min(CLAIM_BATCH, self._batch - done))
            delivered = [self._attempt(delivery) for delivery in claimed]
            done += len(claimed)
            # A short claim means nothing more was due, unless an attempt failed and is due again at once
            # (a retry schedule of 0 s): then look once more rather than at the next wake-up.
            if len(claimed) < CLAIM_BATCH and all(delivered):
                break
        return done

    def _claim(self, limit: int) -> list[_Claimed]:
        """Claim up to `limit` due deliveries in one statement: their lease (next_attempt_at) moves past the time
        their attempts can take, one after another, so no other dispatcher takes them meanwhile."""
        now = utcnow()
        deliveries, subscriptions = Delivery.__table__, Subscription.__table__
        due = (
            select(deliveries.c.id)
            .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
            .where(
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt_at <= now,
                subscriptions.c.deleted_at.is_(None),
            )
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(of=deliveries, skip_locked=True)
        )
        claim = (
            update(cast(Table, deliveries))
            .where(deliveries.c.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + self._attempt_time * limit + LEASE_MARGIN)
            .returning(*deliveries.c)  # SQLite's RETURNING names the updated table only: no join here
        )
        # Polling several times a second would flood the trace backend with root spans of empty claims.
        with suppress_instrumentation(), self._sessions.begin() as session:
            rows = session.execute(claim).all()
            if not rows:
                return []
            wanted = {row.subscription_id for row in rows}
            found = session.execute(
                select(subscriptions.c.id, subscriptions.c.url, subscriptions.c.secret).where(
                    subscriptions.c.id.in_(wanted)
                )
            ).all()
        subscription = {row.id: row for row in found}
        return [
            _Claimed(
                delivery_id=row.id,
                webhook_id=row.webhook_id,
                subscription_id=row.subscription_id,
                url=subscription[row.subscription_id].url,
                secret=subscription[row.subscription_id].secret,
                payload=row.payload,
                traceparent=row.traceparent,
                tracestate=row.tracestate,
                referral_id=row.referral_id,
                event_type=row.event_type,
                org_id=row.org_id,
                attempts=row.attempts,
            )
            for row in sorted(rows, key=lambda row: row.created_at)  # RETURNING keeps no order: oldest first
        ]

    def _attempt(self, claimed: _Claimed) -> bool:
        parent = context_from({"traceparent": claimed.traceparent or "", "tracestate": claimed.tracestate or ""})
        token = otel_context.attach(parent)
        try:
            with self._tracer.start_as_current_span("webhook deliver", kind=trace.SpanKind.CLIENT) as span:
                set_ids(span, referral=claimed.referral_id, event=claimed.event_type, org=claimed.org_id)
                span.set_attribute("webhook.id", claimed.webhook_id)
                span.set_attribute("webhook.attempt", claimed.attempts + 1)
                outcome = self._send(claimed)
                if outcome.status_code is not None:
                    span.set_attribute("http.response.status_code", outcome.status_code)
                if not outcome.delivered:
                    span.set_status(trace.Status(trace.StatusCode.ERROR, outcome.error))
                self._record(claimed, outcome)
                return outcome.delivered
        finally:
            otel_context.detach(token)

    def _send(self, claimed: _Claimed) -> _Outcome:
        try:
            self._guard.check(claimed.url)  # again: DNS may have changed since the subscription was made
        except UnsafeWebhookUrl as exc:
            return _Outcome(None, f"URL refused: the URL {exc}")
        now = utcnow()
        headers = {
            "content-type": "application/json",
            "webhook-id": claimed.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(claimed.secret).sign(claimed.webhook_id, now, claimed.payload),
            "user-agent": USER_AGENT,
        }
        # The requests instrumentation injects the traceparent of its own client span (a child of this
        # one); injecting here too keeps the header when that instrumentation is off.
        propagate.inject(headers)
        timeout = self._settings.timeout_seconds
        try:
            # stream=True: only the status line and headers are read; the body is closed unread.
            with self._http.post(
                claimed.url,
                data=claimed.payload.encode(),
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                code = response.status_code
        except UnsafeWebhookUrl as exc:
            return _Outcome(None, f"URL refused: the URL {exc}")
        except requests.Timeout:
            return _Outcome(None, f"timed out after {timeout:g}s")
        except requests.RequestException as exc:
            return _Outcome(None, f"connection failed: {exc.__class__.__name__}")
        except Exception as exc:  # a broken delivery must not stop the others from being sent
            log.exception("webhook attempt crashed", extra={"delivery_id": claimed.delivery_id})
            return _Outcome(None, f"internal error: {exc.__class__.__name__}")
        if is_success(code):
            return _Outcome(code, None)
        hint = " (redirects are not followed)" if 300 <= code < 400 else ""
        return _Outcome(code, f"HTTP {code}{hint}")

    def _record(self, claimed: _Claimed, outcome: _Outcome) -> None:
        now = utcnow()
        attempts = claimed.attempts + 1
        values: dict[str, object] = {
            "attempts": attempts,
            "last_status_code": outcome.status_code,
            "last_error": outcome.error[:300] if outcome.error else None,
        }
        if outcome.delivered:
            values.update(status=DELIVERED, delivered_at=now, next_attempt_at=None)
        else:
            delay = next_attempt_delay(attempts, self._settings.retry_schedule)
            if delay is None:
                values.update(status=FAILED, next_attempt_at=None)
            else:
                values.update(next_attempt_at=now + timedelta(seconds=delay))
        deliveries = Delivery.__table__  # Core, not the ORM's bulk update: a third of the cost here
        with self._sessions.begin() as session:
            session.execute(
                update(cast(Table, deliveries))
                .where(deliveries.c.id == claimed.delivery_id, deliveries.c.status == PENDING)
                .values(**values)
            )
        extra = {
            "delivery_id": claimed.delivery_id,
            "webhook_id": claimed.webhook_id,
            "subscription_id": claimed.subscription_id,
            "referral_id": claimed.referral_id,
            "event_type": claimed.event_type,
            "attempt": attempts,
            "status": values.get("status", PENDING),
            "status_code": outcome.status_code,
            "error": outcome.error,
        }
        if outcome.delivered:
            log.info("webhook delivered", extra=extra)
        else:
            log.warning("webhook attempt failed", extra=extra)
