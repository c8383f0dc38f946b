"""Webhook rules: which events, what a receiver may see, where we may send it, and when to try again.

Pure functions: no Flask, no SQLAlchemy, no network (the DNS resolver is passed in).
Webhooks follow Standard Webhooks: https://www.standardwebhooks.com/
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from contracts.events import CATALOGUE, NOTIFICATIONS, ReferralErasureRequested

# Sent to notifications itself, never passed on: an erasure request is for notifications' own copy.
OWN_BUSINESS = (ReferralErasureRequested,)
# The webhook types: every other event the catalogue sends notifications (contracts.events).
EVENT_TYPES = tuple(e.name for e in CATALOGUE.consumed_by(NOTIFICATIONS) if e.data not in OWN_BUSINESS)

# Sent to the organisation named as a transition's receiving agency too (when it subscribes to them), not
# only to the referring organisation: the agency taking a survivor on must hear of the plan.
RECEIVING_AGENCY_EVENTS = ("transition.planned", "transition.completed", "transition.missed")

# Sent to a child's local authority too (the children's services intake resolved from the child's ONS code,
# an event's `local_authority_org_id`), when it subscribes: the child's referral and allocation, turning 18
# (a transition of kind turning_18 only), lost contact and a high risk (issue 13). Children's services lead
# for a child (Children Act 1989 s17 and s47): they must hear of these, and of nothing else.
LOCAL_AUTHORITY_EVENTS = (
    "referral.received",
    "referral.allocated",
    "transition.planned",
    "transition.completed",
    "transition.missed",
    "case.contact_overdue",
    "case.risk_raised",
)
LOCAL_AUTHORITY_TRANSITION_KINDS = ("turning_18",)


def local_authority_recipient(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The child's local authority org this event also goes to, or None."""
    org_id = data.get("local_authority_org_id")
    if not isinstance(org_id, str) or event_type not in LOCAL_AUTHORITY_EVENTS:
        return None
    if event_type.startswith("transition.") and data.get("kind") not in LOCAL_AUTHORITY_TRANSITION_KINDS:
        return None
    return org_id


# What an agency's webhook may carry beyond referral_id, external_reference and status. A whitelist, not a
# blacklist: a field added to an event later (or a bug upstream) cannot leak personal data to a receiver.
WEBHOOK_EXTRA_KEYS = (
    "provider_id",
    "case_id",
    "pathway",
    "reason",
    "is_child",
    "outcome",  # case.closed: a code (contracts.events.ClosureOutcome)
    "purpose",  # referral.consent_withdrawn: a code (contracts.events.ConsentPurpose)
    # clock.* and transition.*: ids, kinds and dates only.
    "clock_id",
    "transition_id",
    "kind",
    "due_on",
    "planned_for",
    "date_basis",
    "receiving_agency",
    "receiving_provider_id",
    # case.contact_overdue and case.risk_raised (issue 13): dates, an id and codes.
    "counted_from",
    "risk_id",
    "level",
)

MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
# Standard Webhooks: symmetric secrets are 24 to 64 random bytes, sent base64-encoded after "whsec_".
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64
GENERATED_SECRET_BYTES = 32

# The waits between attempts: 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, then a day three times; the last
# attempt is made about 3.9 days after the first, so an agency's endpoint down over a long weekend still gets
# every webhook once it is back (and `POST .../redelivery` resends what failed even so).
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (10, 60, 300, 1800, 7200, 21600, 43200, 86400, 86400, 86400)

# A test delivery an org asks for (POST /v1/subscriptions/{id}/ping), sent to a subscription whatever its
# event types: signed and sent like any webhook.
PING = "webhook.ping"

Resolver = Callable[[str, int], Iterable[str]]


# --- secrets ------------------------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_SECRET_BYTES)).decode()


def signing_secrets(
    secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The secrets a webhook sent at `now` is signed with: the current one, and during a rotation's overlap the
    previous one too, so a receiver verifies with either while it changes over (Standard Webhooks: the
    signature header may carry several space-delimited signatures)."""
    if previous and previous_expires_at is not None and now < previous_expires_at:
        return (secret, previous)
    return (secret,)


def secret_problem(secret: str) -> str | None:
    """Why `secret` cannot sign webhooks, or None when it can."""
    if not secret.startswith(SECRET_PREFIX):
        return f"must start with {SECRET_PREFIX!r}"
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return f"must be {SECRET_PREFIX!r} followed by valid base64"
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        return f"must encode {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes (it encodes {len(key)})"
    return None


# --- the payload --------------------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    # Nested objects could smuggle anything (an advocate's name, a person); ids and flags are scalars.
    return value is None or isinstance(value, str | int | float | bool)


def webhook_body(
    event_type: str,
    occurred_at: str,
    data: Mapping[str, Any],
    *,
    referral_id: str,
    external_reference: str | None,
) -> dict[str, Any]:
    """The webhook body: `{type, timestamp, data: {referral_id, external_reference, status, ...}}`.

    Only whitelisted keys leave the platform; never names, dates of birth, contact details or narrative.
    """
    status = data.get("status")
    body_data: dict[str, Any] = {
        "referral_id": referral_id,
        "external_reference": external_reference,
        "status": status if _scalar(status) else None,
    }
    for key in WEBHOOK_EXTRA_KEYS:
        if key in data and _scalar(data[key]):
            body_data[key] = data[key]
    return {"type": event_type, "timestamp": occurred_at, "data": body_data}


def ping_body(subscription_id: str, sent_at: str) -> dict[str, Any]:
    """`webhook.ping`'s body: the same envelope as every webhook, naming only the subscription."""
    return {"type": PING, "timestamp": sent_at, "data": {"subscription_id": subscription_id}}


def webhook_id(event_id: str, subscription_id: str) -> str:
    """Stable per (event, subscription): a retry or a redelivered event carries the same `webhook-id`, so a
    receiver can drop duplicates (Standard Webhooks: "webhook-id ... the same when a message is retried")."""
    return f"msg_{event_id}_{subscription_id}"


# --- retries ------------------------------------------------------------------------------------------


def parse_retry_schedule(raw: str) -> tuple[float, ...]:
    """`"5,30,120"` -> (5.0, 30.0, 120.0): the waits between attempts. Raises ValueError when malformed."""
    parts = [part.strip() for part in raw.split(",")]
    if not raw.strip() or any(not part for part in parts):
        raise ValueError("expected comma-separated seconds, e.g. 5,30,120")
    delays = tuple(float(part) for part in parts)
    if any(not math.isfinite(delay) or delay < 0 for delay in delays):
        raise ValueError("delays must be finite and zero or more seconds")
    return delays


def max_attempts(schedule: Sequence[float]) -> int:
    return len(schedule) + 1


def schedule_span(schedule: Sequence[float]) -> float:
    """Seconds from a delivery's first attempt to its last."""
    return float(sum(schedule))


def next_attempt_delay(attempts_made: int, schedule: Sequence[float]) -> float | None:
    """Seconds to wait after the `attempts_made`-th failed attempt; None when that was the last one."""
    if attempts_made < 1:
        raise ValueError("attempts_made counts failed attempts and starts at 1")
    if attempts_made > len(schedule):
        return None
    return float(schedule[attempts_made - 1])


def is_success(status_code: int) -> bool:
    # Redirects are not followed (a 3xx could point anywhere, including inside our network): not delivered.
    return 200 <= status_code < 300


# --- the SSRF guard -----------------------------------------------------------------------------------


class UnsafeWebhookUrl(ValueError):
    """The URL may not receive webhooks; the message completes "The URL ..."."""


def address_problem(address: str) -> str | None:
    """What kind of non-public address this is (e.g. "a loopback"), or None for a public one."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    except ValueError:
        return "an unparseable"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 (::ffff:10.0.0.1, 6to4 2002:a00:1::) is judged as that IPv4 address.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            problem = address_problem(str(embedded))
            if problem:
                return problem
    checks = (
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("an unspecified", ip.is_unspecified),
        ("a reserved", ip.is_reserved),
        ("a private", ip.is_private),
        ("a non-public", not ip.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def check_webhook_url(url: str, *, allow_private: bool, resolve: Resolver) -> None:
    """Raise UnsafeWebhookUrl unless webhooks may be sent to `url`.

    Production: https only, and every address the host resolves to must be public - otherwise a
    subscriber could make us POST into our own network (SSRF, OWASP API7:2023). `allow_private` (dev and
    tests) also accepts http and any address. Checked at subscription and again before each delivery,
    because DNS answers change.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"must be at most {MAX_URL_LENGTH} characters")
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise UnsafeWebhookUrl("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeWebhookUrl("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_private and scheme == "http"):
        raise UnsafeWebhookUrl("must use https" if not allow_private else "must use http or https")
    host = parts.hostname
    if not host:
        raise UnsafeWebhookUrl("must name a host")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and responses; the signature authenticates us instead.
        raise UnsafeWebhookUrl("must not contain credentials (user:password@)")
    if allow_private:
        return
    addresses = list(resolve(host, port or 443))
    if not addresses:
        raise UnsafeWebhookUrl("has a host name that does not resolve")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            # The address itself is not echoed: the API must not become a scanner of internal DNS.
            raise UnsafeWebhookUrl(f"resolves to {problem} address; webhooks go to public addresses only")
