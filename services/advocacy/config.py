"""The settings only advocacy reads, taken from `Settings.env` with the shared helpers."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import ConfigError, Settings, env_bool, env_int

DEFAULT_INTAKE_URL = "http://127.0.0.1:8001"
DEFAULT_PORT = 8002


@dataclass(frozen=True)
class AdvocacyConfig:
    provider_id: str
    auto_accept: bool = False
    intake_url: str = DEFAULT_INTAKE_URL
    port: int = DEFAULT_PORT

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
        )

    @property
    def source(self) -> str:
        """The CloudEvents `source` of what this instance publishes."""
        return f"/advocacy/{self.provider_id}"

    @property
    def queue(self) -> str:
        return f"advocacy.{self.provider_id}"
