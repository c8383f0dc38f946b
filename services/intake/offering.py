"""Offering a referral to providers, one at a time, each with a deadline; escalating when nobody can take it.

Each step works inside the caller's unit of work; its referral is already locked (the lock order: the referral
first, then its offers). Who is offered is routing.py's choice; what happens to the referral, its own.
"""

from __future__ import annotations

from services.intake import recipients, routing
from services.intake.domain import CannotOffer, ResponsePolicy
from services.intake.models import Offer, Referral
from services.intake.uow import IntakeUnitOfWork
from shared.clock import utcnow


class UnknownProvider(Exception):
    pass


class Offering:
    def __init__(self, policy: ResponsePolicy):
        self.policy = policy

    def offer_next(self, uow: IntakeUnitOfWork, referral: Referral, *, escalation_reason: str) -> Offer | None:
        """Offer the referral to the best eligible provider not offered it before; escalate when none is left."""
        offered = uow.offers.providers_offered(referral.id)
        provider = routing.choose_provider(
            uow.providers.directory(), routing.routing_needs(referral.body, referral.is_child), offered
        )
        return self.offer_or_escalate(uow, referral, provider, escalation_reason=escalation_reason)

    def offer_or_escalate(
        self,
        uow: IntakeUnitOfWork,
        referral: Referral,
        provider: routing.ProviderEntry | None,
        *,
        escalation_reason: str,
    ) -> Offer | None:
        if provider is None:
            uow.escalations.add(referral.escalate(escalation_reason, utcnow()))
            return None
        return self._offer(uow, referral, provider.id, offered_by="routing")

    def offer_to(self, uow: IntakeUnitOfWork, referral: Referral, provider_id: str, *, offered_by: str) -> Offer:
        """A coordinator's offer by hand: any registered provider serving the age group, even one that declined
        before (the coordinator may have agreed it by phone), but not while another offer is pending."""
        provider = uow.providers.get(provider_id)
        if provider is None:
            raise UnknownProvider(provider_id)
        referral.ensure_offerable()
        if uow.offers.pending_for(referral.id):
            raise CannotOffer("the referral already has an offer waiting for an answer")
        if ("child" if referral.is_child else "adult") not in provider.serves:
            raise CannotOffer(f"{provider_id} does not serve {'children' if referral.is_child else 'adults'}")
        now = utcnow()
        for escalation in uow.escalations.open_for(referral.id):
            escalation.resolve(now, by=offered_by)
        return self._offer(uow, referral, provider_id, offered_by=offered_by)

    def _offer(self, uow: IntakeUnitOfWork, referral: Referral, provider_id: str, *, offered_by: str) -> Offer:
        now = utcnow()
        respond_by = self.policy.respond_by(now, referral.region)
        offer = referral.offer(provider_id, at=now, respond_by=respond_by, offered_by=offered_by)
        uow.offers.add(offer)
        recipients.record(uow, referral.id, provider_id, recipients.PROVIDER, recipients.OFFER_SUMMARY)
        return offer
