"""A relocation that changes nation changes the rules (issue 12 item 6): on completion the case's NRM region
becomes the relocation's `new_region`, and that nation's policy applies from the move date.

What happens to clocks already running: a `minimum` or a `support_end` clock started by an NRM decision
(the recovery period, the earliest CG, move-on, the exit period) is the survivor's protection, and it is the
protection of the nation they now live in that applies: it is recomputed from the same decision under the
new region's rule (e.g. a positive RG in England, 30 days, then a move to Scotland: 90 days from the same RG,
Scotland's row in nrm_policy.csv). When the date changes the old clock is stopped and a new one starts, both
on the timeline. A `deadline` (the RG decision expected, the reconsideration window) is the competent
authority's, UK-wide, and is left as it is, so nothing fires twice; a child's turning_18 is measured from
the birthday and does not move. Clocks started after the move use the new region anyway (NrmRecord.region).

A provider that does not serve the new region (PROVIDER_REGIONS) cannot keep the case: the relocation names
the provider that can (`receiving_provider_id`), and completing it plans a provider handover to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import date

from contracts.events import REGIONS
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.continuity import deadlines
from services.advocacy.continuity.nrm import clock_from
from services.advocacy.continuity.policy import Policy, PolicyError
from services.advocacy.models import Case, Clock, NrmRecord, Transition
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow

# The natures recomputed on a move: the survivor's protections, not the authority's deadlines.
RECOMPUTED = (deadlines.MINIMUM, deadlines.SUPPORT_END)


class Relocation:
    def __init__(self, provider_id: str, policy: Policy, regions: Iterable[str] = ()):
        self.provider_id = provider_id
        self.policy = policy
        self.regions = frozenset(regions)

    def check_plan(self, kind: str, new_region: str | None, receiving_provider_id: str | None) -> None:
        """Refuses a relocation the provider could not follow: a region unknown, or one it does not serve
        without the provider the case would hand over to."""
        if new_region is None:
            return
        if kind != domain.RELOCATION:
            raise domain.RegionUnknown("only a relocation has a new_region")
        if new_region not in REGIONS:
            raise domain.RegionUnknown(f"new_region must be one of {', '.join(REGIONS)}")
        if self.needs_handover(new_region) and receiving_provider_id in (None, self.provider_id):
            raise domain.RegionNotServed(
                f"provider {self.provider_id} does not serve {new_region}: name the receiving_provider_id the "
                "case hands over to"
            )

    def needs_handover(self, region: str | None) -> bool:
        return not domain.serves(self.regions, region)

    def move(self, uow: AdvocacyUnitOfWork, case: Case, transition: Transition, *, actor: str, on: date) -> None:
        """The relocation completed on `on`: the region changes and the running protections follow it."""
        region = transition.new_region
        if region is None:
            return
        now = utcnow()
        record = uow.nrm.record(case.id)
        if record is None:  # a case without an NRM record yet (a Duty to Notify): later clocks use the region
            record = NrmRecord(
                case_id=case.id,
                provider_id=self.provider_id,
                referred_on=case.opened_at.date(),
                region=region,
                created_at=now,
                updated_at=now,
            )
            uow.nrm.add(record)
        previous, record.region, record.updated_at = record.region, region, now
        detail = f"region changed from {previous or 'unknown'} to {region} on {on.isoformat()}"
        timeline.note(uow, case.offer_id, domain.CASE_RELOCATED, actor, detail, now)
        for clock, spec in self._recomputed(uow, case, region):
            clock.stopped_at, clock.stopped_reason = now, f"relocated to {region}: recomputed"
            moved = dataclasses.replace(spec, basis=f"{spec.basis}; {region} from {on.isoformat()}")
            uow.clocks.add(clock_from(moved, case, now))
            detail = f"{clock.kind} clock due {clock.due_on.isoformat()} now due {spec.due_on.isoformat()} ({region})"
            timeline.note(uow, case.offer_id, domain.CLOCK_STARTED, actor, detail, now)

    def _recomputed(self, uow: AdvocacyUnitOfWork, case: Case, region: str) -> list[tuple[Clock, deadlines.ClockSpec]]:
        running = [
            c for c in uow.clocks.running(case.id, lock=True) if c.nature in RECOMPUTED and c.transition_id is None
        ]
        changed: list[tuple[Clock, deadlines.ClockSpec]] = []
        for decision in uow.nrm.decisions_of(case.id):
            try:
                specs = deadlines.on_decision(
                    self.policy, decision.stage, decision.outcome, decision.decided_on, region
                )
            except (PolicyError, OverflowError):  # no rule for that date in the new region: the clock stays
                continue
            for spec in specs:
                for clock in running:
                    same = clock.kind == spec.kind and clock.starts_on == spec.starts_on
                    if same and clock.due_on != spec.due_on and all(c is not clock for c, _ in changed):
                        changed.append((clock, spec))
        return changed
