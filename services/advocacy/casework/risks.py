"""Safeguarding on an open case (DESIGN 5, issue 13 item 3): risk flags, each with a date to review it by.

A flag raised `high` is announced at once: `case.risk_raised` is staged in the same transaction as the flag
(the outbox), with the ids, the kind and the level only; the flag's note stays here, as a contact's does.
"""

from __future__ import annotations

import uuid
from datetime import date

from contracts import events
from services.advocacy.casework import timeline
from services.advocacy.casework.contacts import CareInvalid
from services.advocacy.continuity.transitions import ensure_open
from services.advocacy.continuity.wall_clock import WallClock, today
from services.advocacy.models import Case, RiskFlag
from services.advocacy.uow import AdvocacyUnitOfWork

KINDS, LEVELS = events.RISK_KINDS, events.RISK_LEVELS
HIGH = "high"
RISK_RAISED_KIND = "risk_raised"


class Risks:
    def __init__(self, wall_clock: WallClock):
        self.wall_clock = wall_clock

    def raise_flag(
        self,
        uow: AdvocacyUnitOfWork,
        case: Case,
        *,
        kind: str,
        level: str,
        review_on: date,
        actor: str,
        note: str | None = None,
    ) -> RiskFlag:
        """`kind` and `level`: one of KINDS and LEVELS (the API's schema checks them); `review_on` not past."""
        ensure_open(case)  # a closed case is read-only
        if kind not in KINDS:
            raise CareInvalid("kind", f"kind must be one of {', '.join(KINDS)}")
        if level not in LEVELS:
            raise CareInvalid("level", f"level must be one of {', '.join(LEVELS)}")
        if review_on < today(self.wall_clock):
            raise CareInvalid("review_on", "review_on is in the past")
        now = self.wall_clock.now()
        flag = RiskFlag(
            id=str(uuid.uuid4()),
            provider_id=case.provider_id,
            case_id=case.id,
            kind=kind,
            level=level,
            review_on=review_on,
            note=note,
            raised_by=actor,
            raised_at=now,
        )
        uow.risks.add(flag)
        detail = f"{kind.replace('_', ' ')} risk, {level}: review by {review_on.isoformat()}"
        timeline.note(uow, case.offer_id, RISK_RAISED_KIND, actor, detail, now)
        if level == HIGH:
            timeline.stage(uow, case, events.CaseRiskRaised, risk_id=flag.id, kind=kind, level=level)
        return flag
