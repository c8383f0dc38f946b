"""Event handlers: one event about a referral -> one pending delivery per matching subscription of its org.

Runs inside shared.inbox.EventHandlers' transaction, so a redelivered event is a no-op; the unique
(subscription_id, event_id) constraint backs that up. Sending happens later, in the dispatcher.
"""

from __future__ import annotations

import json
import logging
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.notifications.domain import EVENT_TYPES, RECEIVING_AGENCY_EVENTS, webhook_body, webhook_id
from services.notifications.models import PENDING, Delivery, ReferralOwner, Subscription
from shared.db import insert_or_ignore
from shared.inbox import Handler
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.outbox import utcnow
from shared.telemetry import carrier_from_current

log = logging.getLogger(__name__)


class UnknownReferral(Exception):
    """An event without `org_id` about a referral not seen yet. Queues do not keep order across
    publishers (intake's event may still be on its way), so the consumer retries it later."""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _owner_of(session: Session, referral_id: str, org_id: str | None, reference: str | None) -> ReferralOwner:
    """Remember who referred `referral_id` (first writer wins) and return that record."""
    find = select(ReferralOwner).where(ReferralOwner.referral_id == referral_id)
    owner = session.scalars(find).first()  # known after the referral's first event: one statement, not two
    if owner is None and org_id:
        values = {
            "referral_id": referral_id,
            "org_id": org_id,
            "external_reference": reference,
            "first_seen_at": utcnow(),
        }
        session.execute(insert_or_ignore(ReferralOwner.__table__, tuple(values), conflict=("referral_id",)), values)
        owner = session.scalars(find).first()  # ours, or another consumer's that won the race
    if owner is None:
        raise UnknownReferral(f"referral {referral_id} has no known org yet")
    if org_id and owner.org_id != org_id:
        # A referral never changes org: an event saying otherwise is forged or broken. Park it for a person.
        raise PermanentError(f"event org_id contradicts the org recorded for referral {referral_id}")
    if reference and owner.external_reference is None:
        session.execute(
            update(ReferralOwner).where(ReferralOwner.referral_id == referral_id).values(external_reference=reference)
        )
        owner.external_reference = reference
    return owner


def on_referral_event(session: Session, event: Event) -> None:
    """referral.*, case.opened, clock.*, transition.*: queue webhooks for the referring org, and for
    transition.* also for the receiving agency the transition names."""
    data = event.data
    referral_id = _text(data.get("referral_id")) or _text(event.subject)
    if referral_id is None:
        raise PermanentError("event names no referral")
    owner = _owner_of(session, referral_id, _text(data.get("org_id")), _text(data.get("external_reference")))
    orgs = [owner.org_id]
    receiving = _text(data.get("receiving_agency"))
    if event.type in RECEIVING_AGENCY_EVENTS and receiving and receiving != owner.org_id:
        orgs.append(receiving)  # the agency a transition hands the survivor to hears of it too
    subscriptions = session.scalars(
        select(Subscription)
        .where(Subscription.org_id.in_(orgs), Subscription.deleted_at.is_(None))
        .order_by(Subscription.created_at)
    ).all()
    matching = [s for s in subscriptions if event.type in s.events]
    if not matching:
        return
    reference = _text(data.get("external_reference")) or owner.external_reference

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


def handlers() -> dict[str, Handler]:
    return dict.fromkeys(EVENT_TYPES, on_referral_event)
