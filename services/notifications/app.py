"""The notifications API's composition root: `gunicorn 'services.notifications.app:create_app()'`."""

from __future__ import annotations

from flask import Flask

from contracts.events import CATALOGUE, NOTIFICATIONS
from services.notifications import subject_access_api
from services.notifications.api import EXTENSION, blp
from services.notifications.bootstrap import Notifications, bootstrap
from services.notifications.figures import notifications_figures
from services.notifications.models import IdempotencyKey, Outbox
from shared import metrics
from shared.auth import TokenVerifier
from shared.config import Settings
from shared.db import is_ready
from shared.idempotency import SqlKeyStore, init_idempotency
from shared.logs import configure_logging
from shared.messaging.asyncapi import document
from shared.outbox_metrics import outbox_figures
from shared.telemetry import setup_tracing
from shared.web import create_api_app

DESCRIPTION = """Subscribe an HTTPS endpoint to events about your organisation's referrals and receive them as
signed webhooks ([Standard Webhooks](https://www.standardwebhooks.com/): `webhook-id`, `webhook-timestamp`,
`webhook-signature`, plus a W3C `traceparent`). Failed deliveries are retried with backoff for about four days,
then marked `failed`; every delivery is listed under `/v1/deliveries` and may be redelivered with its original
`webhook-id`. A subscription can be pinged, and its secret rotated with both signatures sent for a while."""


def create_app(
    settings: Settings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    notifications: Notifications | None = None,
) -> Flask:
    """`notifications`, when given, is the composition root to serve (a test's, shared with its handlers);
    otherwise one is made from `settings`."""
    settings = settings or (notifications.settings if notifications else Settings.from_env("notifications"))
    configure_logging("notifications")
    setup_tracing("notifications-api")
    notifications = notifications or bootstrap(settings)
    engine = notifications.engine
    app, api = create_api_app(
        __name__,
        settings,
        title="Notifications",
        description=DESCRIPTION,
        ready=lambda: is_ready(engine),
        verifier=verifier,
        asyncapi=document(CATALOGUE, NOTIFICATIONS, title="notifications events", version="1.0.0"),
    )
    app.extensions[EXTENSION] = notifications  # the routes' (api.instance()) and the tests' one handle on it
    metrics.add_figures(app, outbox_figures(notifications.sessions, Outbox, "notifications"))
    metrics.add_figures(app, notifications_figures(notifications.sessions))
    # Before the blueprints: it documents the header on each POST as they are registered.
    init_idempotency(app, api, SqlKeyStore(notifications.sessions, IdempotencyKey))
    api.register_blueprint(blp)
    api.register_blueprint(subject_access_api.blp)
    return app
