"""Rate limits (shared.ratelimit): the RATE_LIMIT_* settings, whom each limit counts, and the order that lets an
address past its failures be refused before any token of it is verified. A fake verifier, memory counters."""

from __future__ import annotations

import pytest
from flask import Flask

from shared.auth import InvalidToken, Principal, requires
from shared.config import ConfigError, Settings
from shared.ratelimit import caller_key, not_a_referral, organisation_key, unmetered
from shared.web import create_api_app

pytestmark = pytest.mark.unit

VALID = {"Authorization": "Bearer valid-officer-1"}
FORGED = {"Authorization": "Bearer forged"}


class FakeVerifier:
    """Any `valid-<sub>` token is a met-police officer's; anything else is refused. Counts what it verifies."""

    def __init__(self) -> None:
        self.verified: list[str] = []

    def verify(self, token: str) -> Principal:
        self.verified.append(token)
        if not token.startswith("valid-"):
            raise InvalidToken("signature")
        return Principal(token.removeprefix("valid-"), "met-police", "police", frozenset({"referrals:write"}))


def limited_app(verifier: FakeVerifier | None = None, **env: str) -> Flask:
    settings = Settings.from_env("intake", env={"AUTH_JWKS_URL": "https://idp.invalid/jwks", **env})
    app, _ = create_api_app("t", settings, title="t", description="t", ready=lambda: True, verifier=verifier)  # type: ignore[arg-type]

    @app.get("/v1/things")
    @requires("referrals:write")
    def things():
        return {"ok": True}

    @app.post("/v1/referrals")
    @requires("referrals:write")
    def submit():
        return {"ok": True}, 201

    return app


def call(app: Flask, path="/v1/things", headers=None, address="192.0.2.1", method="GET", **kwargs):
    return app.test_client().open(path, method=method, headers=headers or {}, environ_base={"REMOTE_ADDR": address},
                                  **kwargs)  # fmt: skip


def test_the_limits_default_to_the_issues_figures_in_memory():
    settings = Settings.from_env("intake", env={})
    assert settings.rate_limit_storage_url == "memory://"
    assert (settings.rate_limit_auth_failures, settings.rate_limit_default, settings.rate_limit_referrals) == (
        "30/minute",
        "600/minute",
        "120/minute",
    )
    assert settings.trusted_proxy_hops == 0


def test_limits_in_flask_limiters_notation_are_accepted():
    env = {"RATE_LIMIT_DEFAULT": "10/second;600/minute", "RATE_LIMIT_REFERRALS": "5 per 2 minutes"}
    env |= {"RATE_LIMIT_STORAGE_URL": "redis://redis:6379/0", "TRUSTED_PROXY_HOPS": "1"}
    settings = Settings.from_env("intake", env=env)
    assert settings.rate_limit_default == "10/second;600/minute" and settings.rate_limit_referrals == "5 per 2 minutes"
    assert settings.rate_limit_storage_url == "redis://redis:6379/0" and settings.trusted_proxy_hops == 1


@pytest.mark.parametrize("value", ["30/fortnight", "lots", "0/minute", "30/minute;0/hour"])
@pytest.mark.parametrize("name", ["RATE_LIMIT_AUTH_FAILURES", "RATE_LIMIT_DEFAULT", "RATE_LIMIT_REFERRALS"])
def test_a_malformed_limit_is_refused_at_start_naming_the_variable_and_the_fix(name, value):
    with pytest.raises(ConfigError, match=rf"^{name}='{value}' is not a rate limit: use .* per second, minute"):
        Settings.from_env("intake", env={name: value})


@pytest.mark.parametrize("url", ["postgresql://db/limits", "redis:6379", "127.0.0.1:6379"])
def test_a_storage_the_platform_cannot_use_is_refused_at_start(url):
    with pytest.raises(ConfigError, match=r"^RATE_LIMIT_STORAGE_URL=.* use memory:// .* or redis://host:6379/0"):
        Settings.from_env("intake", env={"RATE_LIMIT_STORAGE_URL": url})


def test_a_caller_is_its_tokens_subject_else_its_address():
    app = limited_app(FakeVerifier())
    with app.test_request_context("/v1/things", headers=VALID, environ_base={"REMOTE_ADDR": "192.0.2.1"}):
        assert (caller_key(), organisation_key()) == ("subject:officer-1", "org:met-police")
    with app.test_request_context("/v1/things", headers=FORGED, environ_base={"REMOTE_ADDR": "192.0.2.1"}):
        assert (caller_key(), organisation_key()) == ("address:192.0.2.1", "address:192.0.2.1")


def test_only_a_verified_submission_of_a_referral_counts_toward_its_organisations_limit():
    app = limited_app(FakeVerifier())
    for method, path, headers, exempt in [
        ("POST", "/v1/referrals", VALID, False),
        ("POST", "/v1/referrals", FORGED, True),
        ("GET", "/v1/things", VALID, True),
    ]:
        with app.test_request_context(path, method=method, headers=headers):
            assert not_a_referral() is exempt, (method, path)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/assets/x.css"])
def test_probes_metrics_and_documents_are_unmetered(path):
    with Flask("t").test_request_context(path):
        assert unmetered()


def test_an_address_past_its_failures_is_refused_before_its_token_is_verified():
    verifier = FakeVerifier()
    app = limited_app(verifier, RATE_LIMIT_AUTH_FAILURES="2/minute")
    assert [call(app, headers=FORGED).status_code for _ in range(2)] == [401, 401]
    verifier.verified.clear()
    refused = call(app, headers=VALID)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert verifier.verified == []


def test_a_token_is_verified_once_per_request_though_the_limit_and_the_route_both_ask():
    verifier = FakeVerifier()
    assert call(limited_app(verifier), headers=VALID).status_code == 200
    assert verifier.verified == ["valid-officer-1"]


def test_each_request_is_verified_on_its_own_inside_one_app_context():
    # Flask reuses an app context pushed around requests, and `g` with it: the outcome must not carry over.
    app = limited_app(FakeVerifier())
    with app.app_context():
        assert call(app, headers=VALID).status_code == 200
        assert call(app, headers=FORGED).status_code == 401


def test_behind_trusted_proxies_the_forwarded_address_is_counted_and_otherwise_ignored():
    forwarded = [{**FORGED, "X-Forwarded-For": f"198.51.100.{i}"} for i in (1, 2)]
    behind = limited_app(FakeVerifier(), RATE_LIMIT_AUTH_FAILURES="1/minute", TRUSTED_PROXY_HOPS="1")
    assert [call(behind, headers=h, address="10.0.0.5").status_code for h in forwarded] == [401, 401]
    direct = limited_app(FakeVerifier(), RATE_LIMIT_AUTH_FAILURES="1/minute")
    assert [call(direct, headers=h, address="10.0.0.5").status_code for h in forwarded] == [401, 429]


def test_the_429_is_in_the_error_shape_and_names_the_setting_to_raise():
    app = limited_app(FakeVerifier(), RATE_LIMIT_REFERRALS="1/minute")
    assert call(app, "/v1/referrals", VALID, method="POST").status_code == 201
    refused = call(app, "/v1/referrals", {"Authorization": "Bearer valid-officer-2"}, method="POST")
    assert refused.status_code == 429
    body = refused.get_json()
    assert body["code"] == 429 and body["status"] == "Too Many Requests"
    assert f"retry in {refused.headers['Retry-After']} seconds" in body["message"]
    assert "RATE_LIMIT_REFERRALS is 1 per 1 minute" in body["message"]


def test_a_breach_is_logged_by_its_limit_without_the_address_or_subject(caplog):
    app = limited_app(FakeVerifier(), RATE_LIMIT_DEFAULT="1/minute")
    with caplog.at_level("INFO"):
        assert [call(app, headers=VALID, address="192.0.2.77").status_code for _ in range(2)] == [200, 429]
    assert [r.limit for r in caplog.records if r.getMessage() == "rate limit exceeded"] == ["RATE_LIMIT_DEFAULT"]
    assert "192.0.2.77" not in caplog.text and "officer-1" not in caplog.text
