"""Routes: subscriptions (an org's webhook endpoints) and the deliveries made to them. Thin: top-level functions
of one module-level blueprint, each finding the Notifications it serves on the app (`instance()`)."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from services.notifications.bootstrap import Notifications
from services.notifications.domain import UnsafeWebhookUrl
from services.notifications.models import Delivery, Subscription
from services.notifications.schemas import (
    DeliveryQuerySchema,
    DeliverySchema,
    SubscriptionCreatedSchema,
    SubscriptionCreateSchema,
    SubscriptionSchema,
)
from services.notifications.subscriptions import NoSuchSubscription, subscribe, unsubscribe
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
    return subscribe(notifications.units(), notifications.guard, org_id=current_principal().org, **body)


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
    unsubscribe(instance().units(), org_id=current_principal().org, subscription_id=subscription_id)


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
