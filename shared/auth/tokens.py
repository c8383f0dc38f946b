"""Issuing tokens: dev keys, dev tokens, and a service's own token for service-to-service calls."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.config import ConfigError, Settings


def ensure_dev_keys(directory: Path) -> tuple[Path, Path, bool]:
    """Create an RS256 key pair for local use if absent. Returns (private, public, created)."""
    private, public = directory / "dev-private.pem", directory / "dev-public.pem"
    if private.exists() and public.exists():
        return private, public, False
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public, True


def mint_token(
    private_key_pem: str,
    *,
    org: str,
    org_kind: str,
    scopes: list[str] | tuple[str, ...],
    issuer: str,
    audience: str,
    sub: str | None = None,
    ttl_seconds: int = 3600,
) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": sub or f"{org}-{uuid.uuid4().hex[:8]}",
        "iat": now,
        "exp": now + ttl_seconds,
        "org": org,
        "org_kind": org_kind,
        "scope": " ".join(scopes),
    }
    return jwt.encode(claims, private_key_pem, algorithm="RS256")


class ServiceTokens:
    """This service's own bearer token, cached until shortly before it expires.

    Production: OAuth2 client credentials against AUTH_TOKEN_URL. Dev and tests: signed locally with
    AUTH_PRIVATE_KEY_FILE. Thread-safe: several worker threads may ask at once.
    """

    def __init__(self, settings: Settings, *, org: str, org_kind: str, scopes: list[str]):
        self._settings = settings
        self._org, self._kind, self._scopes = org, org_kind, scopes
        self._token, self._expires_at = "", 0.0
        self._lock = threading.Lock()
        if not settings.auth_token_url and not settings.auth_private_key_file:
            raise ConfigError(
                f"{settings.service} needs a service token: set AUTH_TOKEN_URL, AUTH_CLIENT_ID and "
                "AUTH_CLIENT_SECRET (production) or AUTH_PRIVATE_KEY_FILE (dev: var/keys/dev-private.pem)"
            )

    def get(self) -> str:
        with self._lock:
            if time.time() < self._expires_at - 30:
                return self._token
            if self._settings.auth_token_url:
                response = requests.post(
                    self._settings.auth_token_url,
                    data={"grant_type": "client_credentials", "scope": " ".join(self._scopes)},
                    auth=(self._settings.auth_client_id, self._settings.auth_client_secret),
                    timeout=10,
                )
                response.raise_for_status()
                body = response.json()
                self._token, ttl = body["access_token"], int(body.get("expires_in", 300))
            else:
                ttl = 900
                self._token = mint_token(
                    Path(self._settings.auth_private_key_file).read_text(),
                    org=self._org,
                    org_kind=self._kind,
                    scopes=self._scopes,
                    issuer=self._settings.auth_issuer,
                    audience=self._settings.auth_audience,
                    sub=f"service:{self._settings.service}:{self._org}",
                    ttl_seconds=ttl,
                )
            self._expires_at = time.time() + ttl
            return self._token
