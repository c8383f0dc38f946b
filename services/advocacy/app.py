"""The composition root of advocacy's API: settings in, a Flask app out. No I/O at import."""

from __future__ import annotations

from flask import Flask

from contracts.events import ADVOCACY, CATALOGUE
from services.advocacy.bootstrap import make_continuity
from services.advocacy.config import AdvocacyConfig
from services.advocacy.continuity.wall_clock import WallClock
from services.advocacy.web.casework_api import make_blueprint
from services.advocacy.web.continuity_api import make_continuity_blueprint
from services.advocacy.web.page import init_page
from shared.auth import TokenVerifier
from shared.config import Settings
from shared.db import is_ready, make_engine, make_session_factory
from shared.logs import configure_logging
from shared.messaging.asyncapi import document
from shared.telemetry import setup_tracing
from shared.web import create_api_app

DESCRIPTION = (
    "One charity's instance: its advocates, the offers of referrals it receives (minimised), and the "
    "cases it opens once intake has allocated a referral to it and disclosed the full record."
)


def create_app(
    settings: Settings | None = None, *, verifier: TokenVerifier | None = None, wall_clock: WallClock | None = None
) -> Flask:
    settings = settings or Settings.from_env("advocacy")
    config = AdvocacyConfig.from_settings(settings)  # a clear ConfigError when PROVIDER_ID is missing
    continuity = make_continuity(config, wall_clock)  # `wall_clock`: tests move time without sleeping
    configure_logging("advocacy")
    setup_tracing("advocacy")
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    app, api = create_api_app(
        __name__,
        settings,
        title=f"advocacy ({config.provider_id})",
        description=DESCRIPTION,
        ready=lambda: is_ready(engine),
        verifier=verifier,
        # One document for every charity's instance: addressed channels name the provider as a parameter.
        asyncapi=document(CATALOGUE, ADVOCACY, title="advocacy events", version="1.0.0"),
    )
    api.register_blueprint(make_blueprint(sessions, continuity.casework))
    api.register_blueprint(make_continuity_blueprint(sessions, continuity))
    init_page(app, sessions, continuity, config, settings)  # the advocate's page: HTML, outside /v1 and OpenAPI
    # For tests and tooling that need the same database handles as the app.
    app.extensions["advocacy"] = {"config": config, "engine": engine, "sessions": sessions, "continuity": continuity}
    return app


if __name__ == "__main__":  # dev only; `make run` serves it with gunicorn
    app = create_app()
    app.run(host="127.0.0.1", port=app.extensions["advocacy"]["config"].port)
