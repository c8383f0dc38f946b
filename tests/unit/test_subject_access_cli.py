"""`referrals-sar` (services.subject_access_cli) over a fake HTTP: whom it asks, in which order, what it writes,
how it fails; the HTML page (every section, escaped); and who may ask a service (shared.subject_access)."""

from __future__ import annotations

import json

import pytest
import requests

from services import subject_access_cli as sar
from shared.auth import Principal
from shared.subject_access import may_ask

pytestmark = pytest.mark.unit

REFERRAL = "r-1"
ENV = {
    "SAR_TOKEN": "dpo-token",
    "SAR_INTAKE_URL": "http://intake",
    "SAR_NOTIFICATIONS_URL": "http://notifications",
    "SAR_PROVIDER_URLS": "charity-a=http://a, charity-b=http://b,charity-c=http://c",
}


def answer(service, sections, provider_id=None):
    return {
        "service": service,
        "provider_id": provider_id,
        "referral_id": REFERRAL,
        "generated_at": "2026-12-01T10:00:00+00:00",
        "sections": sections,
    }


ANSWERS = {
    "http://intake": answer(
        "intake",
        {
            "referrals": [{"id": REFERRAL, "status": "allocated", "provider_id": "charity-b", "body": {"x": 1}}],
            "offers": [
                {"provider_id": "charity-a", "status": "declined"},
                {"provider_id": "charity-b", "status": "accepted"},
            ],
            "disclosures": [
                {"recipient_org": "charity-b", "recipient_kind": "provider", "purpose": "case_opening"},
                {"recipient_org": "notifications", "recipient_kind": "notifications", "purpose": "referral_events"},
                {"recipient_org": "some-council", "recipient_kind": "org", "purpose": "data_sharing"},
            ],
        },
    ),
    "http://a": answer("advocacy", {"offers": [{"id": "o-1", "provider_id": "charity-a"}], "cases": []}, "charity-a"),
    "http://b": answer(
        "advocacy",
        {"cases": [{"id": "c-1", "provider_id": "charity-b"}], "transitions": [{"to_provider_id": "charity-c"}]},
        "charity-b",
    ),
    "http://c": answer("advocacy", {"handovers": [{"from_provider_id": "charity-b"}]}, "charity-c"),
    "http://notifications": answer("notifications", {"referral_owners": [], "deliveries": [], "subscriptions": []}),
}


class FakeResponse:
    def __init__(self, status_code, body):
        self.status_code, self._body = status_code, body

    def json(self):
        return self._body


class FakeHttp:
    def __init__(self, answers=ANSWERS, *, down=(), status=None):
        self.answers, self.down, self.status = answers, set(down), status or {}
        self.asked: list[tuple[str, str]] = []

    def __call__(self, url, *, headers, timeout):
        base = url.split("/v1/")[0]
        self.asked.append((url, headers["Authorization"]))
        if base in self.down:
            raise requests.ConnectionError("refused")
        return FakeResponse(self.status.get(base, 200), self.answers.get(base))


def test_it_asks_intake_then_each_charity_named_then_notifications_and_writes_both_files(tmp_path, capsys):
    http = FakeHttp()
    assert sar.main([REFERRAL, "--out", str(tmp_path)], get=http, env=ENV) == 0
    bases = [url.split("/v1/")[0] for url, _ in http.asked]
    # charity-b holds it (intake's referral row), charity-a was offered it, charity-c is named by b's transition
    assert bases == ["http://intake", "http://b", "http://a", "http://c", "http://notifications"]
    assert {url.split("/v1/")[1] for url, _ in http.asked} == {f"subject-access/{REFERRAL}"}
    assert {auth for _, auth in http.asked} == {"Bearer dpo-token"}
    copy = json.loads((tmp_path / f"sar-{REFERRAL}.json").read_text())
    assert [part["answer"] for part in copy["parts"]] == [ANSWERS[base] for base in bases]
    assert copy["other_recipients"] == ["some-council"]
    assert (tmp_path / f"sar-{REFERRAL}.html").stat().st_mode & 0o077 == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in out[:-1]] == [
        "asking intake",
        "asking advocacy charity-b",
        "asking advocacy charity-a",
        "asking advocacy charity-c",
        "asking notifications",
    ]


@pytest.mark.parametrize(
    ("http", "env", "expected"),
    [
        (FakeHttp(down={"http://b"}), ENV, "advocacy charity-b at http://b cannot be reached"),
        (FakeHttp(status={"http://intake": 404}), ENV, f"intake holds no referral {REFERRAL}"),
        (FakeHttp(status={"http://notifications": 403}), ENV, "notifications refused the token (403)"),
        (FakeHttp(), {**ENV, "SAR_PROVIDER_URLS": "charity-a=http://a"}, "charity charity-b holds part"),
        (FakeHttp(), {**ENV, "SAR_TOKEN": ""}, "SAR_TOKEN is not set"),
        (FakeHttp(), {**ENV, "SAR_PROVIDER_URLS": "charity-a"}, "SAR_PROVIDER_URLS has 'charity-a'"),
    ],
)
def test_a_failure_is_one_line_with_the_fix_and_exit_1(tmp_path, capsys, http, env, expected):
    assert sar.main([REFERRAL, "--out", str(tmp_path)], get=http, env=env) == 1
    err = capsys.readouterr().err.strip()
    assert expected in err and "Fix:" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_argument_prints_the_usage_and_exits_2(capsys):
    with pytest.raises(SystemExit) as stopped:
        sar.main([], get=FakeHttp(), env=ENV)
    assert stopped.value.code == 2 and "usage: referrals-sar" in capsys.readouterr().err


def test_the_page_has_every_service_and_section_and_escapes_what_it_shows():
    answers = dict(ANSWERS)
    hostile = "<script>alert(1)</script>"
    answers["http://a"] = answer("advocacy", {"case_notes": [{"text": hostile, "nested": {"k": hostile}}]}, "a")
    copy = sar.collect(REFERRAL, sar.Config.from_env(ENV), get=FakeHttp(answers), progress=lambda line: None)
    page = sar.render_html(copy)
    assert '<html lang="en">' in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for part in copy["parts"]:
        assert f"<h2>{part['service']}</h2>" in page
        for section in part["answer"]["sections"]:
            assert f"<h3>{section}</h3>" in page
    assert page.count("Nothing held.") == 3  # notifications holds none of its three kinds
    assert "some-council" in page


@pytest.mark.parametrize(
    ("kind", "scopes", "allowed"),
    [
        ("ops", {"referrals:erase"}, True),
        ("service", {"referrals:erase"}, True),
        ("ops", {"referrals:read"}, False),
        ("police", {"referrals:erase", "referrals:write"}, False),
        ("provider", {"referrals:erase"}, False),
    ],
)
def test_only_a_platform_dpo_or_the_platform_service_token_may_ask(kind, scopes, allowed):
    assert may_ask(Principal(sub="s", org="o", org_kind=kind, scopes=frozenset(scopes))) is allowed
