"""Who is signed in to the advocate's page, and the checks every form post passes.

- The session is Flask's signed cookie: HttpOnly, SameSite=Lax, Secure outside dev. It holds the random id
  of a server-side session (`page_sessions`) and a CSRF token, nothing else. Each request finds that session
  (refused once signed out, or ADVOCACY_SESSION_HOURS after sign-in: a copied cookie dies with it) and
  re-reads its advocate (an advocate made inactive is out).
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
from datetime import timedelta
from urllib.parse import urlencode

import jwt
import requests
from flask import abort, request, session
from sqlalchemy import delete

from services.advocacy.config import AdvocacyConfig
from services.advocacy.models import Advocate, PageSession
from services.advocacy.uow import Advocates
from services.advocacy.web.context import instance
from shared.auth import InvalidToken, TokenVerifier
from shared.clock import utcnow
from shared.config import Settings

SESSION_ID = "session_id"
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
    """The advocate of this provider the cookie's session names, while that session is neither signed out nor
    expired and the advocate still active."""
    session_id = session.get(SESSION_ID)
    if not isinstance(session_id, str) or not session_id:
        return None
    with instance().sessions() as db:
        found = db.get(PageSession, session_id)
    live = found is not None and found.revoked_at is None and utcnow() < found.expires_at
    advocate = advocates.get(found.sub) if found is not None and live else None
    if advocate is None or not advocate.active:
        session.clear()
        return None
    return advocate


def sign_in(advocate: Advocate) -> None:
    """A new server-side session, and a new CSRF token: a token planted before sign-in is useless afterwards.
    Sessions past their end are deleted now: the table holds live ones and recent sign-outs only."""
    now = utcnow()
    hours = instance().config.session_hours
    page_session = PageSession(
        id=secrets.token_urlsafe(32), sub=advocate.id, created_at=now, expires_at=now + timedelta(hours=hours)
    )
    with instance().sessions.begin() as db:
        db.execute(delete(PageSession).where(PageSession.expires_at < now))
        db.add(page_session)
    session.clear()
    session[SESSION_ID] = page_session.id
    session[SESSION_CSRF] = secrets.token_urlsafe(32)


def sign_out() -> None:
    """Revoke the session: the cookie, wherever it was copied, no longer signs anyone in."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str) and session_id:
        with instance().sessions.begin() as db:
            found = db.get(PageSession, session_id)
            if found is not None and found.revoked_at is None:
                found.revoked_at = utcnow()
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
