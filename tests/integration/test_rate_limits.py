"""Rate limits on the real apps (issue 16): past a limit, 429 in the Error shape with Retry-After; per client
address for refused tokens, per token subject, per organisation on POST /v1/referrals; probes, metrics and
documents never limited; counters shared through the real Redis, and served from memory when it is down."""

from __future__ import annotations

import uuid

import pytest

from shared.testing import referral_body
from support.apps import dispose, redis_key_prefix, service_app

SMALL = {"RATE_LIMIT_AUTH_FAILURES": "3/minute", "RATE_LIMIT_DEFAULT": "5/minute", "RATE_LIMIT_REFERRALS": "2/minute"}
REDIS = "redis://127.0.0.1:6379/9"
READ = ("met-police", "police", "referrals:read")
AN_ADDRESS, ANOTHER = "198.51.100.7", "198.51.100.8"


@pytest.fixture
def intake(fresh_database, dev_keys):
    """Make intake apps with `env` on top, all on one fresh database (two of them: two processes)."""
    url, made = fresh_database("intake"), []

    def make(**env: str):
        made.append(service_app("intake", url, dev_keys, **env))
        return made[-1]

    yield make
    for app in made:
        dispose(app)


@pytest.fixture
def token(make_token):
    def mint(org: str = "met-police", kind: str = "police", scopes: str = "referrals:read", sub: str | None = None):
        return {"Authorization": f"Bearer {make_token(org, kind, scopes, sub=sub or f'{org}-{uuid.uuid4().hex[:8]}')}"}

    return mint


def get(app, path: str = "/v1/referrals", headers: dict | None = None, address: str = AN_ADDRESS):
    return app.test_client().get(path, headers=headers or {}, environ_base={"REMOTE_ADDR": address})


def assert_too_many(response) -> None:
    assert response.status_code == 429, response.get_json()
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    body = response.get_json()
    assert body["code"] == 429 and body["status"] == "Too Many Requests" and "retry in" in body["message"]


def test_an_address_past_its_token_failures_gets_429_while_another_address_still_gets_401(intake, token):
    app = intake(**SMALL)
    forged = {"Authorization": "Bearer not-a-token"}
    assert [get(app, headers=forged).status_code for _ in range(3)] == [401, 401, 401]
    assert_too_many(get(app, headers=forged))
    assert_too_many(get(app, headers=token()))  # refused before its token is looked at, valid or not
    assert "RATE_LIMIT_AUTH_FAILURES" in get(app).get_json()["message"]
    assert get(app, headers=forged, address=ANOTHER).status_code == 401
    assert get(app, headers=token(), address=ANOTHER).status_code == 200


def test_a_valid_token_does_not_count_toward_its_address_failures(intake, token):
    app = intake(**SMALL | {"RATE_LIMIT_DEFAULT": "100/minute"})
    assert {get(app, headers=token()).status_code for _ in range(10)} == {200}
    assert get(app).status_code == 401


def test_a_subject_past_the_default_limit_gets_429_while_another_subject_of_its_organisation_is_served(intake, token):
    app = intake(**SMALL)
    mine = token(sub="officer-1")
    assert {get(app, headers=mine, address=f"203.0.113.{i}").status_code for i in range(5)} == {200}
    assert_too_many(get(app, headers=mine, address="203.0.113.99"))  # per subject, wherever it asks from
    assert get(app, headers=token(sub="officer-2")).status_code == 200


def test_referrals_are_limited_per_organisation_whichever_of_its_subjects_sends_them(intake, token):
    app = intake(**SMALL)
    client = app.test_client()

    def submit(org: str, sub: str):
        return client.post("/v1/referrals", json=referral_body(), headers=token(org, "police", "referrals:write", sub))

    assert submit("met-police", "officer-1").status_code == 201
    assert submit("met-police", "officer-2").status_code == 201
    refused = submit("met-police", "officer-3")
    assert_too_many(refused)
    assert "RATE_LIMIT_REFERRALS" in refused.get_json()["message"]
    assert submit("kent-police", "officer-4").status_code == 201
    # Reading is not submitting: the organisation's other calls go on.
    assert get(app, headers=token(sub="officer-3")).status_code == 200


def test_probes_metrics_and_documents_are_never_limited(intake, token):
    app = intake(**SMALL | {"RATE_LIMIT_DEFAULT": "1/minute"})
    for _ in range(3):
        get(app, headers={"Authorization": "Bearer forged"})
    assert_too_many(get(app))
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css"):
        statuses = {get(app, path).status_code for _ in range(3)}
        assert 429 not in statuses, path
    assert {get(app, "/healthz").status_code for _ in range(3)} == {200}


def test_every_operation_documents_429_with_retry_after(intake):
    document = intake().test_client().get("/openapi.json").get_json()
    operations = [op for ops in document["paths"].values() for op in ops.values() if isinstance(op, dict)]
    assert operations and all("429" in op["responses"] for op in operations)
    too_many = document["components"]["responses"]["TOO_MANY_REQUESTS"]
    assert too_many["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert too_many["content"]  # in the Error shape


def test_the_advocates_page_is_limited_per_address_in_the_same_error_shape(fresh_database, dev_keys):
    env = {"PROVIDER_ID": "charity-r", "ADVOCACY_DEV_SIGNIN": "true", "RATE_LIMIT_DEFAULT": "2/minute"}
    app = service_app("advocacy", fresh_database("advocacy"), dev_keys, **env)
    try:
        assert [get(app, "/signin").status_code for _ in range(2)] == [200, 200]
        assert_too_many(get(app, "/signin"))
        assert get(app, "/signin", address=ANOTHER).status_code == 200
        assert get(app, "/assets/page.css").status_code != 429  # the page's own assets are not counted
    finally:
        dispose(app)


@pytest.fixture
def redis_prefix():
    with redis_key_prefix(REDIS) as held:
        yield held


def test_processes_sharing_redis_share_their_counters(intake, redis_prefix):
    prefix, client = redis_prefix
    env = SMALL | {"RATE_LIMIT_STORAGE_URL": REDIS, "RATE_LIMIT_KEY_PREFIX": prefix}
    one, two = intake(**env), intake(**env)  # two processes of the same service, as gunicorn workers or replicas
    assert get(one).status_code == 401
    assert get(two).status_code == 401
    assert get(one).status_code == 401
    assert_too_many(get(two))
    keys = [key.decode() for key in client.scan_iter(match=f"*{prefix}*")]
    assert keys and all("address:" in key and f"{prefix}:intake" in key for key in keys)
    assert all(0 < client.ttl(key) <= 60 for key in keys)  # a window's counter, gone with it


def test_an_unreachable_redis_serves_requests_and_counts_them_in_memory(intake, token):
    app = intake(**SMALL | {"RATE_LIMIT_STORAGE_URL": "redis://127.0.0.1:9/0"})  # nothing listens there
    assert get(app, headers=token()).status_code == 200
    assert [get(app).status_code for _ in range(3)] == [401, 401, 401]
    assert_too_many(get(app))
