"""The webhook dispatcher: sends due deliveries, signed, in the trace of the event that caused them.

Standard Webhooks (https://www.standardwebhooks.com/): `webhook-id` is stable across retries,
`webhook-timestamp` is the attempt's time, `webhook-signature` is `v1,<base64 HMAC-SHA256>` over
"id.timestamp.body". A receiver's response body is never read, stored or logged.

Each delivery is *claimed* in a short transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so two
dispatchers never take the same row) that moves its `next_attempt_at` past the time one attempt can take;
the HTTP call runs with no transaction open; a second short transaction records the outcome. A dispatcher
that dies mid-send leaves the row to be retried when that lease ends: at-least-once, and the stable
`webhook-id` lets the receiver drop the duplicate. On SQLite, run a single dispatcher.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

import requests
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker
from standardwebhooks import Webhook

from services.notifications.config import WebhookSettings
from services.notifications.domain import UnsafeWebhookUrl, is_success, next_attempt_delay
from services.notifications.egress import UrlGuard, webhook_session
from services.notifications.models import DELIVERED, FAILED, PENDING, Delivery, Subscription
from shared.outbox import utcnow
from shared.telemetry import context_from, set_ids, tracer

log = logging.getLogger(__name__)

USER_AGENT = "referrals-notifications/1"
IDLE_WAIT_SECONDS = 0.2
LEASE_MARGIN = timedelta(seconds=60)


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
        self._lease = timedelta(seconds=3 * settings.timeout_seconds) + LEASE_MARGIN
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
                delay = min(30.0, 0.5 * 2**failures)
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
            claimed = self._claim()
            if claimed is None:
                break
            self._attempt(claimed)
            done += 1
        return done

    def _claim(self) -> _Claimed | None:
        # Polling several times a second would flood the trace backend with root spans of empty SELECTs.
        with suppress_instrumentation(), self._sessions.begin() as session:
            now = utcnow()
            row = session.execute(
                select(Delivery, Subscription)
                .join(Subscription, Subscription.id == Delivery.subscription_id)
                .where(
                    Delivery.status == PENDING,
                    Delivery.next_attempt_at <= now,
                    Subscription.deleted_at.is_(None),
                )
                .order_by(Delivery.next_attempt_at)
                .limit(1)
                .with_for_update(of=Delivery, skip_locked=True)
            ).first()
            if row is None:
                return None
            delivery, subscription = row
            delivery.next_attempt_at = now + self._lease
            return _Claimed(
                delivery_id=delivery.id,
                webhook_id=delivery.webhook_id,
                subscription_id=subscription.id,
                url=subscription.url,
                secret=subscription.secret,
                payload=delivery.payload,
                traceparent=delivery.traceparent,
                tracestate=delivery.tracestate,
                referral_id=delivery.referral_id,
                event_type=delivery.event_type,
                org_id=delivery.org_id,
                attempts=delivery.attempts,
            )

    def _attempt(self, claimed: _Claimed) -> None:
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
        with self._sessions.begin() as session:
            session.execute(
                update(Delivery).where(Delivery.id == claimed.delivery_id, Delivery.status == PENDING).values(**values)
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
