"""An advocate's notes on a case (DESIGN 5, issue 13 item 2): special-category data, stored only at the charity.

A note's text never leaves this service's database: no event carries it, no log line prints it, and the case's
timeline records only that a note was added and by whom ("note added by X"), with no detail.
"""

from __future__ import annotations

import uuid

from services.advocacy.casework import timeline
from services.advocacy.casework.contacts import CareInvalid
from services.advocacy.continuity.transitions import ensure_open
from services.advocacy.continuity.wall_clock import WallClock
from services.advocacy.models import Case, CaseNote
from services.advocacy.uow import AdvocacyUnitOfWork

MAX_LENGTH = 10_000
NOTE_ADDED_KIND = "note_added"


class Notes:
    def __init__(self, wall_clock: WallClock):
        self.wall_clock = wall_clock

    def add(self, uow: AdvocacyUnitOfWork, case: Case, *, text: str, actor: str) -> CaseNote:
        ensure_open(case)  # a closed case is read-only
        if not text.strip() or len(text) > MAX_LENGTH:
            raise CareInvalid("text", f"text must be 1 to {MAX_LENGTH} characters, not only spaces")
        now = self.wall_clock.now()
        note = CaseNote(
            id=str(uuid.uuid4()),
            provider_id=case.provider_id,
            case_id=case.id,
            text=text,
            written_by=actor,
            written_at=now,
        )
        uow.notes.add(note)
        timeline.note(uow, case.offer_id, NOTE_ADDED_KIND, actor, "", now)  # who and when: never the text
        return note
