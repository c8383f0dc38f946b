"""intake's settings fail with the variable's name and the fix."""

import pytest

from services.intake.config import IntakeConfig, parse_hours_by_region
from shared.config import ConfigError, Settings


def config(**env) -> IntakeConfig:
    return IntakeConfig.from_settings(
        Settings.from_env("intake", env={"AMQP_URL": "amqp://intake:x@broker/%2F", **env})
    )


def test_defaults_are_24_hours_and_the_platforms_own_broker_user_is_trusted():
    defaults = config()
    assert defaults.response.default_hours == 24 and defaults.response.by_region == {}
    assert defaults.trusted_publishers == {"intake"}


def test_per_region_deadlines_and_extra_trusted_publishers_are_read():
    custom = config(OFFER_RESPONSE_HOURS_BY_REGION="london=12, wales=48", AMQP_TRUSTED_PUBLISHERS="ops,relay")
    assert custom.response.by_region == {"london": 12.0, "wales": 48.0}
    assert custom.trusted_publishers == {"intake", "ops", "relay"}


@pytest.mark.parametrize("raw", ["atlantis=3", "london=soon", "london=0", "london"])
def test_a_bad_per_region_deadline_names_the_variable(raw):
    with pytest.raises(ConfigError, match="OFFER_RESPONSE_HOURS_BY_REGION"):
        parse_hours_by_region(raw)
