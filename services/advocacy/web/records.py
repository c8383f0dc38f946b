"""Continuity records as the API and the page show them: the same shapes, and a clock's state today."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.advocacy.continuity import deadlines
from services.advocacy.models import Clock, NrmDecision, NrmReconsideration, NrmRecord, Transition


def clock_state(clock: Clock, today: date) -> str:
    """Per its nature (DESIGN 5): a deadline may be breached; a minimum is reached; a support end ends."""
    return deadlines.state(
        clock.nature, due_on=clock.due_on, notice_on=clock.notice_on, stopped=clock.stopped_at is not None, today=today
    )


def clock_view(clock: Clock, today: date) -> dict[str, Any]:
    return {
        "id": clock.id,
        "kind": clock.kind,
        "nature": clock.nature,
        "state": clock_state(clock, today),
        "starts_on": clock.starts_on,
        "due_on": clock.due_on,
        "notice_on": clock.notice_on,
        "basis": clock.basis,
        "policy_version": clock.policy_version,
        "transition_id": clock.transition_id,
        "due_soon_fired_at": clock.due_soon_fired_at,
        "breached_fired_at": clock.breached_fired_at,
        "stopped_at": clock.stopped_at,
        "stopped_reason": clock.stopped_reason,
    }


def decision_view(decision: NrmDecision) -> dict[str, Any]:
    return {
        "id": decision.id,
        "stage": decision.stage,
        "outcome": decision.outcome,
        "decided_on": decision.decided_on,
        "on_reconsideration": decision.on_reconsideration,
        "recorded_by": decision.recorded_by,
        "recorded_at": decision.recorded_at,
    }


def reconsideration_view(request: NrmReconsideration) -> dict[str, Any]:
    return {
        "id": request.id,
        "decision_id": request.decision_id,
        "requested_on": request.requested_on,
        "recorded_by": request.recorded_by,
        "recorded_at": request.recorded_at,
    }


def nrm_view(record: NrmRecord, decisions, reconsiderations, clock_rows, today: date) -> dict[str, Any]:
    return {
        "case_id": record.case_id,
        "nrm_reference": record.nrm_reference,
        "referred_on": record.referred_on,
        "region": record.region,
        "decisions": [decision_view(d) for d in decisions],
        "reconsiderations": [reconsideration_view(r) for r in reconsiderations],
        "clocks": [clock_view(c, today) for c in clock_rows],
    }


def transition_view(transition: Transition) -> dict[str, Any]:
    return {
        "id": transition.id,
        "case_id": transition.case_id,
        "kind": transition.kind,
        "status": transition.status,
        "planned_for": transition.planned_for,
        "date_basis": transition.date_basis,
        "receiving_agency": transition.receiving_agency,
        "receiving_provider_id": transition.receiving_provider_id,
        "to_advocate_id": transition.to_advocate_id,
        "checklist": transition.checklist,
        "origin": transition.origin,
        "created_by": transition.created_by,
        "created_at": transition.created_at,
        "completed_at": transition.completed_at,
        "missed_at": transition.missed_at,
        "new_region": transition.new_region,
        "offered_at": transition.offered_at,
        "respond_by": transition.respond_by,
        "outcome": transition.outcome,
        "decision": transition.decision,
    }
