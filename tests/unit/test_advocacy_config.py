"""advocacy's own settings: one instance per provider, so PROVIDER_ID is required."""

from __future__ import annotations

import pytest

from services.advocacy.config import AdvocacyConfig, settings_from_env
from shared.config import ConfigError


def config(**env: str) -> AdvocacyConfig:
    return AdvocacyConfig.from_settings(settings_from_env(env))


def test_without_provider_id_the_service_refuses_to_start_and_says_what_to_set():
    with pytest.raises(ConfigError, match="PROVIDER_ID"):
        config()
    with pytest.raises(ConfigError, match="PROVIDER_ID"):
        config(PROVIDER_ID="  ")


def test_defaults_and_overrides():
    default = config(PROVIDER_ID="charity-a")
    assert (default.auto_accept, default.intake_url, default.port) == (False, "http://127.0.0.1:8001", 8002)
    assert default.queue == "advocacy.charity-a" and default.source == "/advocacy/charity-a"
    custom = config(PROVIDER_ID="charity-a", AUTO_ACCEPT="true", INTAKE_URL="http://intake:8001/", PORT="9002")
    assert (custom.auto_accept, custom.intake_url, custom.port) == (True, "http://intake:8001", 9002)


def test_a_malformed_auto_accept_is_a_config_error():
    with pytest.raises(ConfigError, match="AUTO_ACCEPT"):
        config(PROVIDER_ID="charity-a", AUTO_ACCEPT="maybe")


def test_the_default_database_is_a_file_per_provider():
    settings = settings_from_env({"PROVIDER_ID": "charity-a"})
    assert settings.service == "advocacy"
    assert settings.database_url.endswith("/advocacy-charity-a.db")
    assert settings_from_env({"PROVIDER_ID": "charity-b"}).database_url.endswith("/advocacy-charity-b.db")


def test_an_explicit_database_url_wins_over_the_per_provider_file():
    url = "postgresql://advocacy@db/charity_a"
    assert settings_from_env({"PROVIDER_ID": "charity-a", "ADVOCACY_DATABASE_URL": url}).database_url == url
