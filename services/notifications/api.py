"""Routes: subscriptions (an org's webhook endpoints) and the deliveries made to them. Thin."""

from __future__ import annotations

from http import HTTPStatus

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
from shared.web import Blueprint, page


def _refused(code: int, message: str, field: str | None = None, detail: str | None = None) -> tuple[dict, int]:
    body: dict = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if field:
        body["errors"] = {"json": {field: [detail or message]}}
    return body, code


# The one error table: each refusal of the use cases, and what it means over HTTP.
REFUSALS = {
    NoSuchSubscription: lambda error: _refused(404, "No such subscription."),
    UnsafeWebhookUrl: lambda error: _refused(422, "The webhook URL is not allowed.", "url", f"The URL {error}."),
}


def make_blueprint(notifications: Notifications) -> Blueprint:
    blp = Blueprint(
        "notifications",
        __name__,
        url_prefix="/v1",
        description="Signed webhooks (Standard Webhooks) about your organisation's referrals.",
    )
    for exception, answer in REFUSALS.items():
        blp.errorhandler(exception)(answer)
    sessions, units = notifications.sessions, notifications.units

    @blp.route("/subscriptions", methods=["POST"])
    @requires("subscriptions:write")
    @blp.arguments(SubscriptionCreateSchema)
    @blp.response(201, SubscriptionCreatedSchema)
    def create_subscription(body: dict):
        """Subscribe a webhook URL to event types. The signing secret is returned only here."""
        return subscribe(units(), notifications.guard, org_id=current_principal().org, **body)

    @blp.route("/subscriptions", methods=["GET"])
    @requires("subscriptions:write")
    @blp.response(200, SubscriptionSchema(many=True))
    def list_subscriptions():
        """Your organisation's subscriptions (without their secrets)."""
        with sessions() as session:
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
        unsubscribe(units(), org_id=current_principal().org, subscription_id=subscription_id)

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
        with sessions() as session:
            return page(session, query.order_by(Delivery.created_at.desc(), Delivery.id.desc()), pagination_parameters)

    return blp
