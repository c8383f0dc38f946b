"""Bearer-token identity: verify the platform's JWTs and require scopes on routes.

Services never store passwords. In production tokens come from an OIDC provider and are verified by
its JWKS (AUTH_JWKS_URL); in dev and tests by a public key file (AUTH_PUBLIC_KEY_FILE).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from flask import current_app, g, request
from flask_smorest import abort

from shared.config import ConfigError, Settings

ORG_KINDS = ("police", "local_authority", "first_responder", "provider", "coordinator", "ops", "service")
SCOPES = (
    "referrals:write",
    "referrals:read",
    "providers:admin",
    "offers:respond",
    "cases:read",
    "cases:write",
    "subscriptions:write",
    # A platform DPO (org_kind ops) or the platform's service token (org_kind service): data-subject rights,
    # erasure and subject access (shared.subject_access).
    "referrals:erase",
)
ALGORITHMS = ["RS256"]
_BEARER = "referrals.bearer"  # the request's verification outcome: its Principal, or the 401's message


class InvalidToken(Exception):
    """The token is missing, malformed, expired or not ours."""


@dataclass(frozen=True)
class Principal:
    sub: str
    org: str
    org_kind: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes


class TokenVerifier:
    def __init__(self, settings: Settings):
        self.issuer = settings.auth_issuer
        self.audience = settings.auth_audience
        self._jwks = jwt.PyJWKClient(settings.auth_jwks_url) if settings.auth_jwks_url else None
        self._key = None
        if self._jwks is None:
            path = Path(settings.auth_public_key_file)
            if not path.is_file():
                raise ConfigError(
                    f"AUTH_PUBLIC_KEY_FILE {path} does not exist: run `make keys` for dev keys, "
                    "or set AUTH_JWKS_URL to your identity provider's JWKS"
                )
            self._key = path.read_text()

    def verify(self, token: str) -> Principal:
        try:
            key: Any = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._key
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        org, kind = claims.get("org"), claims.get("org_kind")
        if not isinstance(org, str) or not org or kind not in ORG_KINDS:
            raise InvalidToken("token lacks a valid org or org_kind claim")
        scope = claims.get("scope", "")
        return Principal(
            sub=str(claims["sub"]),
            org=org,
            org_kind=kind,
            scopes=frozenset(scope.split() if isinstance(scope, str) else ()),
        )


def init_auth(app, verifier: TokenVerifier) -> None:
    app.extensions["token_verifier"] = verifier


def current_principal() -> Principal:
    return g.principal


def bearer_principal() -> Principal | None:
    """Who the request's bearer token says, or None when it is missing or refused. Verified once per request,
    by whoever asks first: the rate limit per subject (shared.ratelimit, before the view), then `requires`."""
    if _BEARER not in request.environ:  # the request's own, where `g` may outlive it (an app context pushed around it)
        request.environ[_BEARER] = _verify_bearer()
    found = request.environ[_BEARER]
    return found if isinstance(found, Principal) else None


def _verify_bearer() -> Principal | str:
    """The token's principal, or why there is none (the 401's message)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return "Missing bearer token: send 'Authorization: Bearer <JWT>'."
    try:
        return current_app.extensions["token_verifier"].verify(header[7:].strip())
    except InvalidToken as exc:
        return f"Invalid token: {exc}."


def requires(*scopes: str, any_of: bool = False):
    """Authenticate the bearer token, then demand the scopes (all of them, or any with any_of)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = bearer_principal()
            if principal is None:
                _unauthorized(request.environ[_BEARER])
            g.principal = principal
            held = [s for s in scopes if principal.has(s)]
            if scopes and (not held if any_of else len(held) != len(scopes)):
                needed = " or ".join(scopes) if any_of else " ".join(scopes)
                abort(403, message=f"This call needs the scope {needed}.")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _unauthorized(message: str):
    abort(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="referrals"'})
