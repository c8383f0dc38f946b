"""intake's one composition root: the API (app.py), the worker (worker.py), seed_demo and the tests are all
built here, from settings passed in, and nothing is patched in afterwards.

`UseCases.over(units, policy)` wires what intake does over any unit of work, with no I/O: the unit tests
hand it their fake. `bootstrap(settings)` adds the database, and for the worker the outbox relay, whose
wake-up every unit's commit calls.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from services.intake.config import IntakeConfig
from services.intake.domain import ResponsePolicy
from services.intake.expiry import Expiry
from services.intake.handlers import subscriptions
from services.intake.models import DataKey, Outbox
from services.intake.offering import Offering
from services.intake.uow import IntakeUnits, SqlIntakeUnitOfWork
from shared.config import Settings
from shared.db import make_engine, make_session_factory, scrub_files
from shared.messaging.catalogue import Subscriptions
from shared.sealed import enable as enable_sealing

if TYPE_CHECKING:
    from shared.messaging.relay import OutboxRelay


@dataclass(frozen=True)
class UseCases:
    """What intake does, over the units of work `units` makes."""

    units: IntakeUnits
    offering: Offering
    expiry: Expiry
    handlers: Subscriptions
    # After an erasure commits: no erased byte may stay in the database's files (shared.db.scrub_files).
    after_erasure: Callable[[], None] = lambda: None

    @classmethod
    def over(
        cls, units: IntakeUnits, policy: ResponsePolicy, *, after_erasure: Callable[[], None] | None = None
    ) -> UseCases:
        offering = Offering(policy)
        return cls(
            units=units,
            offering=offering,
            expiry=Expiry(units, offering),
            handlers=subscriptions(offering),
            after_erasure=after_erasure or (lambda: None),
        )


@dataclass(frozen=True)
class Intake:
    config: IntakeConfig
    engine: Engine
    sessions: sessionmaker  # for the API's read-only views; every write goes through a unit of work
    use_cases: UseCases
    relay: OutboxRelay | None = None


def bootstrap(settings: Settings, *, relay: bool = False, instrument: bool = True) -> Intake:
    """intake over its database. `relay`: with the outbox relay (the worker), woken by every commit; the API
    has none (PostgreSQL's NOTIFY wakes the worker's). `instrument`: trace SQL (not for a one-off script)."""
    config = IntakeConfig.from_settings(settings)
    engine = make_engine(settings.database_url, instrument=instrument)
    sessions = make_session_factory(engine)
    if config.keks is not None:  # from_settings always reads them
        enable_sealing(sessions, DataKey, config.keks)
    outbox_relay = None
    if relay:
        # Imported here: the relay brings pika, which an API process never loads (test_api_footprint).
        from shared.messaging.relay import OutboxRelay

        outbox_relay = OutboxRelay(
            settings.amqp_url, sessions, Outbox, name="intake", poll_interval=settings.outbox_poll_interval
        )
    units = functools.partial(
        SqlIntakeUnitOfWork, sessions, after_commit=outbox_relay.wake if outbox_relay is not None else None
    )
    use_cases = UseCases.over(units, config.response, after_erasure=functools.partial(scrub_files, engine))
    return Intake(config, engine, sessions, use_cases, outbox_relay)
