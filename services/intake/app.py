"""intake's composition root."""

from __future__ import annotations

from flask import Flask

from contracts.events import CATALOGUE, INTAKE_SERVICE
from services.intake.api import escalations_blueprint, providers_blueprint, referrals_blueprint
from services.intake.config import IntakeConfig
from services.intake.offers import Router
from shared.auth import TokenVerifier
from shared.config import Settings
from shared.db import is_ready, make_engine, make_session_factory
from shared.logs import configure_logging
from shared.messaging.asyncapi import document
from shared.telemetry import setup_tracing
from shared.web import create_api_app


def create_app(settings: Settings | None = None, *, verifier: TokenVerifier | None = None) -> Flask:
    settings = settings or Settings.from_env("intake")
    configure_logging("intake")
    setup_tracing("intake")
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    app, api = create_api_app(
        __name__,
        settings,
        title="Referrals intake",
        description="Where a referral enters: validated, given its pathway, stored, offered to a provider.",
        ready=lambda: is_ready(engine),
        verifier=verifier,
        asyncapi=document(CATALOGUE, INTAKE_SERVICE, title="intake events", version="1.0.0"),
    )
    router = Router(IntakeConfig.from_settings(settings).response)
    api.register_blueprint(referrals_blueprint(sessions, router))
    api.register_blueprint(escalations_blueprint(sessions))
    api.register_blueprint(providers_blueprint(sessions))
    app.extensions["sessions"] = sessions
    return app
