"""A provider handover: the case moves to another provider's instance over the bus, with its timeline, so
the survivor does not retell their story.

The sending instance, when a `provider_handover` transition is completed, stages `case.handover` addressed
to the receiving provider (routing key `case.handover.<provider_id>`, bound only by that provider's queue
`advocacy.<provider_id>`) and closes its own case. The event carries ids, codes and dates: the minimised
summary an offer carries, the NRM record, the open clocks and transitions, and the timeline entries (which
hold ids and codes only). It carries no names, date of birth, contact details or narrative: the receiving
instance opens the case with those absent. The sender also tells intake (`case.handed_over`); intake moves
the allocation and announces `referral.transferred`, and the receiving instance then fetches the full
referral from intake like any allocated provider (a logged disclosure), so nobody asks the survivor again.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.advocacy import case_events, domain
from services.advocacy.casework import Casework
from services.advocacy.models import (
    Advocate,
    Case,
    Clock,
    NrmDecision,
    NrmReconsideration,
    NrmRecord,
    Offer,
    TimelineEntry,
    Transition,
)
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.outbox import utcnow

log = logging.getLogger(__name__)
EVENT_TYPE = "case.handover"


def routing_key(provider_id: str) -> str:
    return f"{EVENT_TYPE}.{provider_id}"


class Handover:
    def __init__(self, casework: Casework, trusted: frozenset[str] = frozenset()):
        self.casework = casework
        self.provider_id = casework.provider_id
        # Broker users that may speak for any provider (the platform's own); a charity's instance publishes
        # as advocacy-<its id>, which RabbitMQ validates (deploy/rabbitmq/add-provider.sh).
        self.trusted = trusted

    # --- sending ----------------------------------------------------------------------------------------

    def send(self, session: Session, case: Case, transition: Transition, *, actor: str) -> Event:
        to = transition.receiving_provider_id or ""
        now = utcnow()
        case_events.note(session, case, domain.CASE_HANDED_OVER, actor, f"case handed over to provider {to}", now)
        session.flush()
        data = {
            "transition_id": transition.id,
            "from_provider_id": self.provider_id,
            "to_provider_id": to,
            "handed_over_at": now.isoformat(),
            "summary": domain.offer_summary(case.offer.summary or {}),
            "nrm": _nrm(session, case),
            "clocks": [_clock(c) for c in _open_clocks(session, case)],
            "transitions": [_transition(t) for t in _open_transitions(session, case) if t.id != transition.id],
            "timeline": [
                {"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor, "detail": e.detail} for e in case.timeline
            ],
        }
        event = case_events.stage(session, case, EVENT_TYPE, data, routing_key=routing_key(to))
        # Intake moves the allocation, so the receiving provider may fetch the referral it needs.
        case_events.stage(
            session, case, "case.handed_over", {"from_provider_id": self.provider_id, "to_provider_id": to}
        )
        for clock in _open_clocks(session, case):
            clock.stopped_at, clock.stopped_reason = now, f"case handed over to provider {to}"
        case.status, case.closed_at, case.updated_at = domain.CASE_CLOSED, now, now
        case_events.note(session, case, domain.CASE_CLOSED_KIND, actor, f"case {case.id} closed: handed over", now)
        return event

    # --- receiving --------------------------------------------------------------------------------------

    def receive(self, session: Session, event: Event) -> Case | None:
        data = event.data
        if data.get("to_provider_id") != self.provider_id:
            log.info("handover for another provider ignored", extra={"event_id": event.id})
            return None
        for name in ("referral_id", "transition_id", "from_provider_id"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise PermanentError(f"case.handover lacks {name}")
        if event.source != f"/advocacy/{data['from_provider_id']}":
            raise PermanentError("case.handover's source is not the provider it names as sender")
        if event.publisher not in self.trusted and event.publisher != f"advocacy-{data['from_provider_id']}":
            raise PermanentError("case.handover was not published by the provider it names as sender")
        now = utcnow()
        summary = {**domain.offer_summary(data.get("summary") or {})}
        summary.update({"org_id": data.get("org_id"), "external_reference": data.get("external_reference")})
        offer = Offer(
            id=f"handover-{data['transition_id']}",
            provider_id=self.provider_id,
            referral_id=data["referral_id"],
            status=domain.OFFER_ACCEPTED,
            summary=summary,
            offered_at=_when(data.get("handed_over_at")) or now,
            respond_by=None,
            responded_at=now,
            received_at=now,
            updated_at=now,
        )
        session.add(offer)
        session.flush()
        for entry in data.get("timeline") or []:
            at = _when(entry.get("at")) or now
            session.add(
                TimelineEntry(
                    offer_id=offer.id,
                    at=at,
                    kind=str(entry.get("kind"))[:40],
                    actor=str(entry.get("actor"))[:200],
                    detail=str(entry.get("detail"))[:500],
                )
            )
        case = Case(
            id=str(uuid.uuid4()),
            provider_id=self.provider_id,
            referral_id=offer.referral_id,
            offer_id=offer.id,
            advocate=self._advocate(session, summary.get("languages") or []),
            status=domain.CASE_OPEN,
            referral=None,
            opened_at=now,
            updated_at=now,
        )
        session.add(case)
        session.flush()
        self._restore(session, case, data, now)
        sender = data["from_provider_id"]
        detail = f"case received from provider {sender}; assigned to advocate {case.advocate_id}"
        case_events.note(session, case, domain.CASE_RECEIVED, event.source, detail, now)
        case_events.note(session, case, domain.CASE_OPENED, event.source, f"case {case.id} open", now)
        case_events.stage(session, case, "case.opened", {"status": domain.CASE_OPEN})
        return case

    def _advocate(self, session: Session, languages: list[str]) -> Advocate:
        """The receiving provider agreed to take the case: it goes to the best advocate with room, else to
        the least loaded active one (a coordinator can hand it on) rather than being refused."""
        advocates = session.scalars(
            select(Advocate).where(Advocate.provider_id == self.provider_id).order_by(Advocate.id).with_for_update()
        ).all()
        loads = self.casework.caseloads(session)
        views = [
            domain.AdvocateLoad(a.id, tuple(a.languages), a.max_caseload, loads.get(a.id, 0), a.active)
            for a in advocates
        ]
        chosen = domain.choose_advocate(views, languages) or min(
            (v for v in views if v.active), key=lambda v: (v.load, v.id), default=None
        )
        if chosen is None:
            raise RuntimeError("no active advocate to receive a handed-over case yet")  # retried later
        return next(a for a in advocates if a.id == chosen.id)

    def _restore(self, session: Session, case: Case, data: dict[str, Any], now: datetime) -> None:
        nrm = data.get("nrm") or {}
        session.add(
            NrmRecord(
                case_id=case.id,
                provider_id=self.provider_id,
                nrm_reference=nrm.get("nrm_reference"),
                referred_on=_day(nrm.get("referred_on")),
                region=nrm.get("region"),
                created_at=now,
                updated_at=now,
            )
        )
        for d in nrm.get("decisions") or []:
            session.add(
                NrmDecision(
                    id=d["id"],
                    case_id=case.id,
                    stage=d["stage"],
                    outcome=d["outcome"],
                    decided_on=_day(d["decided_on"]),
                    on_reconsideration=bool(d.get("on_reconsideration")),
                    recorded_by=d.get("recorded_by") or "handover",
                    recorded_at=now,
                )
            )
        session.flush()
        for r in nrm.get("reconsiderations") or []:
            session.add(
                NrmReconsideration(
                    id=r["id"],
                    case_id=case.id,
                    decision_id=r["decision_id"],
                    requested_on=_day(r["requested_on"]),
                    recorded_by="handover",
                    recorded_at=now,
                )
            )
        for t in data.get("transitions") or []:
            session.add(
                Transition(
                    id=t["id"],
                    provider_id=self.provider_id,
                    case_id=case.id,
                    kind=t["kind"],
                    status=t["status"],
                    planned_for=_day(t["planned_for"]),
                    date_basis=t["date_basis"],
                    receiving_agency=t.get("receiving_agency"),
                    receiving_provider_id=None,
                    to_advocate_id=None,
                    checklist=t.get("checklist") or {},
                    origin=t["origin"][:60],
                    created_by="handover",
                    created_at=now,
                    updated_at=now,
                )
            )
        session.flush()
        for c in data.get("clocks") or []:
            # Fired flags travel: the referring agency was told once already, and is not told again.
            session.add(
                Clock(
                    id=str(uuid.uuid4()),
                    provider_id=self.provider_id,
                    case_id=case.id,
                    kind=c["kind"],
                    starts_on=_day(c["starts_on"]),
                    due_on=_day(c["due_on"]),
                    notice_on=_day(c["notice_on"]),
                    policy_version=c["policy_version"],
                    basis=c["basis"][:200],
                    transition_id=c.get("transition_id"),
                    created_at=now,
                    due_soon_fired_at=now if c.get("due_soon_fired") else None,
                    breached_fired_at=now if c.get("breached_fired") else None,
                )
            )


def _open_clocks(session: Session, case: Case) -> list[Clock]:
    query = select(Clock).where(Clock.case_id == case.id, Clock.stopped_at.is_(None)).order_by(Clock.due_on)
    return list(session.scalars(query))


def _open_transitions(session: Session, case: Case) -> list[Transition]:
    open_ = Transition.status.in_(domain.OPEN_TRANSITION_STATUSES)
    return list(session.scalars(select(Transition).where(Transition.case_id == case.id, open_)))


def _nrm(session: Session, case: Case) -> dict[str, Any]:
    record = session.get(NrmRecord, case.id)
    decisions = session.scalars(select(NrmDecision).where(NrmDecision.case_id == case.id)).all()
    requests = session.scalars(select(NrmReconsideration).where(NrmReconsideration.case_id == case.id)).all()
    return {
        "nrm_reference": record.nrm_reference if record else None,
        "referred_on": record.referred_on.isoformat() if record and record.referred_on else None,
        "region": record.region if record else None,
        "decisions": [
            {
                "id": d.id,
                "stage": d.stage,
                "outcome": d.outcome,
                "decided_on": d.decided_on.isoformat(),
                "on_reconsideration": d.on_reconsideration,
                "recorded_by": d.recorded_by,
            }
            for d in decisions
        ],
        "reconsiderations": [
            {"id": r.id, "decision_id": r.decision_id, "requested_on": r.requested_on.isoformat()} for r in requests
        ],
    }


def _clock(clock: Clock) -> dict[str, Any]:
    return {
        "kind": clock.kind,
        "starts_on": clock.starts_on.isoformat(),
        "due_on": clock.due_on.isoformat(),
        "notice_on": clock.notice_on.isoformat(),
        "policy_version": clock.policy_version,
        "basis": clock.basis,
        "transition_id": clock.transition_id,
        "due_soon_fired": clock.due_soon_fired_at is not None,
        "breached_fired": clock.breached_fired_at is not None,
    }


def _transition(t: Transition) -> dict[str, Any]:
    return {
        "id": t.id,
        "kind": t.kind,
        "status": t.status,
        "planned_for": t.planned_for.isoformat(),
        "date_basis": t.date_basis,
        "receiving_agency": t.receiving_agency,
        "checklist": t.checklist,
        "origin": t.origin,
    }


def _day(value: Any) -> date:
    return date.fromisoformat(str(value)[:10])


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
