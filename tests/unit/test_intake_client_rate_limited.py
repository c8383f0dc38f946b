"""advocacy's fetch of a referral meets intake's rate limit (shared.ratelimit): a 429 is intake briefly
unavailable, held and retried in place like a 503, never spent from the message's poison budget."""

from __future__ import annotations

import pytest
import requests
from requests.adapters import BaseAdapter

from services.advocacy.casework.intake_client import IntakeClient
from shared.messaging.errors import DependencyUnavailable

pytestmark = pytest.mark.unit


class Answering(BaseAdapter):
    """A transport that answers every request with `status`, without the network."""

    def __init__(self, status: int):
        super().__init__()
        self.status = status

    def send(self, request, **kwargs):
        response = requests.Response()
        response.status_code, response.request, response.url = self.status, request, request.url
        response.headers["Retry-After"] = "7"
        response._content = b'{"code": 429, "status": "Too Many Requests", "message": "retry in 7 seconds"}'
        return response

    def close(self):
        pass


class Tokens:
    def get(self) -> str:
        return "a-service-token"


def client_answered(status: int) -> IntakeClient:
    client = IntakeClient("http://intake.invalid", Tokens())  # type: ignore[arg-type]
    client._http.mount("http://", Answering(status))
    return client


def test_a_rate_limited_fetch_is_intake_briefly_unavailable():
    with pytest.raises(DependencyUnavailable, match="intake unavailable: answered 429"):
        client_answered(429).fetch_referral("r-1")


def test_a_refusal_that_waiting_does_not_change_stays_an_ordinary_failure():
    with pytest.raises(requests.HTTPError):
        client_answered(403).fetch_referral("r-1")
