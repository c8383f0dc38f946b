"""The notifications API's composition root: `gunicorn 'services.notifications.app:create_app()'`."""

from __future__ import annotations

from flask import Flask

from contracts.events import CATALOGUE, NOTIFICATIONS
from services.notifications.api import make_blueprint
from services.notifications.config import WebhookSettings
from services.notifications.egress import UrlGuard
from shared.auth import TokenVerifier
from shared.config import Settings
from shared.db import is_ready, make_engine, make_session_factory
from shared.logs import configure_logging
from shared.messaging.asyncapi import document
from shared.telemetry import setup_tracing
from shared.web import create_api_app

DESCRIPTION = """Subscribe an HTTPS endpoint to events about your organisation's referrals and receive them as
signed webhooks ([Standard Webhooks](https://www.standardwebhooks.com/): `webhook-id`, `webhook-timestamp`,
`webhook-signature`, plus a W3C `traceparent`). Failed deliveries are retried with backoff, then marked
`failed`; every delivery is listed under `/v1/deliveries`."""


def create_app(settings: Settings | None = None, *, verifier: TokenVerifier | None = None) -> Flask:
    settings = settings or Settings.from_env("notifications")
    webhooks = WebhookSettings.from_env(settings.env)
    configure_logging("notifications")
    setup_tracing("notifications-api")
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    app, api = create_api_app(
        __name__,
        settings,
        title="Notifications",
        description=DESCRIPTION,
        ready=lambda: is_ready(engine),
        verifier=verifier,
        asyncapi=document(CATALOGUE, NOTIFICATIONS, title="notifications events", version="1.0.0"),
    )
    api.register_blueprint(make_blueprint(sessions, UrlGuard(webhooks.allow_private)))
    return app
