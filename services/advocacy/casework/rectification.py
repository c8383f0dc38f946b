"""The referring organisation corrected a referral at intake (UK GDPR Art. 16, 19; `referral.rectified`): this
charity holds a case of it, so it fetches the referral again (a disclosure intake records with the purpose
`rectification`) and its copy matches. The case's referral copy is replaced, its blind search tokens rewritten
(casework.search) and its timeline says the referral was corrected and which sections, never the values. A
closed case's copy is corrected too: it is still the person's data. A case still opening has no copy yet: it
fetches the corrected referral when it opens.

Nothing derived from the referral here is redone (an NRM clock or a planned 18th birthday stays as planned): an
advocate sees the correction on the timeline and updates what follows from it. Intake unreachable or answering
5xx is transient (DependencyUnavailable, from the intake client), as the case-opening fetch is.
"""

from __future__ import annotations

from typing import Final

from contracts import events
from services.advocacy.casework import timeline
from services.advocacy.casework.cases import Casework
from services.advocacy.casework.intake_client import ReferralSource
from services.advocacy.models import Case
from services.advocacy.uow import AdvocacyUnitOfWork
from shared.clock import utcnow
from shared.messaging.envelope import Event

REFERRAL_RECTIFIED: Final = "referral_rectified"  # the timeline entry's kind
PURPOSE: Final = "rectification"  # the disclosure purpose intake records for the fetch


def holding(uow: AdvocacyUnitOfWork, referral_id: str) -> list[Case]:
    """The cases of the referral here that hold a copy of it, open or closed."""
    cases = (offer.case for offer in uow.offers.of_referral(referral_id))
    return [case for case in cases if case is not None and case.referral is not None]


def on_rectified(uow: AdvocacyUnitOfWork, event: Event, *, casework: Casework, intake: ReferralSource) -> list[Case]:
    """Replace every copy of the rectified referral held here with intake's; returns the cases corrected."""
    rectified: events.ReferralRectified = event.data
    if not holding(uow, rectified.referral_id):
        return []
    # The HTTP call runs before any row lock is taken, so a slow intake does not hold one.
    referral = intake.fetch_referral(rectified.referral_id, purpose=PURPOSE)
    now = utcnow()
    corrected = holding(uow, rectified.referral_id)
    detail = f"referral corrected by the referrer: {', '.join(rectified.sections)}"
    for case in corrected:
        uow.cases.lock(case)
        case.referral, case.updated_at = referral, now
        casework.index.write(uow, case, referral)
        timeline.note(uow, case.offer_id, REFERRAL_RECTIFIED, event.source, detail, now)
    return corrected
