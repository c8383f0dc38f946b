"""Webhook rules: retry schedule, what a webhook may carry, where it may go, and signing secrets."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from services.notifications.config import WebhookSettings
from services.notifications.domain import (
    EVENT_TYPES,
    UnsafeWebhookUrl,
    check_webhook_url,
    max_attempts,
    new_secret,
    next_attempt_delay,
    parse_retry_schedule,
    ping_body,
    schedule_span,
    secret_problem,
    signing_secrets,
    webhook_body,
    webhook_id,
)
from services.notifications.egress import UrlGuard
from shared.config import ConfigError


class FakeResolver:
    """DNS as a dict: host -> addresses. Records what it was asked."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.answers.get(host, [])


PUBLIC = FakeResolver({"hooks.agency.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})


# --- retries --------------------------------------------------------------------------------------------


def test_default_schedule_waits_longer_after_each_failure_then_gives_up():
    schedule = WebhookSettings.from_env({}).retry_schedule
    waits = [10, 60, 300, 1800, 7200, 21600, 43200, 86400, 86400, 86400]
    assert schedule == tuple(waits)
    assert [next_attempt_delay(n, schedule) for n in range(1, 11)] == waits
    assert next_attempt_delay(11, schedule) is None
    assert max_attempts(schedule) == 11


def test_default_schedule_outlasts_an_agency_down_for_three_days():
    assert schedule_span(WebhookSettings.from_env({}).retry_schedule) >= 3 * 86400
    assert schedule_span(parse_retry_schedule("1,2,3.5")) == 6.5


def test_a_compressed_schedule_is_taken_from_the_environment():
    assert WebhookSettings.from_env({"WEBHOOK_RETRY_SCHEDULE": "0.2,0.5"}).retry_schedule == (0.2, 0.5)


def test_zero_delay_schedule_gives_three_attempts():
    schedule = parse_retry_schedule("0,0")
    assert next_attempt_delay(1, schedule) == 0
    assert next_attempt_delay(2, schedule) == 0
    assert next_attempt_delay(3, schedule) is None


def test_empty_schedule_means_a_single_attempt():
    assert next_attempt_delay(1, ()) is None


def test_attempts_are_counted_from_one():
    with pytest.raises(ValueError):
        next_attempt_delay(0, (5,))


@pytest.mark.parametrize("raw", ["", "5,,30", "5,abc", "-1", "5, nan", "inf"])
def test_malformed_schedules_are_refused(raw):
    with pytest.raises(ValueError):
        parse_retry_schedule(raw)


def test_schedule_tolerates_spaces_and_fractions():
    assert parse_retry_schedule(" 0.5, 2 ,10") == (0.5, 2.0, 10.0)


def test_settings_name_the_variable_when_malformed():
    with pytest.raises(ConfigError, match="WEBHOOK_RETRY_SCHEDULE"):
        WebhookSettings.from_env({"WEBHOOK_RETRY_SCHEDULE": "soon"})
    with pytest.raises(ConfigError, match="WEBHOOK_TIMEOUT_SECONDS"):
        WebhookSettings.from_env({"WEBHOOK_TIMEOUT_SECONDS": "0"})
    with pytest.raises(ConfigError, match="WEBHOOK_ALLOW_PRIVATE"):
        WebhookSettings.from_env({"WEBHOOK_ALLOW_PRIVATE": "perhaps"})
    for hours in ("-1", "nan", "721"):
        with pytest.raises(ConfigError, match="WEBHOOK_SECRET_OVERLAP_HOURS"):
            WebhookSettings.from_env({"WEBHOOK_SECRET_OVERLAP_HOURS": hours})
    for lanes in ("0", "33", "many"):
        with pytest.raises(ConfigError, match="WEBHOOK_CONCURRENCY"):
            WebhookSettings.from_env({"WEBHOOK_CONCURRENCY": lanes})


def test_settings_defaults_are_production_safe():
    settings = WebhookSettings.from_env({})
    assert settings.allow_private is False
    assert settings.timeout_seconds == 10
    assert settings.secret_overlap == timedelta(hours=24)
    assert settings.concurrency == 4


# --- secret rotation ----------------------------------------------------------------------------------


def test_webhooks_are_signed_with_both_secrets_until_the_previous_one_expires():
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    expires = now + timedelta(hours=24)
    assert signing_secrets("whsec_new", "whsec_old", expires, now) == ("whsec_new", "whsec_old")
    assert signing_secrets("whsec_new", "whsec_old", expires, expires - timedelta(seconds=1)) == (
        "whsec_new",
        "whsec_old",
    )
    assert signing_secrets("whsec_new", "whsec_old", expires, expires) == ("whsec_new",)
    assert signing_secrets("whsec_only", None, None, now) == ("whsec_only",)


def test_a_ping_names_only_its_subscription():
    assert ping_body("sub-1", "2026-12-01T12:00:00+00:00") == {
        "type": "webhook.ping",
        "timestamp": "2026-12-01T12:00:00+00:00",
        "data": {"subscription_id": "sub-1"},
    }


# --- the payload ------------------------------------------------------------------------------------


def test_webhook_body_carries_ids_status_and_whitelisted_keys_only():
    data = {
        "referral_id": "r-1",
        "org_id": "met-police",
        "external_reference": "REF-1",
        "status": "allocated",
        "provider_id": "charity-a",
        "case_id": "c-1",
        "pathway": "nrm",
        "is_child": False,
        "reason": "no provider",
        "region": "london",
        "given_name": "Kaloxmix",
        "name": "Synthetic-Zuvex",
        "date_of_birth": "1990-01-01",
        "narrative": "Synthetic narrative.",
        "advocate": {"name": "Synthetic Advocate", "email": "a@example.org"},
    }
    body = webhook_body(
        "referral.allocated", "2026-01-01T00:00:00+00:00", data, referral_id="r-1", external_reference="REF-1"
    )
    assert body == {
        "type": "referral.allocated",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "data": {
            "referral_id": "r-1",
            "external_reference": "REF-1",
            "status": "allocated",
            "provider_id": "charity-a",
            "case_id": "c-1",
            "pathway": "nrm",
            "is_child": False,
            "reason": "no provider",
        },
    }


def test_personal_data_never_leaks_even_nested_under_a_whitelisted_key():
    data = {
        "status": {"name": "Synthetic-Kalo"},
        "provider_id": {"name": "Synthetic-Kalo", "date_of_birth": "1990-01-01"},
        "reason": ["Synthetic-Kalo"],
        "name": "Synthetic-Kalo",
        "date_of_birth": "1990-01-01",
    }
    body = webhook_body("referral.escalated", "t", data, referral_id="r-1", external_reference=None)
    assert body["data"] == {"referral_id": "r-1", "external_reference": None, "status": None}
    assert "Synthetic-Kalo" not in repr(body)
    assert "1990-01-01" not in repr(body)


def test_webhook_id_is_stable_per_event_and_subscription():
    assert webhook_id("e1", "s1") == webhook_id("e1", "s1") == "msg_e1_s1"
    assert webhook_id("e1", "s2") != webhook_id("e1", "s1")


def test_known_event_types():
    assert set(EVENT_TYPES) == {
        "referral.received",
        "referral.allocated",
        "referral.consent_withdrawn",
        "referral.escalated",
        "referral.withdrawn",
        "referral.transferred",
        "case.opened",
        "case.closed",
        "clock.due_soon",
        "clock.breached",
        "transition.planned",
        "transition.completed",
        "transition.missed",
        "case.contact_overdue",
        "case.risk_raised",
    }


# --- the SSRF guard -----------------------------------------------------------------------------------


def test_public_https_url_is_allowed_and_resolved_with_its_port():
    resolver = FakeResolver({"hooks.agency.example": ["93.184.216.34"]})
    check_webhook_url("https://hooks.agency.example:8443/in?x=1", allow_private=False, resolve=resolver)
    assert resolver.asked == [("hooks.agency.example", 8443)]


def test_https_is_required_in_production():
    with pytest.raises(UnsafeWebhookUrl, match="https"):
        check_webhook_url("http://hooks.agency.example/in", allow_private=False, resolve=PUBLIC)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.5", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoint
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - the address under test
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address, kind):
    resolver = FakeResolver({"evil.example": [address]})
    with pytest.raises(UnsafeWebhookUrl, match=kind) as refused:
        check_webhook_url("https://evil.example/hook", allow_private=False, resolve=resolver)
    assert address not in str(refused.value)  # the API must not reveal what internal names resolve to


def test_one_private_answer_among_public_ones_is_enough_to_refuse():
    resolver = FakeResolver({"mixed.example": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(UnsafeWebhookUrl, match="private"):
        check_webhook_url("https://mixed.example/", allow_private=False, resolve=resolver)


def test_ip_literal_urls_are_judged_by_their_address():
    def resolve(host, port):  # a real resolver returns an IP literal as itself
        return [host]

    with pytest.raises(UnsafeWebhookUrl, match="loopback"):
        check_webhook_url("https://127.0.0.1:8443/", allow_private=False, resolve=resolve)
    with pytest.raises(UnsafeWebhookUrl, match="loopback"):
        check_webhook_url("https://[::1]/", allow_private=False, resolve=resolve)


def test_a_host_that_does_not_resolve_is_refused():
    with pytest.raises(UnsafeWebhookUrl, match="does not resolve"):
        check_webhook_url("https://nowhere.example/", allow_private=False, resolve=FakeResolver({}))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hooks.agency.example/", "https"),
        ("hooks.agency.example/in", "https"),
        ("https:///path-only", "host"),
        ("https://user:pw@hooks.agency.example/", "credentials"),
        ("https://hooks.agency.example:99999/", "valid URL"),
        ("https://hooks.agency.example/a b", "whitespace"),
        ("https://hooks.agency.example/" + "a" * 2048, "2048"),
    ],
)
def test_malformed_urls_are_refused(url, why):
    with pytest.raises(UnsafeWebhookUrl, match=why):
        check_webhook_url(url, allow_private=False, resolve=PUBLIC)


def test_dev_flag_allows_http_and_loopback_without_resolving():
    resolver = FakeResolver({})
    check_webhook_url("http://127.0.0.1:9000/hook", allow_private=True, resolve=resolver)
    check_webhook_url("https://localhost/hook", allow_private=True, resolve=resolver)
    assert resolver.asked == []
    with pytest.raises(UnsafeWebhookUrl, match="http or https"):
        check_webhook_url("file:///etc/passwd", allow_private=True, resolve=resolver)


def test_url_guard_uses_the_injected_resolver():
    guard = UrlGuard(allow_private=False, resolve=FakeResolver({"rebound.example": ["127.0.0.1"]}))
    with pytest.raises(UnsafeWebhookUrl, match="loopback"):
        guard.check("https://rebound.example/hook")
    UrlGuard(allow_private=False, resolve=PUBLIC).check("https://hooks.agency.example/in")


# --- secrets --------------------------------------------------------------------------------------------


def test_generated_secret_is_whsec_and_32_random_bytes():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:], validate=True)) == 32
    assert secret_problem(secret) is None
    assert new_secret() != secret


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "whsec_"),
        ("whsec_not base64!", "base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes"),
    ],
)
def test_bad_secrets_are_explained(secret, why):
    assert why in (secret_problem(secret) or "")


def test_a_24_byte_secret_is_enough():
    assert secret_problem("whsec_" + base64.b64encode(b"k" * 24).decode()) is None
