"""What a coordinator must look at first (issue 13 item 3): the provider's open cases nobody has reached for
longer than the no-contact rule (an episode announced as `case.contact_overdue`), and high risk flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from services.advocacy import domain
from services.advocacy.continuity.wall_clock import LONDON
from services.advocacy.models import Advocate, Case, RiskFlag
from services.advocacy.web.caseload import person_label

CONTACT_OVERDUE, HIGH_RISK = "contact_overdue", "high_risk"


@dataclass(frozen=True)
class Attention:
    case: Case
    label: str
    why: str  # CONTACT_OVERDUE | HIGH_RISK
    since: date  # the last reached contact (or the opening); the day the flag was raised
    risk_kind: str | None = None


def needs_attention(db: Session, advocate: Advocate) -> list[Attention]:
    """A coordinator's list: lost contact first (longest first), then high risks (newest first). An advocate's
    own cases show their flags on the case page."""
    if advocate.role != domain.ROLE_COORDINATOR:
        return []
    is_open = (Case.provider_id == advocate.provider_id, Case.status == domain.CASE_OPEN)
    counted_from = func.coalesce(Case.last_reached_at, Case.opened_at)
    lost = db.scalars(
        select(Case)
        .where(*is_open, Case.contact_overdue_at.is_not(None))
        .options(selectinload(Case.advocate))
        .order_by(counted_from, Case.id)
    )
    rows = [Attention(c, person_label(c), CONTACT_OVERDUE, _day(c.last_reached_at or c.opened_at)) for c in lost]
    high = db.execute(
        select(RiskFlag, Case)
        .join(Case, Case.id == RiskFlag.case_id)
        .where(*is_open, RiskFlag.level == "high")
        .order_by(RiskFlag.raised_at.desc(), RiskFlag.id)
    )
    rows += [Attention(case, person_label(case), HIGH_RISK, _day(flag.raised_at), flag.kind) for flag, case in high]
    return rows


def _day(at: datetime) -> date:
    return at.astimezone(LONDON).date()
