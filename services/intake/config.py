"""intake's own settings: how long providers have to answer, how often deadlines are checked, who is trusted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.intake.domain import ResponsePolicy
from services.intake.referral_keys import DEV_KEY, MIN_KEY_LENGTH, ReferralKeys
from services.intake.schemas import REGIONS
from shared.config import ConfigError, Settings, env_float
from shared.crypto import KekRing, keks_from_env


@dataclass(frozen=True)
class IntakeConfig:
    response: ResponsePolicy
    sweep_seconds: float
    trusted_publishers: frozenset[str]
    # How long a recipient asked to erase a referral may stay silent before GET .../erasure shows it overdue.
    erasure_ack: timedelta = timedelta(hours=24)
    # DTN_HMAC_KEY: keys the hashes of bodies and of anonymous referrals' references (referral_keys).
    keys: ReferralKeys = ReferralKeys()
    # DATA_KEK_FILE (+ DATA_KEK_PREVIOUS_FILES): the KEKs wrapping each referral's data key (shared.crypto).
    keks: KekRing | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeConfig:
        env = settings.env
        default_hours = env_float(env, "OFFER_RESPONSE_HOURS", 24.0)
        if default_hours <= 0:
            raise ConfigError(f"OFFER_RESPONSE_HOURS={default_hours} must be above 0")
        erasure_ack_hours = env_float(env, "ERASURE_ACK_HOURS", 24.0)
        if erasure_ack_hours <= 0:
            raise ConfigError(f"ERASURE_ACK_HOURS={erasure_ack_hours} must be above 0")
        return cls(
            response=ResponsePolicy(
                default_hours, parse_hours_by_region(env.get("OFFER_RESPONSE_HOURS_BY_REGION", ""))
            ),
            sweep_seconds=env_float(env, "OFFER_SWEEP_SECONDS", 5.0),
            trusted_publishers=settings.trusted_publishers,
            erasure_ack=timedelta(hours=erasure_ack_hours),
            keys=ReferralKeys(dtn_hmac_key(settings)),
            keks=keks_from_env(env, production=bool(settings.auth_token_url and not settings.auth_private_key_file)),
        )


def dtn_hmac_key(settings: Settings) -> str:
    """Required where a real identity provider issues the service's token (production); dev and tests use a
    fixed key, like SEARCH_INDEX_KEY."""
    key = settings.env.get("DTN_HMAC_KEY", "")
    if not key:
        if settings.auth_token_url and not settings.auth_private_key_file:
            raise ConfigError(
                "DTN_HMAC_KEY is not set: the secret keying the hashes of referral bodies and of anonymous "
                f"referrals' references ({MIN_KEY_LENGTH}+ characters)"
            )
        return DEV_KEY
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"DTN_HMAC_KEY has {len(key)} characters: at least {MIN_KEY_LENGTH}")
    return key


def parse_hours_by_region(raw: str) -> dict[str, float]:
    """`london=12,wales=48` -> {"london": 12.0, "wales": 48.0}."""
    hours: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        region, _, value = item.partition("=")
        if region not in REGIONS:
            raise ConfigError(
                f"OFFER_RESPONSE_HOURS_BY_REGION: unknown region {region!r}; use one of {', '.join(REGIONS)}"
            )
        try:
            hours[region] = float(value)
        except ValueError:
            raise ConfigError(f"OFFER_RESPONSE_HOURS_BY_REGION: {item!r} is not region=hours") from None
        if hours[region] <= 0:
            raise ConfigError(f"OFFER_RESPONSE_HOURS_BY_REGION: {region} must have more than 0 hours")
    return hours
