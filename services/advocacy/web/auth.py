"""Who is signed in to the advocate's page, and the checks every form post passes.

- The session is Flask's signed cookie: HttpOnly, SameSite=Lax, Secure outside dev. It holds the advocate's
  id and a CSRF token, nothing else; each request re-reads the advocate (an advocate made inactive is out).
- CSRF: a per-session random token, put in every form and compared in constant time on every POST
  (OWASP's synchroniser token pattern); SameSite=Lax is a second line, not the only one.
- Dev sign-in (`ADVOCACY_DEV_SIGNIN=true`, set by `make run` only): pick one of this provider's advocates.
- Production: OpenID Connect authorization-code flow against the platform's identity provider
  (`AUTH_AUTHORIZE_URL`, `AUTH_TOKEN_URL`, `AUTH_CLIENT_ID`, `AUTH_CLIENT_SECRET`, `ADVOCACY_PUBLIC_URL`).
  The ID token is verified by the platform's `TokenVerifier` (signature by JWKS or key file, issuer, expiry,
  audience = our client id, and `org` = this provider), then the nonce; the advocate is found by `email`.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
from urllib.parse import urlencode

import jwt
import requests
from flask import abort, request, session

from services.advocacy.config import AdvocacyConfig
from services.advocacy.models import Advocate
from services.advocacy.uow import Advocates
from shared.auth import InvalidToken, TokenVerifier
from shared.config import Settings

SESSION_ADVOCATE = "advocate_id"
SESSION_CSRF = "csrf"
SESSION_OIDC = "oidc"


def csrf_token() -> str:
    token = session.get(SESSION_CSRF)
    if not token:
        token = session[SESSION_CSRF] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    expected = session.get(SESSION_CSRF) or ""
    given = request.form.get("csrf_token", "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        abort(400, description="The form expired or did not come from this page: reload it and try again.")


def signed_in(advocates: Advocates) -> Advocate | None:
    """The advocate of this provider the session names, if still active."""
    advocate_id = session.get(SESSION_ADVOCATE)
    if not advocate_id:
        return None
    advocate = advocates.get(advocate_id)
    if advocate is None or not advocate.active:
        session.pop(SESSION_ADVOCATE, None)
        return None
    return advocate


def sign_in(advocate: Advocate) -> None:
    # A new CSRF token at sign-in: a token planted before sign-in is useless afterwards.
    session.clear()
    session[SESSION_ADVOCATE] = advocate.id
    session[SESSION_CSRF] = secrets.token_urlsafe(32)


def sign_out() -> None:
    session.clear()


class Oidc:
    """The authorization-code flow. Configured when AUTH_AUTHORIZE_URL, AUTH_TOKEN_URL and AUTH_CLIENT_ID are."""

    def __init__(self, settings: Settings, config: AdvocacyConfig):
        self.settings, self.config = settings, config
        self.enabled = bool(config.authorize_url and settings.auth_token_url and settings.auth_client_id)
        self._verifier: TokenVerifier | None = None

    def redirect_uri(self) -> str:
        base = self.config.public_url or request.url_root.rstrip("/")
        return f"{base}/signin/callback"

    def authorization_url(self) -> str:
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        session[SESSION_OIDC] = {"state": state, "nonce": nonce}
        query = {
            "response_type": "code",
            "client_id": self.settings.auth_client_id,
            "redirect_uri": self.redirect_uri(),
            "scope": "openid email",
            "state": state,
            "nonce": nonce,
        }
        return f"{self.config.authorize_url}?{urlencode(query)}"

    def advocate_from_callback(self, advocates: Advocates) -> Advocate | None:
        pending = session.pop(SESSION_OIDC, None) or {}
        state = request.args.get("state", "")
        if not pending or not hmac.compare_digest(pending.get("state", "").encode(), state.encode()):
            abort(400, description="The sign-in expired or was not started here: start again.")
        response = requests.post(
            self.settings.auth_token_url,
            data={
                "grant_type": "authorization_code",
                "code": request.args.get("code", ""),
                "redirect_uri": self.redirect_uri(),
            },
            auth=(self.settings.auth_client_id, self.settings.auth_client_secret),
            timeout=10,
        )
        if response.status_code != 200:
            abort(401, description="The identity provider refused the sign-in.")
        id_token = str(response.json().get("id_token", ""))
        try:
            principal = self.verifier().verify(id_token)
        except InvalidToken:
            abort(401, description="The identity provider's token could not be verified.")
        claims = jwt.decode(id_token, options={"verify_signature": False})  # verified just above
        nonce = str(claims.get("nonce", ""))
        if not hmac.compare_digest(nonce.encode(), pending.get("nonce", "").encode()):
            abort(401, description="The sign-in's nonce does not match.")
        if principal.org != self.config.provider_id or not isinstance(claims.get("email"), str):
            return None
        return advocates.by_email(claims["email"])

    def verifier(self) -> TokenVerifier:
        # An ID token's audience is our client id, not the APIs' audience.
        if self._verifier is None:
            settings = dataclasses.replace(self.settings, auth_audience=self.settings.auth_client_id)
            self._verifier = TokenVerifier(settings)
        return self._verifier
