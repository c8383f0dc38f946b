"""Words the page shows for the codes the records hold."""

from __future__ import annotations

from datetime import date

from services.advocacy.continuity import deadlines

TRANSITION_LABELS = {
    "turning_18": "Turning 18",
    "relocation": "Relocation",
    "move_on": "Move-on from NRM support",
    "advocate_handover": "Handover to another advocate",
    "provider_handover": "Handover to another provider",
}
CLOCK_LABELS = {
    "rg_decision": "Reasonable-grounds decision expected",
    "recovery_period": "Minimum recovery period",
    "cg_not_before": "Earliest CG decision",
    "move_on": "Move-on support",
    "exit_period": "Exit-period support",
    "turning_18": "18th birthday",
    "reconsideration_window": "Reconsideration request window",
}
# A clock's state in a word; only a breached deadline is "Overdue".
CLOCK_STATE_LABELS = {
    deadlines.RUNNING: "Running",
    deadlines.DUE_SOON: "Due soon",
    deadlines.BREACHED: "Overdue",
    deadlines.STOPPED: "Done",
    deadlines.REACHED: "Reached",
    deadlines.ENDED: "Ended",
}
CHECKLIST_LABELS = {
    "consent_reobtained": "Consent re-obtained at 18",
    "receiving_agency_informed": "Receiving agency informed",
    "accommodation_confirmed": "Accommodation confirmed",
    "handover_summary_written": "Handover summary written",
}


def transition_label(kind: str) -> str:
    return TRANSITION_LABELS.get(kind, kind.replace("_", " "))


def clock_label(kind: str) -> str:
    return CLOCK_LABELS.get(kind, kind.replace("_", " "))


def clock_state_label(state: str) -> str:
    return CLOCK_STATE_LABELS.get(state, state.replace("_", " "))


def clock_words(kind: str, nature: str, state: str, due_on: date) -> str:
    """A clock in plain words, by its nature: "Earliest CG decision: from 21 Nov 2026", "Minimum recovery
    period: reached", "Move-on support: ends 3 Feb 2027", "Reasonable-grounds decision expected: by 6 Mar 2026"."""
    label, day = clock_label(kind), due_on.strftime("%-d %b %Y")
    if nature == deadlines.MINIMUM:
        if kind == deadlines.CG_NOT_BEFORE:
            return f"{label}: from {day}"
        return f"{label}: reached" if state == deadlines.REACHED else f"{label}: until {day}"
    if nature == deadlines.SUPPORT_END:
        return f"{label}: ended {day}" if state == deadlines.ENDED else f"{label}: ends {day}"
    return f"{label}: by {day}"
