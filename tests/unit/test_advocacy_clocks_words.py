"""What the advocate's page says of a clock (issue 12): plain words by nature, "Overdue" only for a deadline."""

from __future__ import annotations

from datetime import date

from services.advocacy.web.caseload import Deadline
from services.advocacy.web.labels import clock_state_label, clock_words

DUE = date(2026, 11, 21)


def test_a_minimum_is_said_as_a_date_from_which_or_reached():
    assert clock_words("cg_not_before", "minimum", "running", DUE) == "Earliest CG decision: from 21 Nov 2026"
    assert clock_words("cg_not_before", "minimum", "reached", DUE) == "Earliest CG decision: from 21 Nov 2026"
    assert clock_words("recovery_period", "minimum", "running", DUE) == "Minimum recovery period: until 21 Nov 2026"
    assert clock_words("recovery_period", "minimum", "reached", DUE) == "Minimum recovery period: reached"
    assert clock_state_label("reached") == "Reached"


def test_a_support_end_ends_and_a_deadline_is_due_by():
    assert clock_words("move_on", "support_end", "running", DUE) == "Move-on support: ends 21 Nov 2026"
    assert clock_words("exit_period", "support_end", "ended", DUE) == "Exit-period support: ended 21 Nov 2026"
    assert clock_words("rg_decision", "deadline", "breached", DUE) == (
        "Reasonable-grounds decision expected: by 21 Nov 2026"
    )
    assert clock_state_label("breached") == "Overdue"


def test_only_a_deadline_on_the_caseload_can_be_overdue():
    later = date(2026, 12, 1)
    assert Deadline(DUE, "RG decision").overdue(later)
    assert not Deadline(DUE, "Earliest CG decision", "minimum").overdue(later)
    assert not Deadline(DUE, "Move-on support", "support_end").overdue(later)
    assert (Deadline(DUE, "x", "minimum").soon, Deadline(DUE, "x", "support_end").soon) == (None, "Ends soon")
