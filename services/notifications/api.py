"""Routes: subscriptions (an org's webhook endpoints) and the deliveries made to them. Thin."""

from __future__ import annotations

import uuid

from flask_smorest import abort
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from services.notifications.domain import UnsafeWebhookUrl, new_secret
from services.notifications.egress import UrlGuard
from services.notifications.models import FAILED, PENDING, Delivery, Subscription
from services.notifications.schemas import (
    DeliveryQuerySchema,
    DeliverySchema,
    SubscriptionCreatedSchema,
    SubscriptionCreateSchema,
    SubscriptionSchema,
)
from shared.auth import current_principal, requires
from shared.clock import utcnow
from shared.web import Blueprint, page

NOT_FOUND = "No such subscription."


def make_blueprint(sessions: sessionmaker, guard: UrlGuard) -> Blueprint:
    blp = Blueprint(
        "notifications",
        __name__,
        url_prefix="/v1",
        description="Signed webhooks (Standard Webhooks) about your organisation's referrals.",
    )

    def own_subscription(session, subscription_id: str) -> Subscription:
        # Another org's subscription is a 404, never a 403 that would confirm it exists.
        subscription = session.get(Subscription, subscription_id)
        if subscription is None or subscription.org_id != current_principal().org or subscription.deleted_at:
            abort(404, message=NOT_FOUND)
        return subscription

    @blp.route("/subscriptions", methods=["POST"])
    @requires("subscriptions:write")
    @blp.arguments(SubscriptionCreateSchema)
    @blp.response(201, SubscriptionCreatedSchema)
    def create_subscription(body: dict):
        """Subscribe a webhook URL to event types. The signing secret is returned only here."""
        try:
            guard.check(body["url"])
        except UnsafeWebhookUrl as exc:
            abort(422, message="The webhook URL is not allowed.", errors={"json": {"url": [f"The URL {exc}."]}})
        subscription = Subscription(
            id=str(uuid.uuid4()),
            org_id=current_principal().org,
            url=body["url"],
            events=list(dict.fromkeys(body["events"])),
            secret=body.get("secret") or new_secret(),
            created_at=utcnow(),
        )
        with sessions.begin() as session:
            session.add(subscription)
        return subscription

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
        with sessions.begin() as session:
            subscription = own_subscription(session, subscription_id)
            subscription.deleted_at = utcnow()
            session.execute(
                update(Delivery)
                .where(Delivery.subscription_id == subscription.id, Delivery.status == PENDING)
                .values(status=FAILED, next_attempt_at=None, last_error="subscription deleted")
            )

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
