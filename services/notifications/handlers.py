"""Event handlers: one event about a referral -> one pending delivery per matching subscription of its org.

intake's events say whose referral it is and who holds it; a provider's events are accepted only from the
provider holding the referral (the catalogue has already checked that the provider itself published it).

Runs inside shared.inbox.EventHandlers' transaction, so a redelivered event is a no-op; the unique
(subscription_id, event_id) constraint backs that up. Sending happens later, in the dispatcher.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime

import msgspec
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contracts import events
from services.notifications.domain import RECEIVING_AGENCY_EVENTS, webhook_body, webhook_id
from services.notifications.models import PENDING, Delivery, ReferralOwner, Subscription
from shared.clock import utcnow
from shared.db import insert_or_ignore
from shared.messaging.catalogue import INTAKE, Subscriptions
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.telemetry import carrier_from_current

log = logging.getLogger(__name__)


class UnknownReferral(Exception):
    """A provider's event about a referral whose owner or holder intake has not told us of yet. Queues do not
    keep order across publishers (intake's event may still be on its way), so the consumer retries it later."""


def _owner_of(session: Session, news: events.ReferralNews) -> ReferralOwner:
    """Remember who referred the referral (first writer wins) and return that record."""
    find = select(ReferralOwner).where(ReferralOwner.referral_id == news.referral_id)
    owner = session.scalars(find).first()  # known after the referral's first event: one statement, not two
    if owner is None:
        values = {
            "referral_id": news.referral_id,
            "org_id": news.org_id,
            "external_reference": news.external_reference,
            "first_seen_at": utcnow(),
        }
        session.execute(insert_or_ignore(ReferralOwner.__table__, tuple(values), conflict=("referral_id",)), values)
        owner = session.scalars(find).one()  # ours, or another consumer's that won the race
    if owner.org_id != news.org_id:
        # A referral never changes org: an event saying otherwise is broken. Park it for a person.
        raise PermanentError(f"event org_id contradicts the org recorded for referral {news.referral_id}")
    return owner


def _hold(session: Session, owner: ReferralOwner, provider_id: str, since: datetime) -> None:
    """intake allocated or transferred the referral to `provider_id`; a late, older decision never wins."""
    if owner.provider_since is not None and owner.provider_since >= since:
        return
    session.execute(
        update(ReferralOwner)
        .where(ReferralOwner.referral_id == owner.referral_id)
        .values(provider_id=provider_id, provider_since=since)
    )
    owner.provider_id, owner.provider_since = provider_id, since


def on_referral_news(session: Session, event: Event) -> None:
    """intake's referral.*: queue webhooks for the referring org, and note who holds the referral now."""
    news: events.ReferralNews = event.data
    owner = _owner_of(session, news)
    if isinstance(news, events.ReferralAllocated | events.ReferralTransferred):
        _hold(session, owner, news.provider_id, event.occurred_at())
    _queue(session, event, owner, [owner.org_id])


def on_case_news(session: Session, event: Event) -> None:
    """A provider's case.opened, clock.*, transition.*: accepted only from the provider that holds the referral
    (intake's allocation and transfer events say which); queued for the referring org, and for transition.*
    also for the receiving agency the transition names."""
    news: events.CaseNews = event.data
    owner = session.scalars(select(ReferralOwner).where(ReferralOwner.referral_id == news.referral_id)).first()
    if owner is None or owner.provider_id is None:
        raise UnknownReferral(f"referral {news.referral_id} has no known holder yet")
    if owner.provider_id != news.provider_id:
        raise PermanentError(f"provider {news.provider_id} does not hold referral {news.referral_id}")
    orgs = [owner.org_id]
    receiving = getattr(news, "receiving_agency", None)
    if event.type in RECEIVING_AGENCY_EVENTS and receiving and receiving != owner.org_id:
        orgs.append(receiving)  # the agency a transition hands the survivor to hears of it too
    _queue(session, event, owner, orgs)


def _queue(session: Session, event: Event, owner: ReferralOwner, orgs: list[str]) -> None:
    referral_id = owner.referral_id
    data = msgspec.to_builtins(event.data)
    subscriptions = session.scalars(
        select(Subscription)
        .where(Subscription.org_id.in_(orgs), Subscription.deleted_at.is_(None))
        .order_by(Subscription.created_at)
    ).all()
    matching = [s for s in subscriptions if event.type in s.events]
    if not matching:
        return
    reference = owner.external_reference

    def payload_for(org_id: str) -> str:
        # The referrer's own reference is the referrer's: a receiving agency gets ids and dates, not it.
        mine = reference if org_id == owner.org_id else None
        body = webhook_body(
            event.type, event.time or utcnow().isoformat(), data, referral_id=referral_id, external_reference=mine
        )
        return json.dumps(body, separators=(",", ":"))

    payloads = {org_id: payload_for(org_id) for org_id in orgs}
    carrier = carrier_from_current()
    now = utcnow()
    for subscription in matching:
        payload = payloads[subscription.org_id]
        values = {
            "id": str(uuid.uuid4()),
            "webhook_id": webhook_id(event.id, subscription.id),
            "subscription_id": subscription.id,
            "org_id": subscription.org_id,
            "event_type": event.type,
            "event_id": event.id,
            "referral_id": referral_id,
            "payload": payload,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "traceparent": carrier.get("traceparent"),
            "tracestate": carrier.get("tracestate"),
        }
        session.execute(
            insert_or_ignore(Delivery.__table__, tuple(values), conflict=("subscription_id", "event_id")), values
        )
    log.info(
        "webhook deliveries queued",
        extra={
            "event_type": event.type,
            "event_id": event.id,
            "referral_id": referral_id,
            "org_id": owner.org_id,
            "subscriptions": len(matching),
        },
    )


def subscriptions() -> Subscriptions:
    handled = Subscriptions(events.CATALOGUE, events.NOTIFICATIONS)
    for entry in events.CATALOGUE.consumed_by(events.NOTIFICATIONS):
        handled.on(entry.data, on_referral_news if entry.publisher == INTAKE else on_case_news)
    return handled.complete()
