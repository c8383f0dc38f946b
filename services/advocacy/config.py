"""The settings only advocacy reads, taken from `Settings.env` with the shared helpers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.events import REGIONS
from services.advocacy.casework.search import DEV_KEY as DEV_SEARCH_INDEX_KEY
from shared.config import ConfigError, Settings, env_bool, env_int, env_positive
from shared.crypto import KekRing, keks_from_env

DEFAULT_INTAKE_URL = "http://127.0.0.1:8001"
DEFAULT_PORT = 8002


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """advocacy's shared settings. One instance per provider, so its default SQLite file is named after the
    provider (`advocacy-<PROVIDER_ID>.db`) and two charities on one machine never share one."""
    env = dict(os.environ if env is None else env)
    return Settings.from_env("advocacy", env, database_file=f"advocacy-{env.get('PROVIDER_ID', 'default')}.db")


@dataclass(frozen=True)
class AdvocacyConfig:
    provider_id: str
    auto_accept: bool = False
    intake_url: str = DEFAULT_INTAKE_URL
    port: int = DEFAULT_PORT
    # Continuity of care (issue 4): NRM policy overrides, the clock scheduler, the advocate's page.
    nrm_policy: str = ""  # NRM_POLICY: `key[@region][:YYYY-MM-DD]=value[unit];...` (services/advocacy/policy.py)
    nrm_policy_file: str = ""  # NRM_POLICY_FILE: a CSV with the shipped table's columns, rows added on top
    clock_tick_seconds: float = 60.0
    dev_signin: bool = False  # ADVOCACY_DEV_SIGNIN: pick an advocate without a password (`make run` only)
    session_secret: str = ""  # ADVOCACY_SESSION_SECRET: signs the page's session cookie
    public_url: str = ""  # ADVOCACY_PUBLIC_URL: where the page is served, for the OIDC redirect URI
    authorize_url: str = ""  # AUTH_AUTHORIZE_URL: the identity provider's OIDC authorization endpoint
    trusted_publishers: frozenset[str] = frozenset()  # Settings.trusted_publishers
    # Provider handover (issue 12 item 6): how long a receiving provider has to answer an offered handover, and
    # the regions this provider serves (PROVIDER_REGIONS, comma-separated; empty: every region), so a relocation
    # out of them plans a provider handover.
    handover_response_hours: float = 72.0
    regions: frozenset[str] = frozenset()
    # SEARCH_INDEX_KEY: keys the blind index of names the page searches (casework.search). Required when the
    # instance gets its tokens from a real identity provider; dev and tests use a fixed key.
    search_index_key: str = DEV_SEARCH_INDEX_KEY
    # ADVOCACY_SESSION_HOURS: how long a page session lasts after sign-in (web.auth).
    session_hours: float = 8.0
    # DATA_KEK_FILE (+ DATA_KEK_PREVIOUS_FILES): the KEKs wrapping each referral's data key (shared.crypto).
    keks: KekRing | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AdvocacyConfig:
        env = settings.env
        provider_id = (env.get("PROVIDER_ID") or "").strip()
        if not provider_id:
            # One instance serves one charity: without its id it cannot tell its offers from others'.
            raise ConfigError(
                "PROVIDER_ID is not set: each advocacy instance serves one provider, "
                "e.g. PROVIDER_ID=demo-charity (the id intake's provider directory knows it by)"
            )
        return cls(
            provider_id=provider_id,
            auto_accept=env_bool(env, "AUTO_ACCEPT", False),
            intake_url=(env.get("INTAKE_URL") or DEFAULT_INTAKE_URL).rstrip("/"),
            port=env_int(env, "PORT", DEFAULT_PORT, minimum=1),
            nrm_policy=env.get("NRM_POLICY", ""),
            nrm_policy_file=env.get("NRM_POLICY_FILE", ""),
            clock_tick_seconds=env_positive(env, "CLOCK_TICK_SECONDS", 60.0, unit="seconds"),
            dev_signin=env_bool(env, "ADVOCACY_DEV_SIGNIN", False),
            session_secret=env.get("ADVOCACY_SESSION_SECRET", ""),
            public_url=(env.get("ADVOCACY_PUBLIC_URL") or "").rstrip("/"),
            authorize_url=env.get("AUTH_AUTHORIZE_URL", ""),
            trusted_publishers=settings.trusted_publishers,
            handover_response_hours=env_positive(env, "HANDOVER_RESPONSE_HOURS", 72.0, unit="hours"),
            regions=_regions(env.get("PROVIDER_REGIONS", "")),
            search_index_key=_search_index_key(settings),
            session_hours=env_positive(env, "ADVOCACY_SESSION_HOURS", 8.0, unit="hours"),
            keks=keks_from_env(env, production=bool(settings.auth_token_url) and not settings.auth_private_key_file),
        )

    @property
    def source(self) -> str:
        """The CloudEvents `source` of what this instance publishes."""
        return f"/advocacy/{self.provider_id}"

    @property
    def queue(self) -> str:
        return f"advocacy.{self.provider_id}"


MIN_SEARCH_KEY_LENGTH = 32


def _search_index_key(settings: Settings) -> str:
    key = settings.env.get("SEARCH_INDEX_KEY", "")
    # Production: a real identity provider issues the service token (no dev signing key here).
    production = bool(settings.auth_token_url) and not settings.auth_private_key_file
    if not key:
        if production:
            raise ConfigError("SEARCH_INDEX_KEY is not set: the key of the case search's blind index (32+ characters)")
        return DEV_SEARCH_INDEX_KEY
    if len(key) < MIN_SEARCH_KEY_LENGTH:
        raise ConfigError(f"SEARCH_INDEX_KEY has {len(key)} characters: at least {MIN_SEARCH_KEY_LENGTH}")
    return key


def _regions(value: str) -> frozenset[str]:
    regions = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(regions - set(REGIONS))
    if unknown:
        raise ConfigError(f"PROVIDER_REGIONS: {', '.join(unknown)} not a region; one of {', '.join(REGIONS)}")
    return regions
