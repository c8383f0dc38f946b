"""Each service's migrations build exactly the tables its models declare (alembic's autogenerate finds nothing
to add, drop or alter), on the real PostgreSQL, and run down to nothing and up again."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import column, create_engine, text
from sqlalchemy import table as sa_table

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


def insert(db, table: str, **row) -> None:
    db.execute(sa_table(table, *(column(k) for k in row)).insert().values(**row))


def test_advocacy_0003_gives_each_existing_clock_the_nature_of_its_kind(fresh_database):
    url = fresh_database("advocacy")
    config = alembic_config("advocacy", url)
    command.upgrade(config, "0002")
    at, kinds = (
        "2026-01-05T10:00:00+00:00",
        {
            "rg_decision": "deadline",
            "turning_18": "deadline",
            "recovery_period": "minimum",
            "cg_not_before": "minimum",
            "move_on": "support_end",
            "exit_period": "support_end",
        },
    )
    engine = create_engine(url)
    with engine.begin() as db:
        insert(db, "advocates", id="a-1", provider_id="p", name="Advocate Synthetic", email="a@p.example",
               languages="[]", max_caseload=3, active=True, created_at=at, updated_at=at)  # fmt: skip
        insert(db, "offers", id="o-1", provider_id="p", referral_id="r-1", status="accepted", summary="{}",
               offered_at=at, received_at=at, updated_at=at)  # fmt: skip
        insert(db, "cases", id="c-1", provider_id="p", referral_id="r-1", offer_id="o-1", advocate_id="a-1",
               status="open", opened_at=at, updated_at=at)  # fmt: skip
        for kind in kinds:
            insert(db, "clocks", id=kind, provider_id="p", case_id="c-1", kind=kind, starts_on="2026-01-05",
                   due_on="2026-02-04", notice_on="2026-01-28", policy_version="v", basis="test",
                   created_at=at)  # fmt: skip
    command.upgrade(config, "0003")
    with engine.begin() as db:
        found = dict(db.execute(text("SELECT kind, nature FROM clocks")).all())
    engine.dispose()
    assert found == kinds
