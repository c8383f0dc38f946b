"""Rate limits as deployed (issue 16, "Requests over the limits get 429 with Retry-After"): two gunicorn
replicas of intake behind a proxy (TRUSTED_PROXY_HOPS=1), counting in the machine's real Redis, over HTTP."""

from __future__ import annotations

import requests

from services.migrate import migrate
from support.apps import redis_key_prefix
from support.processes import Platform

REDIS = "redis://127.0.0.1:6379/9"
FORGED = "forged"


def test_replicas_share_their_counts_in_redis_and_answer_429_with_retry_after(
    tmp_path, fresh_database, dev_keys, make_token
):
    database = fresh_database("intake")
    migrate("intake", database)
    with redis_key_prefix(REDIS) as (prefix, _):
        env = {
            "INTAKE_DATABASE_URL": database,
            "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
            "RATE_LIMIT_STORAGE_URL": REDIS,
            "RATE_LIMIT_KEY_PREFIX": prefix,
            "RATE_LIMIT_AUTH_FAILURES": "4/minute",
            "TRUSTED_PROXY_HOPS": "1",  # the proxy's X-Forwarded-For names the client
            "OTEL_SDK_DISABLED": "true",
        }
        platform = Platform(tmp_path, env)
        try:
            one = platform.start_api("intake", {}, name="intake-a")
            two = platform.start_api("intake", {}, name="intake-b")

            def get(base: str, client: str, token: str = FORGED) -> requests.Response:
                headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": client}
                return requests.get(f"{base}/v1/referrals", headers=headers, timeout=10)

            assert [get(base, "198.51.100.7").status_code for base in (one, two, one, two)] == [401] * 4
            for base in (one, two):
                refused = get(base, "198.51.100.7")
                assert refused.status_code == 429, refused.text
                assert 1 <= int(refused.headers["Retry-After"]) <= 60
                assert refused.json()["code"] == 429 and "RATE_LIMIT_AUTH_FAILURES" in refused.json()["message"]
            assert get(two, "198.51.100.8").status_code == 401  # another client behind the same proxy
            valid = make_token("met-police", "police", "referrals:read")
            assert get(one, "198.51.100.8", valid).status_code == 200
            assert requests.get(f"{one}/healthz", headers={"X-Forwarded-For": "198.51.100.7"}, timeout=10).ok
        finally:
            platform.stop()
