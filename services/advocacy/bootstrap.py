"""Continuity of care, assembled: the policy table, NRM records and clocks, transitions, provider handover.

One object per instance, built from configuration by `make_continuity` (advocacy's composition root), and
shared by the API, the page, the worker's handlers, the demo seed and the tests, so each path follows the
same rules and writes the same events.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.advocacy.casework.cases import Casework
from services.advocacy.config import AdvocacyConfig
from services.advocacy.continuity.handover import Handover
from services.advocacy.continuity.nrm import NrmRecords
from services.advocacy.continuity.policy import Policy, PolicyError, load_policy
from services.advocacy.continuity.transitions import Transitions
from services.advocacy.continuity.wall_clock import SystemClock, WallClock
from shared.config import ConfigError


@dataclass(frozen=True)
class Continuity:
    casework: Casework
    nrm: NrmRecords
    transitions: Transitions
    handover: Handover
    policy: Policy
    wall_clock: WallClock


def make_continuity(config: AdvocacyConfig, wall_clock: WallClock | None = None) -> Continuity:
    try:
        policy = load_policy(overrides=config.nrm_policy, extra_file=config.nrm_policy_file)
    except (PolicyError, OSError) as exc:
        raise ConfigError(f"NRM_POLICY / NRM_POLICY_FILE: {exc}") from None
    wall_clock = wall_clock or SystemClock()
    # Each part built once, after what it needs, nothing patched in later: the handover sender first, then the
    # transitions that complete through it, the NRM records that plan transitions, and casework, which
    # plans a new case's NRM clocks in the transaction that opens it.
    handover = Handover(config.provider_id)
    transitions = Transitions(config.provider_id, wall_clock, handover=handover)
    nrm = NrmRecords(config.provider_id, policy, transitions)
    casework = Casework(config.provider_id, on_open=nrm.plan_for_new_case)
    return Continuity(casework, nrm, transitions, handover, policy, wall_clock)
