"""Words the page shows for the codes the records hold."""

from __future__ import annotations

TRANSITION_LABELS = {
    "turning_18": "Turning 18",
    "relocation": "Relocation",
    "move_on": "Move-on from NRM support",
    "advocate_handover": "Handover to another advocate",
    "provider_handover": "Handover to another provider",
}
CLOCK_LABELS = {
    "rg_decision": "Reasonable-grounds decision expected",
    "recovery_period": "Recovery period ends",
    "cg_not_before": "Earliest conclusive-grounds decision",
    "move_on": "Move-on support ends",
    "exit_period": "Exit period ends",
    "turning_18": "18th birthday",
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
