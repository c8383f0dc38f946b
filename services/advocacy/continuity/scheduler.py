"""The clock scheduler: publishes `clock.due_soon`, `clock.breached` and `transition.missed`, each once.

The database decides who fires what: one `UPDATE ... SET fired_at = now WHERE fired_at IS NULL AND <due>
RETURNING id` claims the rows (on PostgreSQL through a `FOR UPDATE SKIP LOCKED` sub-select, so a second
scheduler skips rows the first holds, and re-checks `IS NULL` on any it waited for), and the events are
staged in the outbox in that same transaction. Two workers, a crash before commit, or a restart: each
clock fires once. SQLite runs one scheduler (`make run`): it serialises writers anyway.
Time comes from an injected wall clock, so tests move days in microseconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.continuity.transitions import transition_event_data
from services.advocacy.continuity.wall_clock import SystemClock, WallClock, today
from services.advocacy.models import Case, Clock, Transition

log = logging.getLogger(__name__)
ACTOR = "scheduler"


@dataclass(frozen=True)
class Fired:
    due_soon: int = 0
    breached: int = 0
    missed: int = 0

    @property
    def total(self) -> int:
        return self.due_soon + self.breached + self.missed


class ClockScheduler:
    def __init__(
        self,
        sessions: sessionmaker,
        provider_id: str,
        wall_clock: WallClock | None = None,
        *,
        interval: float = 60.0,
        batch_size: int = 200,
        after_commit: Callable[[], None] | None = None,
    ):
        self._sessions = sessions
        self.provider_id = provider_id
        self.wall_clock = wall_clock or SystemClock()
        self._interval = interval
        self._batch = batch_size
        self._after_commit = after_commit

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                fired = self.tick()
                if fired.total:
                    log.info("clocks fired", extra={"provider_id": self.provider_id, **fired.__dict__})
            except Exception:  # the database may be down for a moment: try again at the next tick
                log.exception("clock tick failed; will retry", extra={"provider_id": self.provider_id})
            stop.wait(self._interval)

    def tick(self) -> Fired:
        now = self.wall_clock.now()
        day = today(self.wall_clock)
        with self._sessions.begin() as session:
            due_soon = self._claim_clocks(
                session, Clock.due_soon_fired_at, (Clock.notice_on <= day, Clock.due_on >= day), now
            )
            breached = self._claim_clocks(session, Clock.breached_fired_at, (Clock.due_on < day,), now)
            missed = self._claim_missed(session, day, now)
            self._publish_clocks(session, due_soon, events.ClockDueSoon, domain.CLOCK_DUE_SOON, now)
            self._publish_clocks(session, breached, events.ClockBreached, domain.CLOCK_BREACHED, now)
            self._publish_missed(session, missed, now)
        fired = Fired(len(due_soon), len(breached), len(missed))
        if fired.total and self._after_commit:
            self._after_commit()
        return fired

    def _claim_clocks(self, session: Session, fired_at, due, now: datetime) -> list[str]:
        candidates = (
            select(Clock.id)
            .where(Clock.provider_id == self.provider_id, Clock.stopped_at.is_(None), fired_at.is_(None), *due)
            .where(Clock.case_id.in_(_open_cases()))
            .order_by(Clock.due_on, Clock.id)
            .limit(self._batch)
            .with_for_update(skip_locked=True)
        )
        claimed = session.execute(
            update(Clock)
            .where(Clock.id.in_(candidates.scalar_subquery()), fired_at.is_(None), Clock.stopped_at.is_(None))
            .values({fired_at: now})
            .returning(Clock.id)
            .execution_options(synchronize_session=False)
        )
        return [row[0] for row in claimed]

    def _claim_missed(self, session: Session, day: date, now: datetime) -> list[str]:
        """A transition still open after its planned date is missed: flagged and published once."""
        is_open = Transition.status.in_(domain.OPEN_TRANSITION_STATUSES)
        candidates = (
            select(Transition.id)
            .where(Transition.provider_id == self.provider_id, is_open, Transition.planned_for < day)
            .where(Transition.case_id.in_(_open_cases()))
            .order_by(Transition.planned_for, Transition.id)
            .limit(self._batch)
            .with_for_update(skip_locked=True)
        )
        claimed = session.execute(
            update(Transition)
            .where(Transition.id.in_(candidates.scalar_subquery()), is_open)
            .values(status=domain.TRANSITION_MISSED, missed_at=now, updated_at=now)
            .returning(Transition.id)
            .execution_options(synchronize_session=False)
        )
        return [row[0] for row in claimed]

    def _publish_clocks(
        self, session: Session, ids: list[str], event_type: type[events.ClockNews], kind: str, now: datetime
    ) -> None:
        if not ids:
            return
        rows = session.scalars(select(Clock).where(Clock.id.in_(ids)).order_by(Clock.due_on, Clock.id)).all()
        cases = self._cases(session, {c.case_id for c in rows})
        for clock in rows:
            case = cases[clock.case_id]
            state = "due_soon" if event_type is events.ClockDueSoon else "breached"
            timeline.stage(
                session,
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
            timeline.note(session, case, kind, ACTOR, detail, now)

    def _publish_missed(self, session: Session, ids: list[str], now: datetime) -> None:
        if not ids:
            return
        rows = session.scalars(select(Transition).where(Transition.id.in_(ids)).order_by(Transition.id)).all()
        cases = self._cases(session, {t.case_id for t in rows})
        for transition in rows:
            case = cases[transition.case_id]
            timeline.stage(session, case, events.TransitionMissed, **transition_event_data(transition))
            detail = f"{transition.kind} transition {transition.id} missed: planned for {transition.planned_for}"
            timeline.note(session, case, domain.TRANSITION_MISSED_KIND, ACTOR, detail, now)

    @staticmethod
    def _cases(session: Session, ids: set[str]) -> dict[str, Case]:
        found = session.scalars(select(Case).where(Case.id.in_(ids)).options(selectinload(Case.offer))).all()
        return {case.id: case for case in found}


def _open_cases():
    # A closed case (withdrawn, handed over) fires nothing more.
    return select(Case.id).where(Case.status == domain.CASE_OPEN).scalar_subquery()
