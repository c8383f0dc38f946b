"""The base every service's API is built on: flask-smorest, errors, auth, health, docs, tracing.

Errors follow flask-smorest's shape (`{code, status, message, errors}`) with per-field messages under
`errors`. Malformed JSON is a 422 naming `json`, like any other invalid body.

Before any view runs, `refuse_hostile_input` answers 422, naming the field, for what no schema states but
would otherwise reach the database as a 500: a NUL character (PostgreSQL text cannot hold one) or a lone
surrogate (not encodable as UTF-8) in a path id, a query value, a form field or any JSON string; a query
parameter the operation does not document; JSON
nested deeper than MAX_JSON_DEPTH; a JSON object with a key twice; and 413 for a chunked body past the size
limit. Blueprint.paginate caps the page number.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import flask_smorest
from apispec import BasePlugin
from flask import Flask, g, request, send_from_directory
from flask_smorest import Api, abort
from marshmallow import fields as ma_fields
from marshmallow.validate import OneOf, Range, Regexp
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from sqlalchemy import Select, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from swagger_ui_bundle import swagger_ui_path
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import RequestEntityTooLarge

from shared import crypto, metrics, ratelimit
from shared.auth import TokenVerifier, init_auth
from shared.config import Settings
from shared.db import is_unavailable
from shared.health import HEALTH


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 422

    def _raw_load_json(self, req):
        # hostile_input() parsed the body already (with duplicate keys refused); malformed bodies it left for
        # this parser to report.
        return g.json_body if "json_body" in g else super()._raw_load_json(req)

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        abort(
            422,
            message="The body is not valid JSON.",
            errors={"json": {"_schema": [f"Malformed JSON: {error}"]}},
        )


MAX_JSON_DEPTH = 32
MAX_PAGE = 100_000  # with at most 100 a page: ten million rows, well past any list here
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Must not contain NUL characters or unpaired surrogates."


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _strings(document: Any) -> Iterator[tuple[str, str, int]]:
    """(path, string, depth) of every key and string value of a JSON document, without recursion."""
    stack: list[tuple[str, Any, int]] = [("", document, 1)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                yield child, key, depth
                stack.append((child, item, depth + 1))
        elif isinstance(value, list):
            yield path, "", depth
            stack.extend((f"{path}.{i}" if path else str(i), item, depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str):
            yield path, value, depth


def hostile_input() -> tuple[str, dict[str, list[str]]] | None:
    """(location, {field: [message]}) of the first thing in the request that no schema states but that would
    fail in the database or the parser, else None."""
    limit = request.max_content_length
    streamed = request.content_length is None and request.method in ("POST", "PUT", "PATCH")
    # A streamed (chunked) body has no length to refuse up front, and werkzeug stops reading at the limit
    # without a word: a body that reached it is too large, not truncated JSON.
    if streamed and limit is not None and len(request.get_data(cache=True)) >= limit:
        raise RequestEntityTooLarge()
    for location, values in (("path", request.view_args or {}), ("query", request.args), ("form", request.form)):
        for name, value in values.items():
            if isinstance(value, str) and _UNSTORABLE.search(name + value):
                return location, {_safe(name): [UNSTORABLE_MESSAGE]}
    if not request.is_json or not request.get_data(cache=True):
        return None
    try:
        document = json.loads(request.get_data(cache=True), object_pairs_hook=_no_duplicates)
        g.json_body = document  # the schema's parser loads this, not the bytes again (_Parser)
    except _DuplicateKey as exc:
        return "json", {_safe(str(exc)): ["This key appears more than once in its object."]}
    except RecursionError:
        return "json", {"_schema": [f"Nested deeper than {MAX_JSON_DEPTH} levels."]}
    except ValueError:
        return None  # malformed: the schema's parser says so (422 naming `json`)
    for path, text, depth in _strings(document):
        if depth > MAX_JSON_DEPTH:
            return "json", {"_schema": [f"Nested deeper than {MAX_JSON_DEPTH} levels."]}
        if _UNSTORABLE.search(text):
            return "json", {_safe(path) or "_schema": [UNSTORABLE_MESSAGE]}
    return None


# The guard's NUL rule in the OpenAPI documents: on every string a schema leaves otherwise unbound.
NO_NUL = "^[^\\u0000]*$"


def _no_nul(self, field, **kwargs) -> dict[str, Any]:
    """apispec attribute function: a string field without a pattern of its own says it holds no NUL."""
    bound = any(isinstance(v, Regexp | OneOf) for v in field.validators)
    return {"pattern": NO_NUL} if isinstance(field, ma_fields.String) and not bound else {}


def _safe(name: str) -> str:
    """A field's name as an error may quote it (a sender chose it): printable, and short."""
    return _UNSTORABLE.sub("?", name)[:100]


def error_body(code: int, message: str, field: str | None = None, detail: str | None = None) -> tuple[dict, int]:
    """A refusal in flask-smorest's own error shape, and its status: `{code, status, message}`, and where the
    refusal is about one field of the body, `errors: {"json": {field: [detail or message]}}`. Each service's
    error table answers with it."""
    body: dict[str, Any] = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if field:
        body["errors"] = {"json": {field: [detail or message]}}
    return body, code


def page(session: Session, statement: Select, pagination_parameters) -> list:
    """One page of an ordered `statement`'s rows for a `@blp.paginate()` view, which reports the total
    (counted over the same filters) in its X-Pagination header."""
    counted = statement.order_by(None).subquery()
    pagination_parameters.item_count = session.scalar(select(func.count()).select_from(counted))
    paged = statement.offset(pagination_parameters.first_item).limit(pagination_parameters.page_size)
    return list(session.scalars(paged).all())


class StandardErrors(BasePlugin):
    """An apispec plugin: every operation lists the errors any request to it can meet, in the Error shape. A
    token missing or wrong (401), a scope or organisation that may not (403), input refused (422), too many
    requests (429, with Retry-After: shared.ratelimit), the database unreachable (503); where a path names a
    record, none such (404); and for a write, a conflict with the record's state (409: an answered offer, a
    closed case, a duplicate) or a body too large (413)."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        for method, operation in (operations or {}).items():
            if not isinstance(operation, dict):
                continue
            codes = [401, 403, 422, 429, 503]
            if path and "{" in path:
                codes.append(404)
            if method in ("post", "put", "patch", "delete"):
                codes += [409, 413]
            responses = operation.setdefault("responses", {})
            listed = {str(code) for code in responses}
            for code in codes:
                if str(code) not in listed:
                    responses[code] = HTTPStatus(code).name  # flask-smorest's named response, in the Error shape


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose malformed-JSON error is a 422 like every other bad body, and whose
    X-Pagination header is documented as what it is: a JSON object serialised into a string."""

    ARGUMENTS_PARSER = _Parser()

    def paginate(self, pager=None, **kwargs):
        """flask-smorest's, with the page number capped at MAX_PAGE (past it, an offset no database takes): the
        one parameters schema both parses the query and documents it, so the cap is in the OpenAPI too."""
        paginated = super().paginate(pager, **kwargs)

        def decorator(view):
            wrapper = paginated(view)
            schema = wrapper._apidoc["pagination"]["parameters"]["schema"]
            schema._declared_fields["page"].validators.append(Range(max=MAX_PAGE))
            return wrapper

        return decorator

    def _document_pagination_metadata(self, spec, resp_doc):
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = {
            "description": "Pagination metadata as a JSON string: `{total, total_pages, first_page, last_page, "
            "page, previous_page, next_page}` (the page fields only where they exist).",
            "schema": {"type": "string"},
        }


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
    # Per app, inside the factory: the global instrument() misses apps made earlier (contrib#546). First of all
    # hooks, so that a request refused before any view (hostile input, no token, a rate limit) has its span too.
    FlaskInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics,docs,openapi.json,asyncapi.json")
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
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep fields in the order the schemas declare them
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
    api.ma_plugin.converter.add_attribute_function(_no_nul)
    errors_plugin = StandardErrors()
    errors_plugin.init_spec(api.spec)
    api.spec.plugins.append(errors_plugin)
    init_auth(app, verifier or TokenVerifier(settings))
    metrics.init_app(app, settings)
    ratelimit.init_app(app, api, settings)

    @functools.cache  # read once, at the first request: every blueprint is registered by then
    def documented_query() -> dict[tuple[str, str], frozenset[str]]:
        """(endpoint, method) -> the query parameters the OpenAPI document gives that operation. A route it does
        not list (the page, health, docs) is absent."""
        paths = api.spec.to_dict()["paths"]
        found = {}
        for rule in app.url_map.iter_rules():
            operations = paths.get(re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), {})
            for verb, operation in operations.items():
                if isinstance(operation, dict) and "responses" in operation:
                    names = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
                    found[(rule.endpoint, verb.upper())] = frozenset(names)
        return found

    @app.before_request
    def refuse_hostile_input():
        known = documented_query().get((request.endpoint or "", request.method))
        unknown = sorted(set(request.args) - known) if known is not None else []
        if unknown:  # as an unknown body field is: a misspelt filter would otherwise silently list everything
            errors = {"query": {_safe(name): ["Unknown parameter."] for name in unknown[:20]}}
            message = "The query has a parameter this operation does not take (see its OpenAPI entry)."
            return {"code": 422, "status": "Unprocessable Entity", "message": message, "errors": errors}, 422
        found = hostile_input()
        if found is not None:
            location, errors = found
            return {
                "code": 422,
                "status": "Unprocessable Entity",
                "message": f"The request's {location} holds what cannot be accepted.",
                "errors": {location: errors},
            }, 422
        return None

    @app.after_request
    def not_stored_not_sniffed(response):
        # Answers carry personal data: no cache (browser, proxy) keeps them, and none is read as another type
        # than it says. Swagger UI's own assets may be cached.
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.endpoint != "swagger_assets":
            response.headers["Cache-Control"] = "no-store"
        return response

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
        # With WORKER_IN_API=true the worker's loops run in this process and report the dependencies they find
        # down to shared.health: the API is not ready while one is, and says which (as a worker's /readyz does).
        database_ok, down = ready(), HEALTH.report()["down"]
        if database_ok and not down:
            return {"status": "ready", "service": settings.service}
        if not database_ok:
            down.setdefault("database", {"reason": "database unreachable"})
        reason = "database unreachable" if not database_ok else "; ".join(f"{name} unavailable" for name in down)
        return {"status": "not ready", "service": settings.service, "reason": reason, "down": down}, 503

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

    @app.errorhandler(crypto.Unreadable)
    def key_missing(error: crypto.Unreadable):
        # A data key wrapped by a KEK this process was not given (a rotation half done, a file left out): the
        # operator's to fix, nothing the caller sent; the reason names the KEK id, never a record's content.
        app.logger.error("a data key cannot be unwrapped", extra={"reason": str(error)})
        message = "A key needed to read this record is not configured on this server: retry once the operator adds it."
        body = {"code": 503, "status": "Service Unavailable", "message": message}
        return body, 503

    return app, api
