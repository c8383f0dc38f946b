"""The clock scheduler: publishes `clock.due_soon`, `clock.breached`, `transition.missed` and, by the no-contact
rule, `case.contact_overdue` (casework.contacts), each once.

The database decides who fires what: the unit of work's `clocks.claim` and `transitions.claim_missed` mark
the rows fired in one UPDATE that only a row not yet fired passes (services.advocacy.uow), and the events are
staged in that same unit of work. Two workers, a crash before commit, or a restart: each clock fires once.
SQLite runs one scheduler (`make run`): it serialises writers anyway. Time comes from an injected wall
clock, so tests move days in microseconds.

Each breach and each missed transition is counted once, by the scheduler whose claim fired it and only once
its unit of work committed (`referrals_clocks_breached_total` by the clock's kind,
`referrals_transitions_missed_total` by the transition's kind): a tick rolled back counts nothing, and the
next tick that claims the rows counts them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.casework.contacts import Contacts
from services.advocacy.continuity import deadlines
from services.advocacy.continuity.handover import Handover
from services.advocacy.continuity.policy import load_policy
from services.advocacy.continuity.transitions import transition_event_data
from services.advocacy.continuity.wall_clock import SystemClock, WallClock, today
from services.advocacy.models import Clock, Transition
from services.advocacy.uow import BREACHED, DUE_SOON, AdvocacyUnitOfWork
from shared import metrics
from shared.db import is_unavailable
from shared.health import HEALTH

log = logging.getLogger(__name__)
ACTOR = "scheduler"


@dataclass(frozen=True)
class Fired:
    due_soon: int = 0
    breached: int = 0
    missed: int = 0
    unanswered: int = 0  # provider handovers past their deadline, offered by us or to us
    contact_overdue: int = 0  # cases nobody has reached for longer than the no-contact rule

    @property
    def total(self) -> int:
        return self.due_soon + self.breached + self.missed + self.unanswered + self.contact_overdue


def _count_from_zero() -> None:
    """Export every kind's counter at 0 from the start: a series that first appears at 1 shows no increase(), so
    the first breach after a start would go unseen by the alert rules (deploy/prometheus/alerts.yml)."""
    for kind, nature in deadlines.NATURE_OF.items():
        if nature in deadlines.BREACHABLE:
            metrics.CLOCKS_BREACHED.labels(clock=kind)
    for kind in domain.TRANSITION_KINDS:
        metrics.TRANSITIONS_MISSED.labels(transition=kind)


class ClockScheduler:
    def __init__(
        self,
        units: Callable[[], AdvocacyUnitOfWork],
        provider_id: str,
        wall_clock: WallClock | None = None,
        *,
        interval: float = 60.0,
        batch_size: int = 200,
        handover: Handover | None = None,
        contacts: Contacts | None = None,
    ):
        self._units = units
        self._handover = handover or Handover(provider_id, wall_clock or SystemClock())
        # The shipped policy table when none is given (the worker passes its configured one).
        self._contacts = contacts or Contacts(load_policy(), wall_clock or SystemClock())
        self.provider_id = provider_id
        self.wall_clock = wall_clock or SystemClock()
        self._interval = interval
        self._batch = batch_size

    def run(self, stop: threading.Event) -> None:
        _count_from_zero()
        try:
            while not stop.is_set():
                try:
                    fired = self.tick()
                    HEALTH.up("database")
                    if fired.total:
                        log.info("clocks fired", extra={"provider_id": self.provider_id, **fired.__dict__})
                except Exception as exc:  # try again at the next tick
                    if is_unavailable(exc):  # down for a moment: one line, and the worker says not ready
                        HEALTH.down("database", exc.__class__.__name__)  # its text may hold parameters
                        log.warning(
                            "database unavailable; clocks checked at the next tick",
                            extra={"provider_id": self.provider_id, "error": exc.__class__.__name__},
                        )
                    else:
                        log.exception("clock tick failed; will retry", extra={"provider_id": self.provider_id})
                stop.wait(self._interval)
        finally:
            HEALTH.up("database")  # a loop that stopped no longer speaks for the database

    def tick(self) -> Fired:
        now = self.wall_clock.now()
        day = today(self.wall_clock)
        with self._units() as uow:
            due_soon = uow.clocks.claim(DUE_SOON, day, now, self._batch)
            breached = uow.clocks.claim(BREACHED, day, now, self._batch)
            missed = uow.transitions.claim_missed(day, now, self._batch)
            # A handover unanswered by its deadline leaves the case with the sender; the receiver's lapses.
            unanswered = uow.transitions.claim_unanswered(now, self._batch)
            expired = uow.handovers.claim_expired(now, self._batch)
            overdue = self._contacts.announce_overdue(uow, now, self._batch)
            self._publish_clocks(uow, due_soon, events.ClockDueSoon, domain.CLOCK_DUE_SOON, now)
            self._publish_clocks(uow, breached, events.ClockBreached, domain.CLOCK_BREACHED, now)
            self._publish_missed(uow, missed, now)
            self._handover.unanswered(uow, unanswered, actor=ACTOR)
        # Committed: each of these fired here, and nowhere else.
        for clock in breached:
            metrics.CLOCKS_BREACHED.labels(clock=clock.kind).inc()
        for transition in missed:
            metrics.TRANSITIONS_MISSED.labels(transition=transition.kind).inc()
        return Fired(len(due_soon), len(breached), len(missed), len(unanswered) + len(expired), len(overdue))

    @staticmethod
    def _publish_clocks(
        uow: AdvocacyUnitOfWork, rows: list[Clock], event_type: type[events.ClockNews], kind: str, now: datetime
    ) -> None:
        if not rows:
            return
        cases = uow.cases.by_ids(c.case_id for c in rows)
        state = DUE_SOON if event_type is events.ClockDueSoon else BREACHED
        for clock in rows:
            case = cases[clock.case_id]
            timeline.stage(
                uow,
                case,
                event_type,
                clock_id=clock.id,
                kind=clock.kind,
                status=state,
                due_on=domain.event_date(clock.kind, clock.due_on),
                notice_on=domain.event_date(clock.kind, clock.notice_on),
                transition_id=clock.transition_id,
            )
            detail = f"{clock.kind} clock {state.replace('_', ' ')}: due {clock.due_on.isoformat()}"
            timeline.note(uow, case.offer_id, kind, ACTOR, detail, now)

    @staticmethod
    def _publish_missed(uow: AdvocacyUnitOfWork, rows: list[Transition], now: datetime) -> None:
        if not rows:
            return
        cases = uow.cases.by_ids(t.case_id for t in rows)
        for transition in rows:
            case = cases[transition.case_id]
            timeline.stage(uow, case, events.TransitionMissed, **transition_event_data(transition))
            detail = f"{transition.kind} transition {transition.id} missed: planned for {transition.planned_for}"
            timeline.note(uow, case.offer_id, domain.TRANSITION_MISSED_KIND, ACTOR, detail, now)
