"""Offering a referral to providers, one at a time, each with a deadline; escalating when nobody can take it.

Every step writes its rows and its events (outbox) in the caller's transaction. Lock order is always the
referral row first, then its offers, so the API, the consumer and the deadline sweep never deadlock.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from contracts import events
from services.intake import domain
from services.intake.models import Escalation, Offer, Outbox, Provider, Referral
from shared.clock import utcnow
from shared.outbox import add_event

log = logging.getLogger(__name__)


class UnknownProvider(Exception):
    pass


class CannotOffer(Exception):
    """The referral is in a state where it cannot be offered (allocated, withdrawn, recorded, or offered)."""


News = TypeVar("News", bound=events.ReferralNews)


def referral_news(kind: type[News], referral: Referral, **data: Any) -> News:
    """An event for the referring agency: which referral, whose, where it stands, and what `kind` adds."""
    return kind(
        referral_id=referral.id,
        org_id=referral.org_id,
        external_reference=referral.external_reference,
        status=cast(events.ReferralStatus, referral.status),  # the model's column holds only these
        **data,
    )


def directory(session: Session) -> list[domain.ProviderEntry]:
    """The providers, each with the places it reported less the offers it has not answered yet: a place
    held open for a pending offer is not free for the next referral."""
    pending = select(Offer.provider_id, func.count()).where(Offer.status == "pending").group_by(Offer.provider_id)
    waiting: dict[str, int] = {provider_id: count for provider_id, count in session.execute(pending).all()}
    return [
        domain.ProviderEntry(
            id=p.id,
            regions=p.regions,
            serves=p.serves,
            accepting=p.accepting,
            capacity=p.capacity - waiting.get(p.id, 0),
            languages=p.languages,
            sexes=p.sexes,
        )
        for p in session.scalars(select(Provider)).all()
    ]


class Router:
    def __init__(self, policy: domain.ResponsePolicy):
        self.policy = policy

    def offer_next(self, session: Session, referral: Referral, *, escalation_reason: str) -> Offer | None:
        """Offer the referral to the best eligible provider not offered it before; escalate when none is left."""
        offered = session.scalars(select(Offer.provider_id).where(Offer.referral_id == referral.id)).all()
        provider = domain.choose_provider(directory(session), self._needs(referral), offered)
        return self.offer_or_escalate(session, referral, provider, escalation_reason=escalation_reason)

    def offer_or_escalate(
        self,
        session: Session,
        referral: Referral,
        provider: domain.ProviderEntry | None,
        *,
        escalation_reason: str,
    ) -> Offer | None:
        if provider is None:
            referral.move_to("escalated", utcnow())
            self.escalate(session, referral, escalation_reason)
            return None
        return self._offer(session, referral, provider.id, offered_by="routing")

    def choose_first(self, session: Session, referral: Referral) -> domain.ProviderEntry | None:
        """Where a new referral goes: nobody has been offered it yet, and its row need not exist yet, so its
        first status is written by its INSERT rather than by an UPDATE after it."""
        provider = domain.choose_provider(directory(session), self._needs(referral), ())
        referral.move_to("offered" if provider is not None else "escalated", referral.updated_at)
        return provider

    def offer_to(self, session: Session, referral: Referral, provider_id: str, *, offered_by: str) -> Offer:
        """A coordinator's offer by hand: any registered provider serving the age group, even one that declined
        before (the coordinator may have agreed it by phone), but not while another offer is pending."""
        provider = session.get(Provider, provider_id)
        if provider is None:
            raise UnknownProvider(provider_id)
        if referral.status not in ("received", "escalated", "offered"):
            raise CannotOffer(f"a referral that is {referral.status} cannot be offered")
        pending = session.scalars(select(Offer).where(Offer.referral_id == referral.id, Offer.status == "pending"))
        if pending.first() is not None:
            raise CannotOffer("the referral already has an offer waiting for an answer")
        if ("child" if referral.is_child else "adult") not in provider.serves:
            raise CannotOffer(f"{provider_id} does not serve {'children' if referral.is_child else 'adults'}")
        now = utcnow()
        for escalation in session.scalars(
            select(Escalation).where(Escalation.referral_id == referral.id, Escalation.resolved_at.is_(None))
        ):
            escalation.resolved_at, escalation.resolved_by = now, offered_by
        return self._offer(session, referral, provider_id, offered_by=offered_by)

    def escalate(self, session: Session, referral: Referral, reason: str) -> None:
        """Put the referral in front of a coordinator, and tell the referrer."""
        session.add(Escalation(referral_id=referral.id, reason=reason, raised_at=utcnow()))
        add_event(session, Outbox, referral_news(events.ReferralEscalated, referral, reason=reason))

    def expire_due(self, sessions: sessionmaker, now: datetime, limit: int = 200) -> int:
        """Expire every pending offer whose deadline has passed, and move each referral on. Exactly once per
        offer however many workers sweep at the same time: the referral row is locked (SKIP LOCKED: another
        worker already has it) and the offer is re-read under the lock before anything is written."""
        with sessions() as session:
            due = session.execute(
                select(Offer.id, Offer.referral_id)
                .where(Offer.status == "pending", Offer.respond_by <= now)
                .order_by(Offer.respond_by)
                .limit(limit)
            ).all()
        expired = 0
        for offer_id, referral_id in due:
            with sessions.begin() as session:
                referral = session.scalars(
                    select(Referral).where(Referral.id == referral_id).with_for_update(skip_locked=True)
                ).first()
                offer = session.get(Offer, offer_id, populate_existing=True) if referral else None
                if offer is None or offer.status != "pending" or offer.respond_by > now:
                    continue
                offer.status, offer.responded_at = "expired", now
                expiry = events.OfferExpired(referral_id=referral.id, offer_id=offer.id, provider_id=offer.provider_id)
                add_event(session, Outbox, expiry)
                self.offer_next(session, referral, escalation_reason="none_accepted")
                expired += 1
        if expired:
            log.info("offers expired", extra={"count": expired})
        return expired

    def _offer(self, session: Session, referral: Referral, provider_id: str, *, offered_by: str) -> Offer:
        now = utcnow()
        respond_by = self.policy.respond_by(now, referral.region)
        offer = Offer(
            id=str(uuid.uuid4()),
            referral_id=referral.id,
            provider_id=provider_id,
            status="pending",
            offered_at=now,
            respond_by=respond_by,
            offered_by=offered_by,
        )
        session.add(offer)
        referral.move_to("offered", now)
        summary = domain.offer_summary(referral.body, domain.Pathway(referral.pathway, referral.is_child, True))
        offered = events.ReferralOffered(
            referral_id=referral.id,
            offer_id=offer.id,
            provider_id=provider_id,
            org_id=referral.org_id,
            offered_at=now,
            respond_by=respond_by,
            summary=events.ReferralSummary(**summary),
        )
        add_event(session, Outbox, offered)  # addressed: routing key referral.offered.<provider_id>
        return offer

    @staticmethod
    def _needs(referral: Referral) -> domain.RoutingNeeds:
        return domain.routing_needs(referral.body, referral.is_child)
