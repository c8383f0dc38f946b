"""Fetching the full referral from intake: the one disclosure of personal data to this provider.

Intake logs the disclosure per recipient (DESIGN 2); we only ever ask for a referral allocated to us.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests

from shared.auth.tokens import ServiceTokens
from shared.messaging.errors import DependencyUnavailable

TIMEOUT_SECONDS = 10
DIRECTORY_TIMEOUT_SECONDS = 3  # a page waits on it: short, and a failure is remembered (web.directory)
INTAKE = "intake"  # the dependency's name in /readyz


class ReferralSource(Protocol):
    """What the allocation.confirmed, allocation.transferred and referral.rectified handlers need: tests pass a
    fake."""

    def fetch_referral(self, referral_id: str, *, purpose: str | None = None) -> dict[str, Any]: ...


class IntakeClient:
    def __init__(self, base_url: str, tokens: ServiceTokens, *, timeout: float = TIMEOUT_SECONDS):
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._timeout = timeout
        self._http = requests.Session()

    def fetch_referral(self, referral_id: str, *, purpose: str | None = None) -> dict[str, Any]:
        """The referral as intake returns it; `purpose` (e.g. rectification) is recorded with the disclosure,
        case_opening when None. Intake unreachable, too slow, answering 5xx or 429 (its rate limit) is intake
        briefly down (DependencyUnavailable: the consumer holds the message and retries it in place, in order); any
        other non-2xx raises as an ordinary failure (retried, then parked): waiting would not change it."""
        try:
            query = f"?purpose={purpose}" if purpose else ""  # a fixed code (rectification), never personal data
            response = self._http.get(
                f"{self._base_url}/v1/referrals/{referral_id}{query}",
                headers={"Authorization": f"Bearer {self._tokens.get()}", "Accept": "application/json"},
                timeout=self._timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DependencyUnavailable(INTAKE, f"unreachable ({exc.__class__.__name__})") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise DependencyUnavailable(INTAKE, f"answered {response.status_code}")
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("intake answered with something other than a JSON object")
        return body

    def directory(self, which: str, *, timeout: float = DIRECTORY_TIMEOUT_SECONDS) -> list[dict[str, Any]]:
        """intake's directory of `providers` or `agencies` (ids and names, scope cases:read), for the page's
        choosers. Unreachable, slow or failing: DependencyUnavailable (the page then asks for a typed id)."""
        try:
            response = self._http.get(
                f"{self._base_url}/v1/directory/{which}",
                headers={"Authorization": f"Bearer {self._tokens.get()}", "Accept": "application/json"},
                timeout=timeout,
            )
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError, OSError, KeyError) as exc:  # KeyError, OSError: no token
            raise DependencyUnavailable(INTAKE, f"directory: {exc.__class__.__name__}") from None
        if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
            raise DependencyUnavailable(INTAKE, "directory: not a list of objects")
        return body
