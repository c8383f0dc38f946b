"""notifications' records, as the unit of work hands them to handlers and use cases: who owns each referral, the
orgs' subscriptions, and the deliveries queued for them. Abstract here, with the SQLAlchemy ones beside them;
the unit tests' in-memory ones are in tests/support/fake_notifications.py.

Each method is one named question or change, so the SQL that answers it (one statement, insert-or-ignore
where two consumers may race) lives here and nowhere else.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.notifications.models import FAILED, PENDING, Delivery, IdempotencyKey, ReferralOwner, Subscription
from shared.clock import utcnow
from shared.db import insert_or_ignore

ERASED_BODY = ""  # an erased delivery's payload: nothing left to send


class ReferralOwners(abc.ABC):
    """Which org referred each referral, and which provider holds it (see models.ReferralOwner)."""

    @abc.abstractmethod
    def get(self, referral_id: str) -> ReferralOwner | None: ...

    @abc.abstractmethod
    def remember(self, referral_id: str, org_id: str, external_reference: str | None) -> ReferralOwner:
        """The referral's owner as first recorded: by this call when it is the first, else as recorded
        before (first writer wins, even against a consumer racing this one). The caller compares the org."""

    @abc.abstractmethod
    def forget_reference(self, referral_id: str) -> bool:
        """Erasure: the referrer's own reference for the referral is forgotten; False if the referral is unknown."""


class StoredResponses(abc.ABC):
    """The stored first responses of POSTs with an Idempotency-Key (shared.idempotency)."""

    @abc.abstractmethod
    def forget_naming(self, text: str) -> None:
        """Erasure: delete every stored response whose body names `text` (a referral id)."""


class WebhookSubscriptions(abc.ABC):
    """The orgs' webhook endpoints. A deleted one stays (its deliveries stay visible) but matches nothing."""

    @abc.abstractmethod
    def add(self, subscription: Subscription) -> None: ...

    @abc.abstractmethod
    def get(self, subscription_id: str) -> Subscription | None:
        """The subscription, deleted or not, of whichever org: the caller checks whose it is."""

    @abc.abstractmethod
    def matching(self, orgs: Collection[str], event_type: str) -> list[Subscription]:
        """The live subscriptions of `orgs` to `event_type`, oldest first."""


class Deliveries(abc.ABC):
    """One event to one subscription: queued pending here, sent (and its outcome recorded) by the dispatcher."""

    @abc.abstractmethod
    def add_pending(self, deliveries: Sequence[Delivery]) -> None:
        """Queue each delivery unless its subscription already has one for that event (a redelivered event)."""

    @abc.abstractmethod
    def fail_pending(self, subscription_id: str, reason: str) -> None:
        """Mark the subscription's pending deliveries failed with `reason`: they are never sent."""

    @abc.abstractmethod
    def get(self, delivery_id: str) -> Delivery | None:
        """The delivery, of whichever org: the caller checks whose it is."""

    @abc.abstractmethod
    def requeue_failed(self, subscription_id: str, since: datetime, now: datetime) -> int:
        """Queue again (Delivery.requeue) each failed delivery of the subscription created at or after `since`;
        how many. An erased one (its body gone) is never sent again."""

    @abc.abstractmethod
    def erase_of(self, referral_id: str, reason: str) -> int:
        """Erasure: the referral's deliveries lose their bodies (ids, dates, the referrer's reference) and their
        trace; those still pending fail with `reason`, never sent. The log stays: which org, what type, when,
        how it went. How many."""


# --- SQLAlchemy ---------------------------------------------------------------------------------------------

_OWNER_COLUMNS = ("referral_id", "org_id", "external_reference", "first_seen_at")
_DELIVERY_COLUMNS = (
    "id",
    "webhook_id",
    "subscription_id",
    "org_id",
    "event_type",
    "event_id",
    "referral_id",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
    "traceparent",
    "tracestate",
)


class SqlReferralOwners(ReferralOwners):
    def __init__(self, session: Session):
        self._session = session

    def get(self, referral_id: str) -> ReferralOwner | None:
        return self._session.get(ReferralOwner, referral_id)

    def remember(self, referral_id: str, org_id: str, external_reference: str | None) -> ReferralOwner:
        owner = self.get(referral_id)  # known after the referral's first event: one statement, not two
        if owner is None:
            values = {
                "referral_id": referral_id,
                "org_id": org_id,
                "external_reference": external_reference,
                "first_seen_at": utcnow(),
            }
            table = ReferralOwner.__table__
            insert = insert_or_ignore(table, _OWNER_COLUMNS, conflict=("referral_id",))  # type: ignore[arg-type]
            self._session.execute(insert, values)
            owner = self._session.get_one(ReferralOwner, referral_id)  # ours, or that of a consumer that won the race
        return owner

    def forget_reference(self, referral_id: str) -> bool:
        owner = self.get(referral_id)
        if owner is not None:
            owner.external_reference = None
        return owner is not None


class SqlStoredResponses(StoredResponses):
    def __init__(self, session: Session):
        self._session = session

    def forget_naming(self, text: str) -> None:
        # A body is bytes (JSON or not): matched here, in the at most a day of rows there are (shared.idempotency).
        needle = text.encode()
        stored = self._session.execute(select(IdempotencyKey.id, IdempotencyKey.body)).all()
        doomed = [key for key, body in stored if body and needle in body]
        if doomed:
            self._session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(doomed)))


class SqlWebhookSubscriptions(WebhookSubscriptions):
    def __init__(self, session: Session):
        self._session = session

    def add(self, subscription: Subscription) -> None:
        self._session.add(subscription)

    def get(self, subscription_id: str) -> Subscription | None:
        return self._session.get(Subscription, subscription_id)

    def matching(self, orgs: Collection[str], event_type: str) -> list[Subscription]:
        live = self._session.scalars(
            select(Subscription)
            .where(Subscription.org_id.in_(orgs), Subscription.deleted_at.is_(None))
            .order_by(Subscription.created_at)
        ).all()
        # The event types are a JSON list: matched here, not with one dialect's JSON operators (SQLite in dev).
        return [subscription for subscription in live if event_type in subscription.events]


class SqlDeliveries(Deliveries):
    def __init__(self, session: Session):
        self._session = session

    def add_pending(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        statement = insert_or_ignore(
            Delivery.__table__,  # type: ignore[arg-type]
            _DELIVERY_COLUMNS,
            conflict=("subscription_id", "event_id"),  # a redelivered event can never queue a second webhook
        )
        self._session.execute(statement, [{c: getattr(d, c) for c in _DELIVERY_COLUMNS} for d in deliveries])

    def fail_pending(self, subscription_id: str, reason: str) -> None:
        self._session.execute(
            update(Delivery)
            .where(Delivery.subscription_id == subscription_id, Delivery.status == PENDING)
            .values(status=FAILED, next_attempt_at=None, last_error=reason)
        )

    def get(self, delivery_id: str) -> Delivery | None:
        return self._session.get(Delivery, delivery_id)

    def requeue_failed(self, subscription_id: str, since: datetime, now: datetime) -> int:
        # One statement, however many failed in an outage; the values are Delivery.requeue's.
        result = self._session.execute(
            update(Delivery)
            .where(
                Delivery.subscription_id == subscription_id,
                Delivery.status == FAILED,
                Delivery.created_at >= since,
                Delivery.payload != ERASED_BODY,
            )
            .values(status=PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount  # type: ignore[attr-defined]

    def erase_of(self, referral_id: str, reason: str) -> int:
        mine = Delivery.referral_id == referral_id
        self._session.execute(
            update(Delivery)
            .where(mine, Delivery.status == PENDING)
            .values(status=FAILED, next_attempt_at=None, last_error=reason)
            .execution_options(synchronize_session=False)
        )
        result = self._session.execute(
            update(Delivery)
            .where(mine)
            .values(payload=ERASED_BODY, traceparent=None, tracestate=None)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount  # type: ignore[attr-defined]
