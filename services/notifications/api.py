"""Routes: subscriptions (an org's webhook endpoints: ping, secret rotation) and the deliveries made to them
(redelivery). Thin: top-level functions
of one module-level blueprint, each finding the Notifications it serves on the app (`instance()`)."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from services.notifications.bootstrap import Notifications
from services.notifications.deliveries import (
    DeliveryNotFinished,
    NoSuchDelivery,
    SubscriptionStopped,
    redeliver,
    redeliver_failed,
)
from services.notifications.domain import UnsafeWebhookUrl
from services.notifications.models import Delivery, Subscription
from services.notifications.schemas import (
    DeliveryQuerySchema,
    DeliverySchema,
    RedeliveryQueuedSchema,
    RedeliveryRequestSchema,
    SecretRotatedSchema,
    SubscriptionCreatedSchema,
    SubscriptionCreateSchema,
    SubscriptionSchema,
)
from services.notifications.subscriptions import NoSuchSubscription, ping, rotate_secret, subscribe, unsubscribe
from shared.auth import current_principal, requires
from shared.web import Blueprint, error_body, page

EXTENSION = "notifications"  # where create_app keeps the Notifications it bootstrapped


def instance() -> Notifications:
    """The Notifications this app serves: built once by create_app (services.notifications.bootstrap), kept on
    the app."""
    return current_app.extensions[EXTENSION]


# The one error table: each refusal of the use cases, and what it means over HTTP.
REFUSALS = {
    NoSuchSubscription: lambda error: error_body(404, "No such subscription."),
    NoSuchDelivery: lambda error: error_body(404, "No such delivery."),
    DeliveryNotFinished: lambda error: error_body(409, "The delivery is still pending: its retry schedule sends it."),
    SubscriptionStopped: lambda error: error_body(409, "The delivery's subscription was deleted."),
    UnsafeWebhookUrl: lambda error: error_body(422, "The webhook URL is not allowed.", "url", f"The URL {error}."),
}

blp = Blueprint(
    "notifications",
    __name__,
    url_prefix="/v1",
    description="Signed webhooks (Standard Webhooks) about your organisation's referrals.",
)
for _exception, _answer in REFUSALS.items():
    blp.errorhandler(_exception)(_answer)


@blp.route("/subscriptions", methods=["POST"])
@requires("subscriptions:write")
@blp.arguments(SubscriptionCreateSchema)
@blp.response(201, SubscriptionCreatedSchema)
def create_subscription(body: dict):
    """Subscribe a webhook URL to event types. The signing secret is returned only here."""
    notifications = instance()
    subscription = subscribe(notifications.units(), notifications.guard, org_id=current_principal().org, **body)
    notifications.interest.changed()  # seen at once by handlers in this process; a worker's reads it within 1 s
    return subscription


@blp.route("/subscriptions", methods=["GET"])
@requires("subscriptions:write")
@blp.response(200, SubscriptionSchema(many=True))
def list_subscriptions():
    """Your organisation's subscriptions (without their secrets)."""
    with instance().sessions() as session:
        return session.scalars(
            select(Subscription)
            .where(Subscription.org_id == current_principal().org, Subscription.deleted_at.is_(None))
            .order_by(Subscription.created_at, Subscription.id)
        ).all()


@blp.route("/subscriptions/<subscription_id>", methods=["DELETE"])
@requires("subscriptions:write")
@blp.response(204)
def delete_subscription(subscription_id: str):
    """Stop a subscription. Its deliveries stay visible; pending ones are marked failed."""
    notifications = instance()
    unsubscribe(notifications.units(), org_id=current_principal().org, subscription_id=subscription_id)
    notifications.interest.changed()


@blp.route("/subscriptions/<subscription_id>/ping", methods=["POST"])
@requires("subscriptions:write")
@blp.response(202, DeliverySchema)
def ping_subscription(subscription_id: str):
    """Send the subscription a `webhook.ping` (`data: {subscription_id}`), signed and retried like any webhook,
    whatever event types it takes: a test of the endpoint and of its signature check."""
    return ping(instance().units(), org_id=current_principal().org, subscription_id=subscription_id)


@blp.route("/subscriptions/<subscription_id>/secret-rotation", methods=["POST"])
@requires("subscriptions:write")
@blp.response(200, SecretRotatedSchema)
def rotate_subscription_secret(subscription_id: str):
    """A new signing secret, returned only here. Until `previous_secret_expires_at`
    (`WEBHOOK_SECRET_OVERLAP_HOURS`, 24 by default) webhooks are signed with both (`v1,<new> v1,<previous>`),
    then with the new one only. Rotating again within that time drops the oldest secret at once."""
    notifications = instance()
    return rotate_secret(
        notifications.units(),
        org_id=current_principal().org,
        subscription_id=subscription_id,
        overlap=notifications.webhooks.secret_overlap,
    )


@blp.route("/subscriptions/<subscription_id>/redelivery", methods=["POST"])
@requires("subscriptions:write")
@blp.arguments(RedeliveryRequestSchema)
@blp.response(202, RedeliveryQueuedSchema)
def redeliver_subscription(body: dict, subscription_id: str):
    """Send again every failed delivery of the subscription created since `since` (after an outage longer than
    the retry schedule), each with its original `webhook-id` and the whole retry schedule ahead of it."""
    queued = redeliver_failed(
        instance().units(), org_id=current_principal().org, subscription_id=subscription_id, since=body["since"]
    )
    return {"subscription_id": subscription_id, "since": body["since"], "queued": queued}


@blp.route("/deliveries/<delivery_id>/redelivery", methods=["POST"])
@requires("subscriptions:write")
@blp.response(202, DeliverySchema)
def redeliver_delivery(delivery_id: str):
    """Send a finished delivery again, failed or delivered, with its original `webhook-id` (a receiver that
    processed it can drop it) and the whole retry schedule ahead of it. 409 while it is still pending."""
    return redeliver(instance().units(), org_id=current_principal().org, delivery_id=delivery_id)


@blp.route("/deliveries", methods=["GET"])
@requires("subscriptions:write", "referrals:read", any_of=True)
@blp.arguments(DeliveryQuerySchema, location="query")
@blp.response(200, DeliverySchema(many=True))
@blp.paginate()
def list_deliveries(args: dict, pagination_parameters):
    """Your organisation's webhook deliveries, newest first; filter by `referral_id`."""
    query = select(Delivery).where(Delivery.org_id == current_principal().org)
    if args.get("referral_id"):
        query = query.where(Delivery.referral_id == args["referral_id"])
    with instance().sessions() as session:
        return page(session, query.order_by(Delivery.created_at.desc(), Delivery.id.desc()), pagination_parameters)
