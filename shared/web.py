"""The base every service's API is built on: flask-smorest, errors, auth, health, docs, tracing.

Errors follow flask-smorest's shape (`{code, status, message, errors}`) with per-field messages under
`errors`. Malformed JSON is a 422 naming `json`, like any other invalid body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flask_smorest
from flask import Flask, send_from_directory
from flask_smorest import Api, abort
from sqlalchemy import Select, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from swagger_ui_bundle import swagger_ui_path
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge

from shared.auth import TokenVerifier, init_auth
from shared.config import Settings
from shared.db import is_unavailable


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 422

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        abort(
            422,
            message="The body is not valid JSON.",
            errors={"json": {"_schema": [f"Malformed JSON: {error}"]}},
        )


def page(session: Session, statement: Select, pagination_parameters) -> list:
    """One page of an ordered `statement`'s rows for a `@blp.paginate()` view, which reports the total
    (counted over the same filters) in its X-Pagination header."""
    counted = statement.order_by(None).subquery()
    pagination_parameters.item_count = session.scalar(select(func.count()).select_from(counted))
    paged = statement.offset(pagination_parameters.first_item).limit(pagination_parameters.page_size)
    return list(session.scalars(paged).all())


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose malformed-JSON error is a 422 like every other bad body."""

    ARGUMENTS_PARSER = _Parser()


def create_api_app(
    import_name: str,
    settings: Settings,
    *,
    title: str,
    description: str,
    ready: Callable[[], bool],
    verifier: TokenVerifier | None = None,
    asyncapi: dict[str, Any] | None = None,
) -> tuple[Flask, Api]:
    """The service's app and its flask-smorest Api. `asyncapi`, its AsyncAPI document (built once from the event
    catalogue, shared.messaging.asyncapi), is served at /asyncapi.json: the events beside the HTTP API."""
    app = Flask(import_name)
    app.config.update(
        API_TITLE=title,
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # These machines (and many agency networks) are offline: serve Swagger UI's assets ourselves.
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    app.json.sort_keys = False  # keep fields in the order the schemas declare them
    api = Api(
        app,
        spec_kwargs={
            "info": {
                "description": description + "\n\nAny request may be answered `503 Service Unavailable` with "
                "`Retry-After: 1` while the database is unreachable or has just dropped a connection: "
                "nothing was written, and the same request can be sent again."
            },
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
            },
            "security": [{"bearerAuth": []}],
        },
    )
    init_auth(app, verifier or TokenVerifier(settings))

    @app.get("/docs/assets/<path:filename>")
    def swagger_assets(filename: str):
        return send_from_directory(str(swagger_ui_path), filename, max_age=3600)

    if asyncapi is not None:

        @app.get("/asyncapi.json")
        def asyncapi_json():
            return asyncapi

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "service": settings.service}

    @app.get("/readyz")
    def readyz():
        if ready():
            return {"status": "ready", "service": settings.service}
        return {"status": "not ready", "service": settings.service, "reason": "database unreachable"}, 503

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_error):
        return {
            "code": 413,
            "status": "Payload Too Large",
            "message": f"The body is larger than {settings.max_body_bytes} bytes.",
        }, 413

    @app.errorhandler(DBAPIError)
    def database_unavailable(error: DBAPIError):
        # A dropped connection (the database restarted) or a database that cannot be reached: nothing was
        # written, and the next attempt gets a fresh connection. Any other database error stays a 500.
        if not is_unavailable(error):
            raise error
        app.logger.warning("database unavailable", extra={"error": error.__class__.__name__})
        body = {"code": 503, "status": "Service Unavailable", "message": "The database is unavailable; retry shortly."}
        return body, 503, {"Retry-After": "1"}

    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    # Per app, inside the factory: the global instrument() misses apps made earlier (contrib#546).
    FlaskInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,docs,openapi.json,asyncapi.json")
    return app, api
