"""intake's API: the app over the use cases bootstrap() wires."""

from __future__ import annotations

from flask import Flask

from contracts.events import CATALOGUE, INTAKE_SERVICE
from services.intake import consent_api, directory_api, erasure_api, subject_access_api
from services.intake.api import EXTENSION, escalations_blp, providers_blp, referrals_blp
from services.intake.bootstrap import bootstrap
from services.intake.figures import intake_figures
from services.intake.models import IdempotencyKey, Outbox
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


def create_app(settings: Settings | None = None, *, verifier: TokenVerifier | None = None) -> Flask:
    settings = settings or Settings.from_env("intake")
    configure_logging("intake")
    setup_tracing("intake")
    intake = bootstrap(settings)
    app, api = create_api_app(
        __name__,
        settings,
        title="Referrals intake",
        description="Where a referral enters: validated, given its pathway, stored, offered to a provider.",
        ready=lambda: is_ready(intake.engine),
        verifier=verifier,
        asyncapi=document(CATALOGUE, INTAKE_SERVICE, title="intake events", version="1.0.0"),
    )
    app.extensions[EXTENSION] = intake  # the routes' (api.instance()) and the tests' one handle on it
    metrics.add_figures(app, outbox_figures(intake.sessions, Outbox, "intake"))
    metrics.add_figures(app, intake_figures(intake.sessions, erasure_ack=intake.config.erasure_ack))
    # Before the blueprints: it documents the header on each POST as they are registered.
    init_idempotency(app, api, SqlKeyStore(intake.sessions, IdempotencyKey))
    api.register_blueprint(referrals_blp)
    api.register_blueprint(escalations_blp)
    api.register_blueprint(providers_blp)
    api.register_blueprint(consent_api.blp)
    api.register_blueprint(erasure_api.blp)
    api.register_blueprint(directory_api.agencies_blp)
    api.register_blueprint(directory_api.directory_blp)
    api.register_blueprint(subject_access_api.blp)
    app.extensions["sessions"] = intake.sessions
    return app
