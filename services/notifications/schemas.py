"""The wire contract of the notifications API (marshmallow 4; unknown fields are rejected)."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from services.notifications.domain import EVENT_TYPES, MAX_URL_LENGTH, secret_problem


def _validate_secret(secret: str) -> None:
    problem = secret_problem(secret)
    if problem:
        raise ValidationError(f"The secret {problem}.")


class SubscriptionCreateSchema(Schema):
    url = fields.String(
        required=True,
        validate=[
            validate.Length(min=1, max=MAX_URL_LENGTH),
            validate.Regexp(r"^https?://[^\s/?#]+[^\s]*$", error="Must be an absolute http(s) URL."),
        ],
        metadata={
            "description": "Where webhooks are POSTed: https, on a public address (checked when subscribing and "
            "before each delivery; a URL that resolves to a private or loopback address is refused, 422).",
            "format": "uri",
        },
    )
    events = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)),
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "The event types to receive."},
    )
    secret = fields.String(
        validate=[_validate_secret, validate.Regexp(r"^whsec_[A-Za-z0-9+/]+={0,2}$", error="Must start with whsec_.")],
        metadata={"description": "Signing secret, `whsec_` + base64 of 24-64 bytes; generated when absent."},
    )


class SubscriptionSchema(Schema):
    id = fields.String(dump_only=True)
    url = fields.String(dump_only=True)
    events = fields.List(fields.String(), dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class SubscriptionCreatedSchema(SubscriptionSchema):
    secret = fields.String(
        dump_only=True,
        metadata={"description": "Returned only in this response: store it to verify webhook signatures."},
    )


class SecretRotatedSchema(SubscriptionCreatedSchema):
    secret = fields.String(
        dump_only=True,
        metadata={"description": "The new signing secret, returned only in this response."},
    )
    previous_secret_expires_at = fields.DateTime(
        dump_only=True,
        metadata={
            "description": "Until then webhooks carry a signature by the previous secret too "
            "(`webhook-signature: v1,<new> v1,<previous>`); from then on by the new one only."
        },
    )


class RedeliveryRequestSchema(Schema):
    since = fields.AwareDateTime(
        required=True,
        metadata={"description": "Redeliver the failed deliveries created at or after this time (with an offset)."},
    )


class RedeliveryQueuedSchema(Schema):
    subscription_id = fields.String(dump_only=True)
    since = fields.DateTime(dump_only=True)
    queued = fields.Integer(
        dump_only=True,
        metadata={"description": "How many failed deliveries were queued again, each with its own webhook-id."},
    )


class DeliveryQuerySchema(Schema):
    referral_id = fields.String(validate=validate.Length(min=1, max=64))


class DeliverySchema(Schema):
    id = fields.String(dump_only=True)
    webhook_id = fields.String(
        dump_only=True, metadata={"description": "The `webhook-id` header: the same on every attempt and redelivery."}
    )
    subscription_id = fields.String(dump_only=True)
    event_type = fields.String(dump_only=True)
    event_id = fields.String(dump_only=True)
    referral_id = fields.String(dump_only=True, allow_none=True, metadata={"description": "None for webhook.ping."})
    status = fields.String(dump_only=True, metadata={"enum": ["pending", "delivered", "failed"]})
    attempts = fields.Integer(
        dump_only=True, metadata={"description": "Attempts since it was queued (again, for a redelivery)."}
    )
    last_status_code = fields.Integer(dump_only=True, allow_none=True)
    last_error = fields.String(dump_only=True, allow_none=True)
    next_attempt_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    delivered_at = fields.DateTime(dump_only=True, allow_none=True)
