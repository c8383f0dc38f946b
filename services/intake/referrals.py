"""Use cases of the referral API: submit, read, withdraw. Plain functions with explicit collaborators."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from contracts import events
from services.intake import domain
from services.intake.models import Disclosure, Offer, Outbox, Referral
from services.intake.offers import Router, referral_news
from shared.auth import Principal
from shared.clock import utcnow
from shared.outbox import add_event


class ReferralConflict(Exception):
    """The external reference was used before with a different body."""


class NotFound(Exception):
    pass


class InvalidState(Exception):
    pass


def request_hash(raw: Any) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def submit(
    sessions: sessionmaker, router: Router, org_id: str, body: dict[str, Any], raw: Any
) -> tuple[Referral, bool]:
    """Store and route a referral. Returns (referral, created). Replaying the same body returns the first
    referral; the same reference with another body raises ReferralConflict. Two identical requests racing
    are settled by the unique (org, reference) constraint, not by a check before the insert."""
    digest = request_hash(raw)
    referred_at = body.get("referred_at") or datetime.now(UTC)
    child = domain.is_child(body["subject"], referred_at)
    pathway = domain.decide_pathway(child, body.get("consent"))
    stored = _jsonable({**body, "referred_at": referred_at})
    if pathway.pathway == "duty_to_notify":
        stored = domain.without_identifiers(stored)
    try:
        with sessions.begin() as session:
            now = utcnow()
            referral = Referral(
                id=str(uuid.uuid4()),
                org_id=org_id,
                external_reference=body["external_reference"],
                request_hash=digest,
                status=pathway.initial_status,
                pathway=pathway.pathway,
                is_child=pathway.is_child,
                region=body["location"]["region"],
                referred_at=referred_at,
                received_at=now,
                updated_at=now,
                body=stored,
            )
            first_choice = router.choose_first(session, referral) if pathway.routed else None
            session.add(referral)
            session.flush()  # the unique constraint speaks here, before any event is staged
            received = events.ReferralReceived(
                referral_id=referral.id,
                org_id=org_id,
                external_reference=referral.external_reference,
                # What it was on arrival, before routing (choose_first) moved it on; the validated body's codes.
                status=cast(events.ReferralStatus, pathway.initial_status),
                pathway=cast(events.Pathway, pathway.pathway),
                is_child=pathway.is_child,
                region=cast(events.Region, referral.region),
            )
            add_event(session, Outbox, received)
            if pathway.routed:
                router.offer_or_escalate(session, referral, first_choice, escalation_reason="no_eligible_provider")
            if (body.get("risk") or {}).get("immediate_danger") and referral.status != "escalated":
                # In immediate danger: a coordinator is alerted at once, while the offer goes out too.
                router.escalate(session, referral, "immediate_danger")
        return referral, True
    except IntegrityError:
        with sessions() as session:
            existing = session.scalars(
                select(Referral).where(
                    Referral.org_id == org_id, Referral.external_reference == body["external_reference"]
                )
            ).one_or_none()
        if existing is None:
            raise
        if existing.request_hash != digest:
            raise ReferralConflict(body["external_reference"]) from None
        return existing, False


def read(sessions: sessionmaker, principal: Principal, referral_id: str) -> tuple[Referral, list[Offer], bool]:
    """Returns (referral, its offers, whether its body may be shown). Its own org reads all of it; the provider
    it is allocated to too, and that disclosure is logged; a coordinator sees its progress but not its body."""
    with sessions.begin() as session:
        referral = session.get(Referral, referral_id)
        if referral is None:
            raise NotFound(referral_id)
        offers = list(session.scalars(select(Offer).where(Offer.referral_id == referral.id).order_by(Offer.offered_at)))
        if referral.org_id == principal.org:
            return referral, offers, True
        if principal.org_kind == "coordinator":
            return referral, offers, False
        allocated_here = referral.status == "allocated" and referral.provider_id == principal.org
        if allocated_here and principal.org_kind in ("provider", "service"):
            session.add(
                Disclosure(
                    referral_id=referral.id,
                    recipient_org=principal.org,
                    recipient_sub=principal.sub,
                    purpose="case_opening",
                    disclosed_at=utcnow(),
                )
            )
            return referral, offers, True
        raise NotFound(referral_id)  # never a 403 that confirms it exists


def offer_by_hand(sessions: sessionmaker, router: Router, principal: Principal, referral_id: str, provider_id: str):
    """A coordinator offers an escalated referral to a provider they chose."""
    with sessions.begin() as session:
        referral = session.get(Referral, referral_id, with_for_update=True)
        if referral is None or not referral.body:
            raise NotFound(referral_id)
        return router.offer_to(session, referral, provider_id, offered_by=principal.sub)


def withdraw(sessions: sessionmaker, principal: Principal, referral_id: str) -> Referral:
    with sessions.begin() as session:
        referral = session.get(Referral, referral_id, with_for_update=True)
        if referral is None or referral.org_id != principal.org:
            raise NotFound(referral_id)
        if not domain.can_withdraw(referral.status):
            raise InvalidState(f"a referral that is {referral.status} cannot be withdrawn")
        offers = session.scalars(select(Offer).where(Offer.referral_id == referral.id).order_by(Offer.offered_at))
        # Each provider holding a pending offer or the case hears of it, addressed to it alone.
        holders: dict[str, str | None] = {}
        for offer in offers:
            if offer.status == "pending":
                offer.status, offer.responded_at = "withdrawn", utcnow()
                holders[offer.provider_id] = offer.id
            elif offer.status == "accepted" and offer.provider_id == referral.provider_id:
                holders[offer.provider_id] = offer.id
        if referral.provider_id and referral.provider_id not in holders:  # a case handed over to it
            holders[referral.provider_id] = None
        provider_id = referral.provider_id or next(iter(holders), None)
        referral.move_to("withdrawn", utcnow())
        add_event(session, Outbox, referral_news(events.ReferralWithdrawn, referral, provider_id=provider_id))
        for holder, offer_id in holders.items():
            add_event(
                session, Outbox, events.OfferWithdrawn(referral_id=referral.id, offer_id=offer_id, provider_id=holder)
            )
        return referral


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
