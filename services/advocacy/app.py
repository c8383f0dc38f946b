"""advocacy's API: settings in, a Flask app out. No I/O at import; the instance comes from the composition
root (services.advocacy.bootstrap), and the routes find it on the app (services.advocacy.web.context)."""

from __future__ import annotations

from flask import Flask

from contracts.events import ADVOCACY, CATALOGUE
from services.advocacy.bootstrap import bootstrap
from services.advocacy.config import settings_from_env
from services.advocacy.continuity.wall_clock import WallClock
from services.advocacy.models import IdempotencyKey, Outbox
from services.advocacy.web import (
    care_api,
    casework_api,
    consent_api,
    continuity_api,
    handover_api,
    subject_access_api,
)
from services.advocacy.web.context import EXTENSION
from services.advocacy.web.page import init_page
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

DESCRIPTION = (
    "One charity's instance: its advocates, the offers of referrals it receives (minimised), and the "
    "cases it opens once intake has allocated a referral to it and disclosed the full record."
)


def create_app(
    settings: Settings | None = None, *, verifier: TokenVerifier | None = None, wall_clock: WallClock | None = None
) -> Flask:
    settings = settings or settings_from_env()
    advocacy = bootstrap(settings, wall_clock=wall_clock)  # `wall_clock`: tests move time without sleeping
    configure_logging("advocacy")
    setup_tracing("advocacy")
    app, api = create_api_app(
        __name__,
        settings,
        title=f"advocacy ({advocacy.provider_id})",
        description=DESCRIPTION,
        ready=lambda: is_ready(advocacy.engine),
        verifier=verifier,
        # One document for every charity's instance: addressed channels name the provider as a parameter.
        asyncapi=document(CATALOGUE, ADVOCACY, title="advocacy events", version="1.0.0"),
    )
    app.extensions[EXTENSION] = advocacy  # the routes', and the tests', one handle on the instance
    # One charity's instance: its scrape target names the provider; the figure names the service.
    metrics.add_figures(app, outbox_figures(advocacy.sessions, Outbox, "advocacy"))
    # Before the blueprints: it documents the header on each POST as they are registered.
    init_idempotency(app, api, SqlKeyStore(advocacy.sessions, IdempotencyKey))
    api.register_blueprint(casework_api.blp)
    api.register_blueprint(continuity_api.blp)
    api.register_blueprint(consent_api.blp)
    api.register_blueprint(handover_api.blp)
    api.register_blueprint(care_api.blp)
    api.register_blueprint(subject_access_api.blp)
    init_page(app)  # the advocate's page: HTML, outside /v1 and OpenAPI
    return app


if __name__ == "__main__":  # dev only; `make run` serves it with gunicorn
    app = create_app()
    app.run(host="127.0.0.1", port=app.extensions[EXTENSION].config.port)
