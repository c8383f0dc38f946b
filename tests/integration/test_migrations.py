"""Each service's migrations build exactly the tables its models declare (alembic's autogenerate finds nothing
to add, drop or alter), on the real PostgreSQL, and run down to nothing and up again."""

from __future__ import annotations

import pytest
from alembic import command

from services.migrate import SERVICES, alembic_config, migrate


@pytest.mark.parametrize("service", SERVICES)
def test_the_migrations_match_the_models_and_run_down_and_up(service, fresh_database):
    url = fresh_database(service)
    migrate(service, url)
    config = alembic_config(service, url)
    command.check(config)  # raises when the models and the migrated schema differ
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    command.check(config)
