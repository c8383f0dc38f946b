"""The notifications service's own settings (WEBHOOK_*), read from the same environment as shared Settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.notifications.domain import DEFAULT_RETRY_SCHEDULE, parse_retry_schedule
from shared.config import ConfigError, env_bool, env_float, env_int

MAX_OVERLAP_HOURS = 24 * 30
MAX_CONCURRENCY = 32


@dataclass(frozen=True)
class WebhookSettings:
    # Dev and tests only: accept http and private/loopback addresses (the SSRF guard is off).
    allow_private: bool = False
    # The whole of one attempt: connecting, sending, and the receiver's status line.
    timeout_seconds: float = 10.0
    # Seconds to wait between attempts; after the last wait's attempt fails the delivery is `failed`.
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    # After a secret rotation, how long webhooks are signed with the previous secret too.
    secret_overlap_hours: float = 24.0
    # Deliveries the dispatcher sends at once: a receiver that times out holds up one lane, not every webhook.
    concurrency: int = 4

    @property
    def secret_overlap(self) -> timedelta:
        return timedelta(hours=self.secret_overlap_hours)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        timeout = env_float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0)
        if not 0 < timeout <= 300:
            raise ConfigError(f"WEBHOOK_TIMEOUT_SECONDS={timeout} must be above 0 and at most 300")
        raw_schedule = env.get("WEBHOOK_RETRY_SCHEDULE") or ",".join(f"{d:g}" for d in DEFAULT_RETRY_SCHEDULE)
        try:
            schedule = parse_retry_schedule(raw_schedule)
        except ValueError as exc:
            raise ConfigError(f"WEBHOOK_RETRY_SCHEDULE={raw_schedule!r}: {exc}") from None
        overlap = env_float(env, "WEBHOOK_SECRET_OVERLAP_HOURS", 24.0)
        if not 0 <= overlap <= MAX_OVERLAP_HOURS:
            raise ConfigError(f"WEBHOOK_SECRET_OVERLAP_HOURS={overlap} must be from 0 to {MAX_OVERLAP_HOURS}")
        concurrency = env_int(env, "WEBHOOK_CONCURRENCY", 4, minimum=1)
        if concurrency > MAX_CONCURRENCY:
            raise ConfigError(f"WEBHOOK_CONCURRENCY={concurrency} must be at most {MAX_CONCURRENCY}")
        return cls(
            allow_private=env_bool(env, "WEBHOOK_ALLOW_PRIVATE", False),
            timeout_seconds=timeout,
            retry_schedule=schedule,
            secret_overlap_hours=overlap,
            concurrency=concurrency,
        )
