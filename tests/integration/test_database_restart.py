"""A connection the database dropped (a restart, a failover) costs one request a 503, never a 500 or a hang:
the pool has no pre-ping (a round trip per transaction), so the kit must recover on the first failure."""

from __future__ import annotations

from services.intake.models import Referral
from shared.testing import referral_body
from support.db import count, drop_connections_to

POLICE = ("met-police", "police", "referrals:write referrals:read")
ADMIN = ("platform", "coordinator", "providers:admin")
DEMO_PROVIDER = {"name": "Demo", "regions": ["london"], "serves": ["adult", "child"], "capacity": 5}


def test_after_the_database_drops_its_connections_one_request_is_a_503_and_the_next_succeeds(
    intake, auth_header, pg_admin_url
):
    app, sessions = intake
    client = app.test_client()
    assert client.put("/v1/providers/demo-charity", json=DEMO_PROVIDER, headers=auth_header(*ADMIN)).status_code == 201
    assert client.post("/v1/referrals", json=referral_body(seed=1), headers=auth_header(*POLICE)).status_code == 201

    database = app.extensions["sessions"].kw["bind"].url.database
    assert drop_connections_to(database, pg_admin_url) >= 1  # the API's pooled connection among them

    failed = client.post("/v1/referrals", json=referral_body(seed=2), headers=auth_header(*POLICE))
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "1"
    assert failed.get_json()["message"] == "The database is unavailable; retry shortly."

    retried = client.post("/v1/referrals", json=referral_body(seed=2), headers=auth_header(*POLICE))
    assert retried.status_code == 201, retried.get_json()
    assert count(sessions, Referral) == 2  # the failed attempt wrote nothing; the retry wrote one referral
    # The OpenAPI document says so, for every API built on the kit.
    assert "503 Service Unavailable" in client.get("/openapi.json").get_json()["info"]["description"]
