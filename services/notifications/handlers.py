"""Event handlers: one event about a referral -> one pending delivery per matching subscription of its org.

intake's events say whose referral it is and who holds it; a provider's events are accepted only from the
provider holding the referral (the catalogue has already checked that the provider itself published it).

Each runs inside shared.inbox.EventHandlers' unit of work, with the event's inbox row, so a redelivered event
is a no-op; a delivery per (subscription, event) at most backs that up. Sending happens later, in the
dispatcher. An event no subscription wants, and that changes none of the records kept here, is acked before
any unit of work opens (`effect_check`, services/notifications/interest.py).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable

import msgspec

from contracts import events
from services.notifications.domain import (
    RECEIVING_AGENCY_EVENTS,
    local_authority_recipient,
    webhook_body,
    webhook_id,
)
from services.notifications.interest import Interest, has_effect
from services.notifications.models import PENDING, Delivery, ReferralOwner
from services.notifications.uow import NotificationsUnitOfWork
from shared.clock import utcnow
from shared.inbox import effect_checked
from shared.messaging.catalogue import Subscriptions
from shared.messaging.envelope import Event
from shared.messaging.errors import PermanentError
from shared.telemetry import carrier_from_current

log = logging.getLogger(__name__)

# intake's events that say who holds a referral now: recorded whoever subscribes, since a provider's events
# about the referral are accepted only from its holder.
HOLDER_EVENTS = (events.ReferralAllocated, events.ReferralTransferred)


class UnknownReferral(Exception):
    """A provider's event about a referral whose owner or holder intake has not told us of yet. Queues do not
    keep order across publishers (intake's event may still be on its way), so the consumer retries it later."""


def on_referral_news(uow: NotificationsUnitOfWork, event: Event) -> None:
    """intake's referral.*: queue webhooks for the referring org, and note who holds the referral now."""
    news: events.ReferralNews = event.data
    owner = uow.owners.remember(news.referral_id, news.org_id, news.external_reference)
    if owner.org_id != news.org_id:
        # A referral never changes org: an event saying otherwise is broken. Park it for a person.
        raise PermanentError(f"event org_id contradicts the org recorded for referral {news.referral_id}")
    if isinstance(news, HOLDER_EVENTS):
        owner.hold(news.provider_id, event.occurred_at())
    _queue(uow, event, owner, _with_local_authority(event, [owner.org_id]))


def on_case_news(uow: NotificationsUnitOfWork, event: Event) -> None:
    """A provider's case.opened, clock.*, transition.*: accepted only from the provider that holds the referral
    (intake's allocation and transfer events say which); queued for the referring org, and for transition.*
    also for the receiving agency the transition names."""
    news: events.CaseNews = event.data
    owner = uow.owners.get(news.referral_id)
    if owner is None or owner.provider_id is None:
        raise UnknownReferral(f"referral {news.referral_id} has no known holder yet")
    if owner.provider_id != news.provider_id:
        raise PermanentError(f"provider {news.provider_id} does not hold referral {news.referral_id}")
    orgs = [owner.org_id]
    receiving = getattr(news, "receiving_agency", None)
    if event.type in RECEIVING_AGENCY_EVENTS and receiving and receiving != owner.org_id:
        orgs.append(receiving)  # the agency a transition hands the survivor to hears of it too
    _queue(uow, event, owner, _with_local_authority(event, orgs))


ERASED = "erased: the referral's personal data was erased"
# What notifications keeps of an erased referral, without personal data: the delivery log (which org was sent
# which event type, when and how it went), the org's own audit of what it was told; and the holder row
# (referral id, org, provider: ids only), so a provider's late event about it is still routed, not retried.
ERASURE_KEEPS = (
    events.Kept(record="delivery_log", because="audit"),
    events.Kept(record="referral_holder", because="audit"),
)


def on_erasure_requested(uow: NotificationsUnitOfWork, event: Event) -> None:
    """intake: erase the referral's personal data here, in this one transaction, and answer erasure.completed
    as the platform's notifications (provider_id None). A repeat, or a referral never seen, answers the same."""
    requested: events.ReferralErasureRequested = event.data
    known = uow.owners.forget_reference(requested.referral_id)
    erased = uow.deliveries.erase_of(requested.referral_id, ERASED)
    uow.responses.forget_naming(requested.referral_id)
    uow.scrub_after_commit = True
    uow.stage(
        events.ErasureCompleted(
            referral_id=requested.referral_id,
            erasure_id=requested.erasure_id,
            recipient=requested.recipient,
            erased_at=utcnow(),
            provider_id=None,
            kept=list(ERASURE_KEEPS) if known or erased else [],
        )
    )
    log.info("referral erased", extra={"referral_id": requested.referral_id, "deliveries": erased})


def _with_local_authority(event: Event, orgs: list[str]) -> list[str]:
    """`orgs`, and the child's local authority when the event is one it hears of (domain.LOCAL_AUTHORITY_EVENTS):
    the org intake resolved for the child's own referral, so it hears of that child and of no other."""
    local_authority = local_authority_recipient(event.type, msgspec.to_builtins(event.data))
    if local_authority is not None and local_authority not in orgs:
        return [*orgs, local_authority]
    return orgs


def _queue(uow: NotificationsUnitOfWork, event: Event, owner: ReferralOwner, orgs: list[str]) -> None:
    matching = uow.subscriptions.matching(orgs, event.type)
    if not matching:
        return
    referral_id = owner.referral_id
    data = msgspec.to_builtins(event.data)

    def payload_for(org_id: str) -> str:
        # The referrer's own reference is the referrer's: a receiving agency gets ids and dates, not it.
        mine = owner.external_reference if org_id == owner.org_id else None
        body = webhook_body(
            event.type, event.time or utcnow().isoformat(), data, referral_id=referral_id, external_reference=mine
        )
        return json.dumps(body, separators=(",", ":"))

    payloads = {org_id: payload_for(org_id) for org_id in orgs}
    carrier = carrier_from_current()
    now = utcnow()
    uow.deliveries.add_pending(
        [
            Delivery(
                id=str(uuid.uuid4()),
                webhook_id=webhook_id(event.id, subscription.id),
                subscription_id=subscription.id,
                org_id=subscription.org_id,
                event_type=event.type,
                event_id=event.id,
                referral_id=referral_id,
                payload=payloads[subscription.org_id],
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                traceparent=carrier.get("traceparent"),
                tracestate=carrier.get("tracestate"),
            )
            for subscription in matching
        ]
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


def effect_check(interest: Interest) -> Callable[[Event], bool]:
    """Whether an accepted event of intake's or a provider's news is worth its transaction (interest.has_effect):
    intake's say whose referral it is (and its child's local authority), so only those orgs' subscriptions
    count; a provider's name no org, which only the referral's owner row would say."""

    def check(event: Event) -> bool:
        if isinstance(event.data, HOLDER_EVENTS):
            return True  # without reading the subscriptions
        orgs = (
            _with_local_authority(event, [event.data.org_id]) if isinstance(event.data, events.ReferralNews) else None
        )
        return has_effect(event.type, orgs, interest.wanted(), keeps_records=False)

    return check


def subscriptions(interest: Interest | None = None) -> Subscriptions:
    """notifications' handlers; with `interest`, the webhook news unwanted by any subscription is acked with no
    transaction (the erasure always has its own)."""
    check = effect_check(interest) if interest is not None else None
    handled = Subscriptions(events.CATALOGUE, events.NOTIFICATIONS)
    for entry in events.CATALOGUE.consumed_by(events.NOTIFICATIONS):
        if entry.data is events.ReferralErasureRequested:
            handled.on(entry.data, on_erasure_requested)
            continue
        handler = on_referral_news if entry.publisher == events.INTAKE else on_case_news
        handled.on(entry.data, effect_checked(handler, check) if check is not None else handler)
    return handled.complete()
