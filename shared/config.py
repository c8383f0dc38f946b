"""Configuration from the environment: one frozen object built once in each entrypoint."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from limits import parse_many

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/%2F"
VAR_DIR = Path(os.environ.get("REFERRALS_VAR_DIR", "var"))


class ConfigError(Exception):
    """A setting is missing or malformed: the message names the variable and the fix."""


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def env_positive(env: Mapping[str, str], name: str, default: float, *, unit: str = "") -> float:
    """A number above 0 (`unit` names it in the message, e.g. "seconds")."""
    value = env_float(env, name, default)
    if value <= 0:
        raise ConfigError(f"{name}={value} must be above 0" + (f" {unit}" if unit else ""))
    return value


def env_rate(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate limit in Flask-Limiter's notation: a count per second, minute, hour or day (`30/minute`, `5 per 2
    minutes`), or several separated by `;` (`10/second;600/minute`), each allowing at least one request."""
    raw = (env.get(name) or "").strip() or default
    try:
        rates = parse_many(raw)
    except ValueError:
        rates = []
    if not rates or any(rate.amount < 1 for rate in rates):
        raise ConfigError(
            f"{name}={raw!r} is not a rate limit: use a count of at least 1 per second, minute, hour or day, "
            f"e.g. {default}"
        )
    return raw


# limits' storage schemes for the backends this project installs (memory, and Redis by redis-py).
RATE_LIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")


def env_rate_storage(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or "").strip() or default
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in RATE_LIMIT_STORAGE_SCHEMES:
        raise ConfigError(
            f"{name}={raw!r} is not a rate-limit storage: use memory:// (one process) or redis://host:6379/0 "
            f"(shared by every process; also {', '.join(RATE_LIMIT_STORAGE_SCHEMES[2:])})"
        )
    return raw


@dataclass(frozen=True)
class Settings:
    """What every service reads. Service-specific settings live beside the service."""

    service: str
    database_url: str
    amqp_url: str = DEFAULT_AMQP_URL
    auth_public_key_file: str = str(VAR_DIR / "keys" / "dev-public.pem")
    auth_jwks_url: str = ""
    auth_issuer: str = "referrals-dev"
    auth_audience: str = "referrals"
    # Dev and tests only: lets a service sign its own service token. In production a service gets its
    # token from the identity provider by client credentials (AUTH_TOKEN_URL).
    auth_private_key_file: str = ""
    auth_token_url: str = ""
    auth_client_id: str = ""
    auth_client_secret: str = ""
    # Messaging reliability (RabbitMQ 3.10 quorum queues have no default delivery limit).
    delivery_limit: int = 5
    max_attempts: int = 5
    retry_delay_ms: int = 2000
    prefetch: int = 20
    consumer_lanes: int = 1
    # At most this many messages a lane has waiting are handled in one transaction (1: one per message).
    batch_size: int = 20
    outbox_poll_interval: float = 0.05
    declare_exchanges: bool = True  # false for a charity's restricted broker user (deploy/rabbitmq/)
    max_body_bytes: int = 256 * 1024
    # How long a message whose handler meets an unavailable dependency (its database, another service's
    # API, the broker) is retried in place, in order, before it counts as failed (shared.messaging.consumer).
    transient_retry_hours: float = 24.0
    # How long a consumer holds such a message in place before moving it to its holding queue.
    transient_hold_seconds: float = 120.0
    # Scale-out by partitions (shared.messaging.partitions): intake's and notifications' queue as this many
    # single-active-consumer partitions (1: one queue, as before); this worker is WORKER_INDEX of WORKER_COUNT,
    # active first on its own share, standby on the rest after `partition_standby_seconds`.
    partitions: int = 1
    worker_index: int = 0
    worker_count: int = 1
    partition_standby_seconds: float = 5.0
    # Where a worker serves /healthz and /readyz (0: no health server).
    worker_port: int = 0
    # Rate limits (shared.ratelimit): where the counters live, and the limits in Flask-Limiter's notation.
    rate_limit_storage_url: str = "memory://"
    rate_limit_key_prefix: str = "referrals"
    rate_limit_auth_failures: str = "30/minute"  # per client address: requests whose bearer token is refused
    rate_limit_default: str = "600/minute"  # per token subject (per client address without a token)
    rate_limit_referrals: str = "120/minute"  # per organisation, on POST /v1/referrals
    # How many proxies in front of the API append to X-Forwarded-For (0: the client address is the peer's).
    trusted_proxy_hops: int = 0
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """`AMQP_URL` may list several nodes of one cluster, comma-separated: clients try them in turn."""
        return tuple(u.strip() for u in self.amqp_url.split(",") if u.strip())

    @property
    def trusted_publishers(self) -> frozenset[str]:
        """Broker users that may speak for any party: this platform's own user (one shared user in dev and
        compose) and any named in AMQP_TRUSTED_PUBLISHERS. A party's instance publishes as its own broker user
        and speaks only for that party (shared.messaging.catalogue.Voice; deploy/rabbitmq/add-provider.sh)."""
        own = unquote(urlsplit(self.amqp_urls[0]).username or "guest")
        extra = {u.strip() for u in self.env.get("AMQP_TRUSTED_PUBLISHERS", "").split(",") if u.strip()}
        return frozenset({own, *extra})

    @classmethod
    def from_env(
        cls, service: str, env: Mapping[str, str] | None = None, *, database_file: str | None = None
    ) -> Settings:
        """`<SERVICE>_DATABASE_URL`, else a SQLite file under VAR_DIR: `database_file` if given (a service
        that runs one instance per party names it after the instance), else `<service>.db`."""
        env = dict(os.environ if env is None else env)
        db_var = f"{service.upper()}_DATABASE_URL"
        default_db = f"sqlite:///{VAR_DIR / (database_file or service + '.db')}"
        return cls(
            service=service,
            database_url=env.get(db_var) or default_db,
            amqp_url=env.get("AMQP_URL") or DEFAULT_AMQP_URL,
            auth_public_key_file=env.get("AUTH_PUBLIC_KEY_FILE") or str(VAR_DIR / "keys" / "dev-public.pem"),
            auth_jwks_url=env.get("AUTH_JWKS_URL", ""),
            auth_issuer=env.get("AUTH_ISSUER") or "referrals-dev",
            auth_audience=env.get("AUTH_AUDIENCE") or "referrals",
            auth_private_key_file=env.get("AUTH_PRIVATE_KEY_FILE", ""),
            auth_token_url=env.get("AUTH_TOKEN_URL", ""),
            auth_client_id=env.get("AUTH_CLIENT_ID", ""),
            auth_client_secret=env.get("AUTH_CLIENT_SECRET", ""),
            delivery_limit=env_int(env, "AMQP_DELIVERY_LIMIT", 5, minimum=1),
            max_attempts=env_int(env, "AMQP_MAX_ATTEMPTS", 5, minimum=1),
            retry_delay_ms=env_int(env, "AMQP_RETRY_DELAY_MS", 2000, minimum=1),
            prefetch=env_int(env, "AMQP_PREFETCH", 20, minimum=1),
            consumer_lanes=env_int(env, "AMQP_CONSUMER_LANES", 1, minimum=1),
            batch_size=env_int(env, "AMQP_BATCH_SIZE", 20, minimum=1),
            outbox_poll_interval=env_float(env, "OUTBOX_POLL_INTERVAL", 0.05),
            declare_exchanges=env_bool(env, "AMQP_DECLARE_EXCHANGES", True),
            max_body_bytes=env_int(env, "MAX_BODY_BYTES", 256 * 1024, minimum=1024),
            transient_retry_hours=env_positive(env, "TRANSIENT_RETRY_HOURS", 24.0, unit="hours"),
            transient_hold_seconds=env_positive(env, "TRANSIENT_HOLD_SECONDS", 120.0, unit="seconds"),
            partitions=env_int(env, "AMQP_PARTITIONS", 1, minimum=1),
            worker_index=_worker_index(env),
            worker_count=env_int(env, "WORKER_COUNT", 1, minimum=1),
            partition_standby_seconds=env_float(env, "AMQP_STANDBY_DELAY_SECONDS", 5.0),
            worker_port=env_int(env, "WORKER_PORT", 0, minimum=0),
            rate_limit_storage_url=env_rate_storage(env, "RATE_LIMIT_STORAGE_URL", "memory://"),
            rate_limit_key_prefix=env.get("RATE_LIMIT_KEY_PREFIX") or "referrals",
            rate_limit_auth_failures=env_rate(env, "RATE_LIMIT_AUTH_FAILURES", "30/minute"),
            rate_limit_default=env_rate(env, "RATE_LIMIT_DEFAULT", "600/minute"),
            rate_limit_referrals=env_rate(env, "RATE_LIMIT_REFERRALS", "120/minute"),
            trusted_proxy_hops=env_int(env, "TRUSTED_PROXY_HOPS", 0, minimum=0),
            env=env,
        )


def _worker_index(env: Mapping[str, str]) -> int:
    """WORKER_INDEX, below WORKER_COUNT. A StatefulSet's pod names end in their ordinal (`intake-worker-1`): a
    value like that counts as its ordinal, so the pod's own name may be given (deploy/k8s)."""
    raw = (env.get("WORKER_INDEX") or "").strip()
    if raw and not raw.isdigit() and "-" in raw:
        raw = raw.rsplit("-", 1)[1]
    index = env_int({"WORKER_INDEX": raw}, "WORKER_INDEX", 0, minimum=0)
    count = env_int(env, "WORKER_COUNT", 1, minimum=1)
    if index >= count:
        raise ConfigError(f"WORKER_INDEX={index} must be below WORKER_COUNT={count}: number them 0 to {count - 1}")
    return index


def wants_worker_in_api(env: Mapping[str, str] | None = None) -> bool:
    """WORKER_IN_API: whether a service's API runs its worker loops in its one gunicorn worker. Here, where
    gunicorn's master can read it without loading the messaging kit (deploy/gunicorn.conf.py)."""
    value = (os.environ if env is None else env).get("WORKER_IN_API", "false").strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ConfigError(f"WORKER_IN_API must be true or false, not {value!r}")
    return value in ("true", "1", "yes")
