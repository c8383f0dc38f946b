"""Rate limits on every API (issue 16): a flood of forged tokens or of referrals is refused, not served.

Three limits, in Flask-Limiter's notation, each answered `429 Too Many Requests` in the Error shape with
`Retry-After` (seconds until the window ends):

- RATE_LIMIT_AUTH_FAILURES (30/minute) per client address: a request whose bearer token is missing or refused
  (any 401) counts. Past it, every request from that address is refused until the window ends, before its token
  is verified: verifying is what a flood of forged tokens costs.
- RATE_LIMIT_DEFAULT (600/minute) per token subject, on every request with a valid token; a request without one
  (the advocate's page, a request about to be refused) counts per client address.
- RATE_LIMIT_REFERRALS (120/minute) per organisation on POST /v1/referrals: each referral can become work in the
  coordinators' queue.

Two Limiters, because before_request functions run in the order they were registered: the address's failures
are checked first, then the second Limiter's key function verifies the token (shared.auth.bearer_principal,
which `requires` then reuses). Fixed windows, so Retry-After is exact. /healthz, /readyz, /metrics, the
documents and Swagger UI are never counted (probes and scrapers must always get through).

Counters live in RATE_LIMIT_STORAGE_URL: `memory://` counts per process (each gunicorn worker apart), Redis
shares them between processes and replicas. When Redis cannot be reached, requests are still served and
counted in memory per process until it answers again (Flask-Limiter's in-memory fallback, retried with
backoff): the limits protect the service, and a limiter outage must not stop referrals.

The client address is the TCP peer's. Behind a load balancer or ingress, set TRUSTED_PROXY_HOPS to the number
of proxies that append to X-Forwarded-For (werkzeug's ProxyFix); with it unset, a proxy's address is every
client's, and a header sent by a client is never believed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from flask import Flask, make_response, request
from flask.wrappers import Response
from flask_limiter import ApplicationLimit, Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from shared.auth import bearer_principal
from shared.config import ConfigError, Settings

log = logging.getLogger(__name__)

UNMETERED_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/asyncapi.json"})
UNMETERED_PREFIXES = ("/docs",)  # Swagger UI and its assets
REFERRALS = ("POST", "/v1/referrals")  # intake's submission, per organisation
RETRY_AFTER_DOC = {
    "description": "Seconds until the limit's window ends and the request may be sent again.",
    "schema": {"type": "integer", "minimum": 1},
}


def address_key() -> str:
    return f"address:{request.remote_addr or 'unknown'}"


def caller_key() -> str:
    """The token's subject when it verifies, else the client address."""
    principal = bearer_principal()
    return f"subject:{principal.sub}" if principal is not None else address_key()


def organisation_key() -> str:
    principal = bearer_principal()
    return f"org:{principal.org}" if principal is not None else address_key()


def unmetered() -> bool:
    return request.path in UNMETERED_PATHS or request.path.startswith(UNMETERED_PREFIXES)


def not_a_referral() -> bool:
    """Exempt from the referrals limit: any other route, and a submission without a valid token (its 401 counts
    toward the address's failures instead)."""
    rule = request.url_rule.rule if request.url_rule is not None else ""
    return (request.method, rule) != REFERRALS or bearer_principal() is None


def refused(response: Response) -> bool:
    return response.status_code == 401


def _no_keys(record: logging.LogRecord) -> bool:
    """Flask-Limiter's INFO line on each breach names the key (a client address, a subject): ours names the limit
    only. Its other lines (storage unreachable, recovered) stay."""
    return not str(record.msg).startswith("ratelimit ")


def init_app(app: Flask, api: Api, settings: Settings) -> None:
    """The API's limits (RATE_LIMIT_*), its 429 answer, and that answer in the OpenAPI document."""
    if settings.trusted_proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops)  # type: ignore[method-assign]
    logging.getLogger("flask-limiter").addFilter(_no_keys)  # once: the same filter is not added twice
    failures = ApplicationLimit(
        settings.rate_limit_auth_failures,
        key_function=address_key,
        scope="auth-failures",
        deduct_when=refused,
        on_breach=_answer(
            "RATE_LIMIT_AUTH_FAILURES", "Too many requests with a missing or invalid token from this address"
        ),
    )
    per_caller = ApplicationLimit(
        settings.rate_limit_default,
        key_function=caller_key,
        scope="caller",
        on_breach=_answer("RATE_LIMIT_DEFAULT", "Too many requests from this caller"),
    )
    referrals = ApplicationLimit(
        settings.rate_limit_referrals,
        key_function=organisation_key,
        scope="referrals",
        exempt_when=not_a_referral,
        on_breach=_answer("RATE_LIMIT_REFERRALS", "Too many referrals from this organisation"),
    )
    for limits in ([failures], [per_caller, referrals]):  # in this order: see the module docstring
        limiter = _limiter(settings, limits)
        limiter.request_filter(unmetered)
        limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _too_many)
    # StandardErrors (shared.web) lists 429 on every operation by flask-smorest's named response (registered
    # lazily: in the document once referenced), which gains the header here.
    components = api.spec.components
    named = components.responses_lazy.get("TOO_MANY_REQUESTS") or components.responses["TOO_MANY_REQUESTS"]
    named.setdefault("headers", {})["Retry-After"] = RETRY_AFTER_DOC


def _limiter(settings: Settings, limits: list[ApplicationLimit]) -> Limiter:
    url = settings.rate_limit_storage_url
    # A Redis that stops answering must not hold requests: give up on it within a second and count in memory.
    options = {"socket_connect_timeout": 1, "socket_timeout": 1} if url.startswith(("redis", "rediss")) else {}
    try:
        return Limiter(
            address_key,
            application_limits=list(limits),
            storage_uri=url,
            storage_options=options,  # type: ignore[arg-type]
            strategy="fixed-window",
            key_prefix=f"{settings.rate_limit_key_prefix}:{settings.service}",
            in_memory_fallback_enabled=True,
            swallow_errors=True,  # a fault in the limiter itself is logged, never a 500
            headers_enabled=False,  # Retry-After on the 429 alone (ours)
        )
    except Exception as exc:  # noqa: BLE001 - limits raises its own ConfigurationError, or the driver's errors
        raise ConfigError(
            f"RATE_LIMIT_STORAGE_URL={url!r} cannot be used ({exc.__class__.__name__}): use memory:// or "
            "redis://host:6379/0"
        ) from None


def _answer(setting: str, message: str) -> Callable[[RequestLimit], Response]:
    """A limit's on_breach: the 429 it answers (Flask-Limiter raises it inside RateLimitExceeded)."""

    def answer(breached: RequestLimit) -> Response:
        retry_after = max(1, math.ceil(breached.window.reset_time - time.time()))
        log.info("rate limit exceeded", extra={"limit": setting, "endpoint": request.endpoint})
        response = make_response(_body(f"{message}: retry in {retry_after} seconds ({setting} is {breached.limit})."))
        response.headers["Retry-After"] = str(retry_after)
        return response

    return answer


def _too_many(error: RateLimitExceeded):
    # The limit's own answer (_answer), where flask-smorest's HTTPException handler would leave out Retry-After.
    return error.response if error.response is not None else _body("Too many requests.")


def _body(message: str) -> tuple[dict, int]:
    # shared.web.error_body's shape (shared.web imports this module, so not that function).
    return {"code": 429, "status": "Too Many Requests", "message": message}, 429
