"""The advocate's page keeps its sessions server-side (issue 15 part 4): a cookie copied before sign-out is
refused after it (back to sign-in), and so is one whose session is past ADVOCACY_SESSION_HOURS; the cookie
holds only the session's random id."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.sessions import SecureCookieSessionInterface

from services.advocacy.config import AdvocacyConfig
from services.advocacy.models import PageSession
from shared.config import ConfigError, Settings
from support.advocacy import PROVIDER, SCOPES, Instance, add_advocate
from support.apps import dispose, service_app


@pytest.fixture
def page(fresh_database, dev_keys, auth_header):
    env = {"PROVIDER_ID": PROVIDER, "ADVOCACY_DEV_SIGNIN": "true", "ADVOCACY_SESSION_HOURS": "2"}
    app = service_app("advocacy", fresh_database("advocacy"), dev_keys, **env)
    yield app, Instance(app.test_client(), app.extensions["advocacy"], auth_header(PROVIDER, "provider", SCOPES))
    dispose(app)


def dev_sign_in(app, advocate_id: str):
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").get_data(as_text=True))[1]
    response = client.post("/signin/dev", data={"advocate_id": advocate_id, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/caseload")
    return client


def cookie_of(client) -> str:
    return client.get_cookie("advocacy_session").value


def replay(app, cookie: str):
    other = app.test_client()  # another browser, holding a copy of the cookie
    other.set_cookie("advocacy_session", cookie)
    return other.get("/caseload")


def test_a_cookie_copied_before_sign_out_is_refused_after_it(page):
    page, instance = page
    advocate = add_advocate(instance)
    client = dev_sign_in(page, advocate["id"])
    copied = cookie_of(client)
    assert replay(page, copied).status_code == 200
    held = SecureCookieSessionInterface().get_signing_serializer(page).loads(copied)
    assert set(held) == {"session_id", "csrf"}  # no advocate id in the cookie
    with page.extensions["advocacy"].sessions() as db:
        stored = db.get(PageSession, held["session_id"])
        assert stored.sub == advocate["id"] and stored.expires_at - stored.created_at == timedelta(hours=2)

    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/caseload").get_data(as_text=True))[1]
    assert client.post("/signout", data={"csrf_token": token}).status_code == 302
    refused = replay(page, copied)
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/signin")
    with page.extensions["advocacy"].sessions() as db:
        assert db.get(PageSession, held["session_id"]).revoked_at is not None


def test_a_session_past_its_hours_is_refused(page):
    page, instance = page
    advocate = add_advocate(instance)
    client = dev_sign_in(page, advocate["id"])
    copied = cookie_of(client)
    held = SecureCookieSessionInterface().get_signing_serializer(page).loads(copied)
    with page.extensions["advocacy"].sessions.begin() as db:
        db.get(PageSession, held["session_id"]).expires_at = datetime.now(UTC) - timedelta(seconds=1)
    refused = replay(page, copied)
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/signin")


def test_session_hours_must_be_above_zero():
    env = {"PROVIDER_ID": PROVIDER, "ADVOCACY_SESSION_HOURS": "0"}
    with pytest.raises(ConfigError, match="ADVOCACY_SESSION_HOURS"):
        AdvocacyConfig.from_settings(Settings.from_env("advocacy", env))
    assert AdvocacyConfig.from_settings(Settings.from_env("advocacy", {"PROVIDER_ID": PROVIDER})).session_hours == 8
