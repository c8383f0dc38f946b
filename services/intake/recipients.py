"""The record of recipients (UK GDPR Art. 19, 30): every disclosure of anything about a referral, per
recipient, with its purpose and time, in `disclosures`. An erasure (services.intake.erasure) asks each
recipient this record names.

Purposes: `offer_summary` (an offer staged for a charity: the minimised summary), `case_opening` (the charity
holding the case fetched the referral), `handover` (its case moved to another charity, which may then read it),
`referral_events` (the events notifications turns into webhooks: recorded once per referral), `data_sharing`
(an organisation the person agreed to share with read it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from contracts import events
from services.intake.models import Disclosure
from shared.clock import utcnow

if TYPE_CHECKING:
    from services.intake.models import Referral
    from services.intake.uow import IntakeUnitOfWork

PROVIDER: Final = "provider"
NOTIFICATIONS: Final = "notifications"
ORG: Final = "org"
RECIPIENT_KINDS = (PROVIDER, NOTIFICATIONS, ORG)
OFFER_SUMMARY, CASE_OPENING, HANDOVER = "offer_summary", "case_opening", "handover"
REFERRAL_EVENTS, DATA_SHARING = "referral_events", "data_sharing"


@dataclass(frozen=True)
class Recipient:
    recipient: str  # provider.<id> | notifications (contracts.events.Recipient)
    kind: str  # provider | notifications


def record(
    uow: IntakeUnitOfWork, referral_id: str, recipient_org: str, kind: str, purpose: str, sub: str | None = None
) -> None:
    """Record one disclosure about `referral_id` to `recipient_org` (a provider id, "notifications" or an org)."""
    uow.disclosures.add(
        Disclosure(
            referral_id=referral_id,
            recipient_org=recipient_org,
            recipient_kind=kind,
            recipient_sub=sub,
            purpose=purpose,
            disclosed_at=utcnow(),
        )
    )


def told_notifications(uow: IntakeUnitOfWork, referral_id: str, *, first: bool = False) -> None:
    """Events about the referral were staged for notifications: recorded once per referral (`first`: the
    referral is new, so nothing was recorded before)."""
    if first or not uow.disclosures.recorded(referral_id, NOTIFICATIONS, REFERRAL_EVENTS):
        record(uow, referral_id, NOTIFICATIONS, NOTIFICATIONS, REFERRAL_EVENTS)


def recipients_of(uow: IntakeUnitOfWork, referral: Referral) -> list[Recipient]:
    """Who must be asked to erase the referral: each charity that received anything about it (the record, and
    for referrals from before the record was complete, the charities it was offered to and the one holding it),
    then notifications, which hears of every referral. Organisations that read it under `data_sharing` are in
    the record too, but have no platform service to ask: the DPO tells them (README, Data protection)."""
    providers: list[str] = []
    for disclosure in uow.disclosures.of(referral.id):
        if disclosure.recipient_kind == PROVIDER:
            providers.append(disclosure.recipient_org)
    providers += [offer.provider_id for offer in uow.offers.of(referral.id)]
    if referral.provider_id:
        providers.append(referral.provider_id)
    unique = list(dict.fromkeys(providers))
    return [Recipient(events.provider_recipient(p), PROVIDER) for p in unique] + [
        Recipient(NOTIFICATIONS, NOTIFICATIONS)
    ]
