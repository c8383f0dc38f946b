"""Safe retries: the `Idempotency-Key` request header on every POST under /v1, per the IETF httpapi draft
"The Idempotency-Key HTTP Header Field" (https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/).

The same key and the same body within 24 h get the first response again (status, body, `Location`, plus
`Idempotent-Replayed: true`) without the work being done twice; the same key with another body is 422; a key
whose first request is still running is 409 (retry shortly); a malformed key (empty, over 255 characters, a
control or non-ASCII character) is 400 naming the header. Without the header a request runs as it always did.

A key is scoped to its caller (the verified token's `org` and `sub`), the method and the path: two agencies
can never collide, nor read each other's stored responses. The row's id is a SHA-256 over that scope and the
key; it stores the key, the request's fingerprint (an HMAC-SHA256 over the canonical JSON body, or the raw bytes
of a body that is not JSON, so nobody holding a body can recompute it without the deployment's key), the
response and `created_at`. The key is claimed atomically before the view runs
(an INSERT that a second request loses), so two simultaneous requests with one key never both do the work.

What is stored: only responses below 400 (a success, or a page's redirect). A refusal (4xx) changed nothing,
so the key is released and a retry runs afresh: a request refused because the case was not open yet, or a
rate limit, may rightly succeed later (Stripe stores 4xx; we prefer not to pin a refusal for a day). A 5xx is
never stored. A claim whose request died with its process is taken as abandoned after IN_FLIGHT.

Stored bodies may hold personal data (a referral's summary, a case note, a webhook secret): they live in the
service's own database beside the data itself, are never logged, and are pruned after TTL (at most every
PRUNE_EVERY, on the next claim). Where the service seals its personal fields (shared.sealed: intake, advocacy),
a stored body is AES-GCM ciphertext under the service's own data key for responses (`RESPONSES` in
`data_keys`, wrapped by the KEK like every referral's; bound to the row's id), and that key also keys the
fingerprint's HMAC. Why one key for all responses, not the referral's: a response is stored before anyone
knows which referral it names; an erasure finds the stored responses naming a referral by opening them
(`stored_naming`) and deletes them. The advocate's page forms are not covered: an HTML form cannot send a header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, Protocol

from apispec import BasePlugin
from flask import Flask, Response, current_app, g, request
from flask_smorest import Api
from sqlalchemy import JSON, Integer, LargeBinary, String, delete, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from shared.auth import InvalidToken
from shared.clock import utcnow
from shared.db import UTCDateTime, insert_or_ignore
from shared.sealed import data_keys

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
TTL = timedelta(hours=24)
IN_FLIGHT = timedelta(seconds=60)  # twice gunicorn's worker timeout (deploy/gunicorn.conf.py)
PRUNE_EVERY = timedelta(minutes=10)
REPLAYED_HEADERS = ("Content-Type", "Location")
RESPONSES = "idempotent-responses"  # the data key (shared.sealed) of stored responses: the service's own


class IdempotencyKeyMixin:
    __tablename__ = "idempotency_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of caller, method, path and key
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    status: Mapped[int | None] = mapped_column(Integer)  # None while the first request is in flight
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Stored:
    fingerprint: str
    created_at: datetime
    response: StoredResponse | None  # None: in flight


class KeyStore(Protocol):
    def insert(self, id: str, key: str, fingerprint: str, now: datetime) -> bool:
        """Claim a new key; False if a row with this id exists."""

    def find(self, id: str) -> Stored | None: ...

    def retake(self, id: str, fingerprint: str, now: datetime) -> bool:
        """Claim the row afresh if it expired (older than TTL) or was abandoned in flight (older than
        IN_FLIGHT): one conditional UPDATE, so of two retakers one wins."""

    def complete(self, id: str, response: StoredResponse) -> None: ...

    def release(self, id: str) -> None: ...

    def prune(self, now: datetime) -> None: ...

    def fingerprint(self, body: bytes) -> str:
        """The request's fingerprint (module `fingerprint`), keyed with the store's secret."""


# -- what a request with a key gets: pure, over any KeyStore ------------------------------------------------


class MalformedKey(ValueError):
    pass


@dataclass(frozen=True)
class Claimed:
    id: str


@dataclass(frozen=True)
class Refused:
    status: int
    message: str


def parse_key(raw: str) -> str:
    """The key from the header's value: a Structured Fields string (`"..."`, as the draft writes it) or the bare
    token most clients send. MalformedKey says what is wrong."""
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not key.strip():
        raise MalformedKey("Must not be empty.")
    if len(key) > MAX_KEY_LENGTH:
        raise MalformedKey(f"Must be at most {MAX_KEY_LENGTH} characters.")
    if any(not " " <= c <= "~" for c in key):
        raise MalformedKey("Must be printable ASCII, without control characters.")
    return key


def fingerprint(body: bytes, secret: bytes = b"") -> str:
    """HMAC-SHA256 under `secret` over the canonical JSON of `body` (sorted keys, no spaces), so key order and
    layout do not make a retry "another request"; a body that is not JSON: over its raw bytes."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.new(secret, canonical.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def scoped_id(caller: str, method: str, path: str, key: str) -> str:
    return hashlib.sha256("\n".join((caller, method, path, key)).encode("utf-8", "surrogatepass")).hexdigest()


def claim(store: KeyStore, id: str, key: str, print_: str, now: datetime) -> Claimed | StoredResponse | Refused:
    """Claimed: run the request, then complete or release the key. A StoredResponse: replay it. Refused: answer
    that status (422 another body under this key, 409 its first request still in flight)."""
    if store.insert(id, key, print_, now):
        return Claimed(id)
    found = store.find(id)
    if found is None:  # released between our insert and our look: try once more
        return Claimed(id) if store.insert(id, key, print_, now) else _in_flight()
    if found.created_at <= now - TTL:  # an expired key behaves as new
        return Claimed(id) if store.retake(id, print_, now) else _in_flight()
    if found.fingerprint != print_:
        return Refused(422, f"This {HEADER} was used with a different request body: send a new key for a new request.")
    if found.response is None:
        if found.created_at <= now - IN_FLIGHT and store.retake(id, print_, now):
            return Claimed(id)
        return _in_flight()
    return found.response


def _in_flight() -> Refused:
    return Refused(409, f"A request with this {HEADER} is still being processed: retry once it has completed.")


# -- the store on the service's own database ------------------------------------------------------------------


class SqlKeyStore:
    """`model`: the service's IdempotencyKey table (a subclass of IdempotencyKeyMixin on its metadata). Each call
    is its own short transaction, apart from the request's unit of work."""

    def __init__(self, sessions: sessionmaker, model: type[IdempotencyKeyMixin]):
        self._sessions = sessions
        self._model = model
        self._insert = insert_or_ignore(
            model.__table__,  # type: ignore[attr-defined]
            ("id", "key", "fingerprint", "created_at"),
            conflict=("id",),
            returning="id",
        )

    def insert(self, id: str, key: str, fingerprint: str, now: datetime) -> bool:
        values = {"id": id, "key": key, "fingerprint": fingerprint, "created_at": now}
        with self._sessions.begin() as session:
            # RETURNING, not rowcount: psycopg 3 reports -1 for a single INSERT ... ON CONFLICT (shared.inbox).
            return session.execute(self._insert, values).first() is not None

    def find(self, id: str) -> Stored | None:
        with self._sessions() as session:
            row = session.scalar(select(self._model).where(self._model.id == id))
            if row is None:
                return None
            response = None
            if row.status is not None:
                response = StoredResponse(row.status, dict(row.headers or {}), _open(session, id, row.body))
            return Stored(row.fingerprint, row.created_at, response)

    def fingerprint(self, body: bytes) -> str:
        if "keks" not in self._sessions.kw.get("info", {}):
            return fingerprint(body)  # a service that seals nothing (notifications)
        for attempt in (1, 2):  # two first requests racing to make the key: the loser reads the winner's
            try:
                with self._sessions.begin() as session:
                    return fingerprint(body, data_keys(session).key(RESPONSES, create=True) or b"")
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def retake(self, id: str, fingerprint: str, now: datetime) -> bool:
        m = self._model
        stale = or_(m.created_at <= now - TTL, (m.status.is_(None)) & (m.created_at <= now - IN_FLIGHT))
        fresh = {"fingerprint": fingerprint, "created_at": now, "status": None, "headers": None, "body": None}
        with self._sessions.begin() as session:
            result = session.execute(update(m).where(m.id == id, stale).values(fresh))
            return result.rowcount == 1  # type: ignore[attr-defined]

    def complete(self, id: str, response: StoredResponse) -> None:
        m = self._model
        with self._sessions.begin() as session:
            body = _seal(session, id, response.body)
            values = {"status": response.status, "headers": response.headers, "body": body}
            session.execute(update(m).where(m.id == id, m.status.is_(None)).values(values))

    def release(self, id: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(self._model).where(self._model.id == id, self._model.status.is_(None)))

    def prune(self, now: datetime) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(self._model).where(self._model.created_at <= now - TTL))


def _seal(session: Session, id: str, body: bytes) -> bytes:
    if "keks" not in session.info:
        return body
    return data_keys(session).seal(RESPONSES, f"idempotency_keys.body\n{id}", body)


def _open(session: Session, id: str, body: bytes | None) -> bytes:
    if "keks" not in session.info or not body:
        return body or b""
    return data_keys(session).open(RESPONSES, f"idempotency_keys.body\n{id}", body) or b""


def stored_naming(session: Session, model: type[IdempotencyKeyMixin], needles: Iterable[bytes]) -> list[str]:
    """The ids of the stored responses whose body names any of `needles` (an erasure's), opened first: at most
    TTL of rows are there."""
    needles = list(needles)
    rows = session.execute(select(model.id, model.body).where(model.body.is_not(None))).all()
    return [id for id, body in rows if any(n in _open(session, id, body) for n in needles)]


# -- the Flask side ---------------------------------------------------------------------------------------------


def bearer_caller() -> str | None:
    """The verified token's org and subject; None without a valid token (the view then answers 401 itself)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    try:
        principal = current_app.extensions["token_verifier"].verify(header[7:].strip())
    except InvalidToken:
        return None
    return f"{principal.org}\n{principal.sub}"


def _problem(status: int, message: str, detail: str | None = None) -> tuple[dict[str, Any], int, dict[str, str]]:
    """flask-smorest's error shape (shared.web.error_body); a malformed key is named under `errors.headers`."""
    body: dict[str, Any] = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if detail:
        body["errors"] = {"headers": {HEADER: [detail]}}
    return body, status, ({"Retry-After": "1"} if status == 409 else {})


def init_idempotency(
    app: Flask,
    api: Api,
    store: KeyStore,
    *,
    prefix: str = "/v1/",
    caller: Callable[[], str | None] = bearer_caller,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Honour Idempotency-Key on every POST under `prefix` of `app` (after the kit's own input checks, which
    answer first), and document it on each in `api`'s OpenAPI. Call it in create_app, after create_api_app and
    before registering the blueprints (the docs plugin sees each operation as it is registered)."""
    docs = IdempotencyDocs(prefix)
    docs.init_spec(api.spec)
    api.spec.plugins.append(docs)
    pruned: list[datetime] = []

    @app.before_request
    def claim_idempotency_key():
        raw = request.headers.get(HEADER)
        if raw is None or request.method != "POST" or not request.path.startswith(prefix):
            return None
        try:
            key = parse_key(raw)
        except MalformedKey as exc:
            return _problem(400, f"The {HEADER} header is malformed.", str(exc))
        who = caller()
        if who is None:
            return None  # unauthenticated: the view refuses it (401), nothing to remember
        now = clock()
        if not pruned or now - pruned[-1] >= PRUNE_EVERY:
            pruned[:] = [now]
            store.prune(now)
        outcome = claim(
            store, scoped_id(who, "POST", request.path, key), key, store.fingerprint(request.get_data()), now
        )
        if isinstance(outcome, Claimed):
            g.idempotency_claim = outcome.id
            return None
        if isinstance(outcome, Refused):
            return _problem(outcome.status, outcome.message)
        replay = Response(outcome.body, status=outcome.status, headers=outcome.headers)
        replay.headers["Idempotent-Replayed"] = "true"
        return replay

    @app.after_request
    def remember_response(response: Response) -> Response:
        id = g.pop("idempotency_claim", None)
        if id is None:
            return response
        try:
            if response.status_code < 400 and not response.direct_passthrough:
                headers = {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}
                store.complete(id, StoredResponse(response.status_code, headers, response.get_data()))
            else:
                store.release(id)
        except DBAPIError as exc:  # the work is done and answered; the claim is retaken after IN_FLIGHT
            log.warning("idempotency response not stored", extra={"error": exc.__class__.__name__})
        return response

    @app.teardown_request
    def release_unanswered(_error: BaseException | None) -> None:
        id = g.pop("idempotency_claim", None)  # still here: the view raised past every error handler
        if id is None:
            return
        try:
            store.release(id)
        except DBAPIError as exc:  # the claim expires by itself after IN_FLIGHT
            log.warning("idempotency key not released", extra={"error": exc.__class__.__name__})


class IdempotencyDocs(BasePlugin):
    """An apispec plugin: every POST documents the optional Idempotency-Key header and the answers it brings
    (400 malformed, 409 still in flight, 422 used with another body)."""

    PARAMETER = {
        "name": HEADER,
        "in": "header",
        "required": False,
        "description": "Makes the POST safe to retry (IETF httpapi draft): the same key and body within 24 h "
        "return the first successful response again (with `Idempotent-Replayed: true`) without doing the work "
        "twice; the same key with another body is 422; while the first request with it is still running, 409. "
        "Scoped to your token's organisation and subject, the method and the path. A refusal is not stored: "
        "a retry with the same key runs again.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[ -~]+$"},
    }

    def __init__(self, prefix: str = "/v1/"):
        self.prefix = prefix

    def operation_helper(self, path=None, operations=None, **kwargs):
        operation = (operations or {}).get("post")
        if not isinstance(operation, dict) or not (path or "").startswith(self.prefix):
            return
        parameters = operation.setdefault("parameters", [])
        if not any(isinstance(p, dict) and p.get("name") == HEADER for p in parameters):
            parameters.append(dict(self.PARAMETER))
        responses = operation.setdefault("responses", {})
        listed = {str(code) for code in responses}
        for code, name in ((400, "BAD_REQUEST"), (409, "CONFLICT"), (422, "UNPROCESSABLE_ENTITY")):
            if str(code) not in listed:
                responses[code] = name
