"""advocacy's composition root: settings in, one charity's instance out, used alike by the API, the worker,
the demo seed and the tests. No I/O at import.

`assemble` builds the rules (casework and continuity of care) from the provider, the policy table and a
wall clock: pure, so the unit tests run it against a fake unit of work. `bootstrap` adds the instance's
database and, for the worker, the outbox relay that each unit of work wakes when it commits. Each part is
built once, after what it needs, and nothing is patched in later: the handover sender first, then the
transitions that complete through it, the NRM records that plan transitions, and casework, which plans a
new case's NRM clocks in the unit of work that opens it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from services.advocacy.casework.cases import Casework
from services.advocacy.casework.closure import Closure
from services.advocacy.casework.consent import CaseConsent
from services.advocacy.casework.contacts import Contacts
from services.advocacy.casework.notes import Notes
from services.advocacy.casework.risks import Risks
from services.advocacy.casework.search import SearchIndex
from services.advocacy.config import AdvocacyConfig
from services.advocacy.continuity.handover import Handover
from services.advocacy.continuity.nrm import NrmRecords
from services.advocacy.continuity.policy import Policy, PolicyError, load_policy
from services.advocacy.continuity.relocation import Relocation
from services.advocacy.continuity.transitions import Transitions
from services.advocacy.continuity.wall_clock import SystemClock, WallClock
from services.advocacy.models import DataKey, Outbox
from services.advocacy.uow import SqlAdvocacyUnitOfWork
from shared.config import ConfigError, Settings
from shared.db import make_engine, make_session_factory
from shared.sealed import enable as enable_sealing

if TYPE_CHECKING:
    from shared.messaging.relay import OutboxRelay


@dataclass(frozen=True)
class Continuity:
    """The rules of one instance: casework and its closure, the NRM record and clocks, transitions, provider
    handover."""

    casework: Casework
    nrm: NrmRecords
    transitions: Transitions
    handover: Handover
    policy: Policy
    wall_clock: WallClock
    closure: Closure
    consent: CaseConsent
    contacts: Contacts  # the contact log and the no-contact rule
    notes: Notes
    risks: Risks


def assemble(
    provider_id: str,
    policy: Policy,
    wall_clock: WallClock,
    *,
    handover_response_hours: float = 72.0,
    regions: frozenset[str] = frozenset(),
    search_index_key: str | None = None,
) -> Continuity:
    handover = Handover(provider_id, wall_clock, response_hours=handover_response_hours)
    relocation = Relocation(provider_id, policy, regions)
    transitions = Transitions(provider_id, wall_clock, handover=handover, relocation=relocation)
    nrm = NrmRecords(provider_id, policy, transitions)
    index = SearchIndex(search_index_key) if search_index_key else SearchIndex()
    casework = Casework(provider_id, on_open=nrm.plan_for_new_case, index=index)
    closure = Closure(casework, transitions)
    consent = CaseConsent(transitions, closure)
    care = (Contacts(policy, wall_clock), Notes(wall_clock), Risks(wall_clock))
    return Continuity(casework, nrm, transitions, handover, policy, wall_clock, closure, consent, *care)


def make_continuity(config: AdvocacyConfig, wall_clock: WallClock | None = None) -> Continuity:
    """The rules with the policy table this configuration names (a clear ConfigError when it is wrong)."""
    try:
        policy = load_policy(overrides=config.nrm_policy, extra_file=config.nrm_policy_file)
    except (PolicyError, OSError) as exc:
        raise ConfigError(f"NRM_POLICY / NRM_POLICY_FILE: {exc}") from None
    return assemble(
        config.provider_id,
        policy,
        wall_clock or SystemClock(),
        handover_response_hours=config.handover_response_hours,
        regions=config.regions,
        search_index_key=config.search_index_key,
    )


@dataclass(frozen=True)
class Advocacy:
    """One charity's instance on its own database."""

    settings: Settings
    config: AdvocacyConfig
    continuity: Continuity
    engine: Engine
    sessions: sessionmaker  # for read-only views; every change goes through a unit of work
    relay: OutboxRelay | None = None  # the worker's: each commit wakes it

    @property
    def provider_id(self) -> str:
        return self.config.provider_id

    def unit_of_work(self) -> SqlAdvocacyUnitOfWork:
        """A fresh unit of work (one per transaction): pass the method itself where a factory is wanted."""
        wake: Callable[[], None] | None = self.relay.wake if self.relay is not None else None
        return SqlAdvocacyUnitOfWork(self.sessions, self.config.provider_id, after_commit=wake)


def bootstrap(
    settings: Settings, *, wall_clock: WallClock | None = None, relay: bool = False, instrument: bool = True
) -> Advocacy:
    """`relay`: also the outbox relay (the worker's), which every unit of work wakes as it commits, so
    accepted offers and opened cases leave at once rather than at the next poll."""
    config = AdvocacyConfig.from_settings(settings)  # a clear ConfigError when PROVIDER_ID is missing
    continuity = make_continuity(config, wall_clock)  # `wall_clock`: tests move time without sleeping
    engine = make_engine(settings.database_url, instrument=instrument)
    sessions = make_session_factory(engine)
    if config.keks is not None:  # from_settings always reads them
        enable_sealing(sessions, DataKey, config.keks)
    outbox_relay = None
    if relay:
        # Imported here: the relay brings pika, which an API process never loads (test_api_footprint).
        from shared.messaging.relay import OutboxRelay

        outbox_relay = OutboxRelay(
            settings.amqp_url,
            sessions,
            Outbox,
            name=f"advocacy-{config.provider_id}",
            poll_interval=settings.outbox_poll_interval,
            declare_exchanges=settings.declare_exchanges,
        )
    return Advocacy(settings, config, continuity, engine, sessions, outbox_relay)
