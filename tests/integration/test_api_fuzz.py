"""schemathesis against the three APIs on PostgreSQL, with a valid token: generated requests, valid and not,
for every operation of each OpenAPI document. No response may be a 5xx or break its documented schema."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode

from shared.idempotency import HEADER, MalformedKey, parse_key
from support.apps import UNLIMITED, service_app

PROVIDER = "charity-f"
TOKENS = {
    # every intake route (cases:read: the directories a charity reads)
    "intake": ("platform", "coordinator", "referrals:write referrals:read providers:admin cases:read"),
    "advocacy": (PROVIDER, "provider", "offers:respond cases:read cases:write"),
    "notifications": ("met-police", "police", "subscriptions:write referrals:read"),
}


# What OpenAPI cannot state, declared: a generated id names nothing (404), a generated case is not open
# (409); a referral needs a date of birth or an age estimate, and an adult's consent decides its pathway, and
# a webhook URL must resolve to a public address, and a merge patch is checked as the referral it makes of the
# stored one (rules across fields or outside the request: 422).
def config(token: str) -> SchemathesisConfig:
    """The token as schemathesis's own auth for the document's bearerAuth scheme: it then sends it on every case
    (a case generated to leave it out, expecting a 401, keeps it out)."""
    return SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"bearerAuth": {"bearer": token}}},
            "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409"]}},
            "operations": [
                {
                    "include-name": [
                        "POST /v1/referrals",
                        "PATCH /v1/referrals/{referral_id}",
                        "POST /v1/subscriptions",
                    ],
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "422"]}},
                },
                # The tokens here are not a platform DPO's: its own test (test_subject_access.py) asks as one.
                {
                    "include-name": ["GET /v1/subject-access/{referral_id}"],
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "403", "404"]}},
                },
            ],
        }
    )


def fresh_key(case) -> bool:
    """The case carries a well-formed Idempotency-Key (a malformed one stays: its 400 is tested as generated)."""
    try:
        return bool(case.headers) and HEADER in case.headers and bool(parse_key(case.headers[HEADER]))
    except MalformedKey:
        return False


def _app(service: str, fresh_database, dev_keys):
    # Hundreds of requests a minute with one token, and as many refused tokens (schemathesis's auth checks).
    return service_app(service, fresh_database(service), dev_keys, PROVIDER_ID=PROVIDER, **UNLIMITED)


@pytest.fixture(params=sorted(TOKENS))
def api(request, fresh_database, dev_keys, auth_header):
    service = request.param
    app = _app(service, fresh_database, dev_keys)
    token = auth_header(*TOKENS[service])["Authorization"].removeprefix("Bearer ")
    return service, schemathesis.openapi.from_wsgi("/openapi.json", app, config=config(token))


def test_no_generated_request_makes_a_server_error_or_breaks_the_documented_schema(api):
    service, schema = api
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in GenerationMode)))
        def run(case):
            if fresh_key(case):  # a generated key repeats across examples with other bodies: 422, as it should
                case.headers[HEADER] = uuid.uuid4().hex
            case.call_and_validate()

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert failures == [], "\n\n".join(failures)


@pytest.mark.parametrize("service", sorted(TOKENS))
def test_every_operation_documents_the_errors_it_can_meet(service, fresh_database, dev_keys):
    document = _app(service, fresh_database, dev_keys).test_client().get("/openapi.json").get_json()
    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            expected = {"401", "403", "422", "503"} | ({"404"} if "{" in path else set())
            expected |= {"409", "413"} if method in ("post", "put", "patch", "delete") else set()
            if gap := expected - set(operation["responses"]):
                missing.append(f"{method.upper()} {path}: {sorted(gap)}")
    assert missing == []
    assert document["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]  # in the Error shape
