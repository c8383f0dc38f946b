"""The webhook dispatcher: sends due deliveries, signed, in the trace of the event that caused them.

Standard Webhooks (https://www.standardwebhooks.com/): `webhook-id` is stable across retries and
redeliveries, `webhook-timestamp` is the attempt's time, `webhook-signature` is `v1,<base64 HMAC-SHA256>` over
"id.timestamp.body" (twice, space-separated, while a rotated secret's predecessor is still valid). A
receiver's response body is never read, stored or logged. Each attempt recorded is counted once in
`referrals_webhook_deliveries_total` by its outcome (`counted_as`).

Each delivery is claimed on its own, sent, and its outcome recorded at once. The claim is one short statement
(an UPDATE of a row whose lease has run out, picked `FOR UPDATE SKIP LOCKED` on PostgreSQL so several
dispatchers never take the same row; SQLite runs a statement at a time) that moves its `next_attempt_at` to
the end of a lease: the attempt's timeout and a few seconds. That lease is also the claim's token: a failed
attempt is recorded only while the row still carries it. So a dispatcher that dies, or loses its database,
mid-send delays only the delivery in flight, which another dispatcher (or this one, restarted) takes again
seconds later, with the same `webhook-id` for the receiver to drop the duplicate; nothing else waits on it.
`WEBHOOK_CONCURRENCY` lanes send at once, so a receiver that times out holds up one lane, not every webhook. A
commit of new deliveries wakes one idle lane, and each lane that claims one wakes the next, so lanes join in as
there is work; idle, each looks for a retry falling due or a lapsed lease every IDLE_WAIT_SECONDS.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import requests
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_http_instrumentation, suppress_instrumentation
from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker
from standardwebhooks import Webhook
from urllib3.util import Timeout

from services.notifications.config import WebhookSettings
from services.notifications.domain import UnsafeWebhookUrl, is_success, next_attempt_delay, signing_secrets
from services.notifications.egress import UrlGuard, webhook_session
from services.notifications.models import DELIVERED, FAILED, PENDING, Delivery, Subscription
from shared import metrics
from shared.clock import utcnow
from shared.db import UTCDateTime
from shared.health import HEALTH
from shared.retry import DATABASE_OUTAGE
from shared.telemetry import context_from, set_ids, tracer

log = logging.getLogger(__name__)

USER_AGENT = "referrals-notifications/1"
IDLE_WAIT_SECONDS = 0.2
# Beyond the attempt's timeout: the URL check's DNS lookup, and recording the outcome.
LEASE_MARGIN = timedelta(seconds=5)
# Recording an outcome again after a dropped connection, within the lease: a blip costs no second send.
RECORD_RETRY_SECONDS = (0.2, 0.5, 1.0)


@dataclass(frozen=True)
class _Claimed:
    delivery_id: str
    webhook_id: str
    subscription_id: str
    url: str
    secrets: tuple[str, ...]
    payload: str
    traceparent: str | None
    tracestate: str | None
    referral_id: str | None
    event_type: str
    org_id: str
    attempts: int
    lease: datetime  # the row's next_attempt_at while this claim holds it


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None
    refused: bool = False  # the SSRF guard refused the receiver's address: nothing was sent

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and is_success(self.status_code)


# What referrals_webhook_deliveries_total's `outcome` label holds (deploy/prometheus/alerts.yml selects on them).
OUTCOME_DELIVERED, OUTCOME_RETRIED, OUTCOME_FAILED, OUTCOME_REFUSED = "delivered", "retried", "failed", "refused"


def counted_as(outcome: _Outcome, *, gave_up: bool) -> str:
    """An attempt's outcome as referrals_webhook_deliveries_total counts it, exactly one of four: delivered; failed
    when it was the last attempt (the delivery is given up, whatever the reason); refused when the receiver's
    address is not allowed (a subscription or DNS to fix), tried again later; otherwise retried."""
    if outcome.delivered:
        return OUTCOME_DELIVERED
    if gave_up:
        return OUTCOME_FAILED
    return OUTCOME_REFUSED if outcome.refused else OUTCOME_RETRIED


def _statements():
    """The dispatcher's four statements, built once: SQLAlchemy memoizes a statement's cache key on the object,
    where building them per claim spent a fifth of the worker's time making the same key again."""
    deliveries, subscriptions = cast(Table, Delivery.__table__), cast(Table, Subscription.__table__)
    now = bindparam("now", type_=UTCDateTime())
    # A referral's webhooks reach a subscriber in the order their events happened: one is claimable only
    # when no earlier one of the same referral to the same subscription is still pending (retrying, or held
    # by another lane). Without it, lanes coming back from an outage together sent a referral's
    # `referral.received` and `referral.allocated` at once, and the second could arrive first.
    earlier = deliveries.alias("earlier")
    waits_behind = (
        select(earlier.c.id)
        .where(
            earlier.c.subscription_id == deliveries.c.subscription_id,
            earlier.c.referral_id == deliveries.c.referral_id,  # NULL (a ping) waits behind nothing
            earlier.c.status == PENDING,
            or_(
                earlier.c.created_at < deliveries.c.created_at,
                and_(earlier.c.created_at == deliveries.c.created_at, earlier.c.id < deliveries.c.id),
            ),
        )
        .exists()
    )
    due = (
        select(deliveries.c.id)
        .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
        .where(
            deliveries.c.status == PENDING,
            deliveries.c.next_attempt_at <= now,
            subscriptions.c.deleted_at.is_(None),
            ~waits_behind,
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(1)
        .with_for_update(of=deliveries, skip_locked=True)
    )
    claim = (
        update(deliveries)
        # `=`, not IN: a scalar subquery runs once (an InitPlan); PostgreSQL may run an IN's again per row and
        # claim several. The conditions again: PostgreSQL re-checks them on the row as it is when locked.
        .where(
            deliveries.c.id == due.scalar_subquery(),
            deliveries.c.status == PENDING,
            deliveries.c.next_attempt_at <= now,
        )
        .values(next_attempt_at=bindparam("lease", type_=UTCDateTime()))
        .returning(*deliveries.c)  # SQLite's RETURNING names the updated table only: no join here
    )
    signing = select(
        subscriptions.c.url,
        subscriptions.c.secret,
        subscriptions.c.previous_secret,
        subscriptions.c.previous_secret_expires_at,
    ).where(subscriptions.c.id == bindparam("subscription_id"))
    outcome = {
        "attempts": bindparam("attempt"),
        "last_status_code": bindparam("status_code"),
        "last_error": bindparam("error"),
    }
    pending = (deliveries.c.id == bindparam("delivery_id"), deliveries.c.status == PENDING)
    # A delivery is a fact, recorded whoever holds the row.
    delivered = (
        update(deliveries)
        .where(*pending)
        .values(**outcome, status=DELIVERED, delivered_at=bindparam("at", type_=UTCDateTime()), next_attempt_at=None)
    )
    # A failed attempt only while this claim holds the row: if it lapsed and another dispatcher took it, that
    # one's outcome is the row's.
    attempt = (
        update(deliveries)
        .where(*pending, deliveries.c.next_attempt_at == bindparam("lease", type_=UTCDateTime()))
        .values(
            **outcome,
            status=bindparam("outcome"),
            next_attempt_at=bindparam("next_attempt", type_=UTCDateTime()),
        )
    )
    return claim, signing, delivered, attempt


_CLAIM, _SIGNING, _RECORD_DELIVERED, _RECORD_ATTEMPT = _statements()


class WebhookDispatcher:
    def __init__(
        self,
        session_factory: sessionmaker,
        settings: WebhookSettings,
        *,
        guard: UrlGuard | None = None,
        http: Callable[[], requests.Session] | None = None,
        batch_size: int = 50,
    ):
        """`http` makes each lane's HTTP session (requests Sessions are not shared across threads)."""
        self._sessions = session_factory
        self._settings = settings
        self._guard = guard or UrlGuard(settings.allow_private)
        self._new_http = http or functools.partial(webhook_session, settings.allow_private)
        self._local = threading.local()
        self._batch = batch_size
        # The whole attempt (connect, send, the status line) within the timeout, so the lease can be short.
        self._timeout = Timeout(total=settings.timeout_seconds)
        self.lease = timedelta(seconds=settings.timeout_seconds) + LEASE_MARGIN
        # wake() rouses one idle lane, and a lane that claims a delivery rouses the next: lanes join in as there
        # is work, where one Event set after each commit sent every lane to claim, all but one finding nothing.
        self._signal = threading.Condition()
        self._woken = False
        self._tracer = tracer(__name__)

    def wake(self) -> None:
        """Called after a handler committed new deliveries: send now rather than at the next poll."""
        with self._signal:
            self._woken = True
            self._signal.notify()

    def _idle(self) -> None:
        """Wait for a wake, or for the next poll (a retry falling due, a lapsed lease, another process's rows)."""
        with self._signal:
            if not self._woken:
                self._signal.wait(IDLE_WAIT_SECONDS)
            self._woken = False

    def run(self, stop: threading.Event) -> None:
        """The worker's loop: `WEBHOOK_CONCURRENCY` lanes, each claiming, sending and recording one delivery at
        a time, until `stop` is set."""
        for outcome in (OUTCOME_DELIVERED, OUTCOME_RETRIED, OUTCOME_FAILED, OUTCOME_REFUSED):
            metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome)  # each at 0 from the start: increase() sees the first
        lanes = [
            threading.Thread(target=self._lane, args=(stop,), name=f"webhook-lane-{n}", daemon=True)
            for n in range(1, self._settings.concurrency)
        ]
        for lane in lanes:
            lane.start()
        try:
            self._lane(stop)
        finally:
            for lane in lanes:
                lane.join(timeout=self._settings.timeout_seconds + 5)

    def _lane(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                sent = self.dispatch_due(stop)
                failures = 0
                HEALTH.up("database")
            except OperationalError as exc:
                HEALTH.down("database", exc.__class__.__name__)
                failures += 1
                delay = DATABASE_OUTAGE.delay(failures)
                log.warning(
                    "database unavailable; dispatcher backing off",
                    extra={"error": exc.__class__.__name__, "retry_in_s": delay},
                )
                stop.wait(delay)
                continue
            if sent == 0:
                self._idle()

    def dispatch_due(self, stop: threading.Event | None = None) -> int:
        """Send due deliveries one at a time, each claimed, sent and recorded before the next, until none is due
        or a batch is done. Returns how many were attempted."""
        done = 0
        while done < self._batch and not (stop and stop.is_set()):
            claimed = self._claim()
            if claimed is None:
                break
            self._attempt(claimed)
            done += 1
        return done

    def _http(self) -> requests.Session:
        if not hasattr(self._local, "http"):
            self._local.http = self._new_http()
        return self._local.http

    def _claim(self) -> _Claimed | None:
        """Claim the delivery due first, if any: its lease (next_attempt_at) moves past the time its attempt can
        take, so no other dispatcher takes it meanwhile, and back to due within seconds if this one dies."""
        now = utcnow()
        lease = now + self.lease
        # Polling several times a second would flood the trace backend with root spans of empty claims.
        with suppress_instrumentation(), self._sessions.begin() as session:
            connection = session.connection()  # Core: the ORM's execution machinery was a third of a claim's cost
            row = connection.execute(_CLAIM, {"now": now, "lease": lease}).first()
            if row is None:
                return None
            subscription = connection.execute(_SIGNING, {"subscription_id": row.subscription_id}).one()
        self.wake()  # committed: there may be more, and the next idle lane looks
        return _Claimed(
            delivery_id=row.id,
            webhook_id=row.webhook_id,
            subscription_id=row.subscription_id,
            url=subscription.url,
            secrets=signing_secrets(
                subscription.secret, subscription.previous_secret, subscription.previous_secret_expires_at, now
            ),
            payload=row.payload,
            traceparent=row.traceparent,
            tracestate=row.tracestate,
            referral_id=row.referral_id,
            event_type=row.event_type,
            org_id=row.org_id,
            attempts=row.attempts,
            lease=lease,
        )

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
            return _Outcome(None, f"URL refused: the URL {exc}", refused=True)
        now = utcnow()
        headers = {
            "content-type": "application/json",
            "webhook-id": claimed.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            # Standard Webhooks: several signatures, space-delimited; the receiver accepts the webhook if one verifies.
            "webhook-signature": " ".join(
                Webhook(secret).sign(claimed.webhook_id, now, claimed.payload) for secret in claimed.secrets
            ),
            "user-agent": USER_AGENT,
        }
        # This attempt's span is the HTTP client span: the header carries it, and the requests
        # instrumentation makes no second one inside it (issue 17: one span per HTTP request).
        propagate.inject(headers)
        timeout = self._settings.timeout_seconds
        try:
            # stream=True: only the status line and headers are read; the body is closed unread.
            with (
                suppress_http_instrumentation(),
                self._http().post(
                    claimed.url,
                    data=claimed.payload.encode(),
                    headers=headers,
                    timeout=self._timeout,  # type: ignore[arg-type]  # requests passes urllib3 Timeouts on as they are
                    allow_redirects=False,
                    stream=True,
                ) as response,
            ):
                code = response.status_code
        except UnsafeWebhookUrl as exc:  # connected to a non-public address (DNS rebinding)
            return _Outcome(None, f"URL refused: the URL {exc}", refused=True)
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
        # The names of _RECORD_*'s parameters (a SET's parameter may not share its column's name).
        values: dict[str, object] = {
            "delivery_id": claimed.delivery_id,
            "attempt": attempts,
            "status_code": outcome.status_code,
            "error": outcome.error[:300] if outcome.error else None,
        }
        gave_up = False
        if outcome.delivered:
            statement, status = _RECORD_DELIVERED, DELIVERED
            values["at"] = now
        else:
            statement = _RECORD_ATTEMPT
            delay = next_attempt_delay(attempts, self._settings.retry_schedule)
            gave_up = delay is None
            status = FAILED if gave_up else PENDING
            values.update(
                outcome=status,
                next_attempt=None if delay is None else now + timedelta(seconds=delay),
                lease=claimed.lease,
            )
        recorded = self._execute_retrying(statement, values)
        extra = {
            "delivery_id": claimed.delivery_id,
            "webhook_id": claimed.webhook_id,
            "subscription_id": claimed.subscription_id,
            "referral_id": claimed.referral_id,
            "event_type": claimed.event_type,
            "attempt": attempts,
            "status": status,
            "status_code": outcome.status_code,
            "error": outcome.error,
        }
        if recorded:  # else the row's outcome is another attempt's, counted by whoever made it
            metrics.WEBHOOK_DELIVERIES.labels(outcome=counted_as(outcome, gave_up=gave_up)).inc()
        if not recorded:
            log.warning("webhook outcome not recorded: the claim lapsed and the row moved on", extra=extra)
        elif outcome.delivered:
            log.info("webhook delivered", extra=extra)
        else:
            log.warning("webhook attempt failed", extra=extra)

    def _execute_retrying(self, statement, values: dict[str, object]) -> bool:
        """Run the outcome's UPDATE, again after a dropped connection (within the lease); whether it changed the
        row. Still failing, the OperationalError goes to the lane, and the row is taken again when its lease ends."""
        for wait in RECORD_RETRY_SECONDS:
            try:
                return self._execute(statement, values)
            except OperationalError:
                time.sleep(wait)
        return self._execute(statement, values)

    def _execute(self, statement, values: dict[str, object]) -> bool:
        with self._sessions.begin() as session:
            return bool(session.connection().execute(statement, values).rowcount)
