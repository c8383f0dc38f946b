"""Subject access (issue 14 item 5, Done when "`referrals-sar` returns every service's part for a referral held by
two charities"), on the real PostgreSQL of intake, two charities and notifications and the real broker: a
referral is offered to charity-a, which declines, then to charity-b, which accepts and opens its case (a recorded
disclosure); notifications hears of it. The four APIs are served on real local ports, and `referrals-sar` asks
each of them and writes every part. Also who may ask, and what an unknown referral gets from each."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server

from services import subject_access_cli as sar
from shared.testing import referral_body
from support.advocacy import PROVIDER
from support.rights import POLICE, SECOND, held_by_two_charities

DPO = ("platform-dpo", "ops", "referrals:erase")


@contextmanager
def served(*apps: Flask) -> Iterator[list[str]]:
    """Each app on its own 127.0.0.1 port (werkzeug, threaded): their base URLs."""
    servers = [make_server("127.0.0.1", 0, app, threaded=True) for app in apps]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    try:
        yield [f"http://127.0.0.1:{server.server_port}" for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_referrals_sar_collects_intake_both_charities_and_notifications(
    intake, advocacy, notifications, fresh_database, dev_keys, broker_url, auth_header, make_token, amqp_url, tmp_path
):
    _, notifications_client = notifications
    body = referral_body(seed=61)
    with held_by_two_charities(
        intake, advocacy, notifications, fresh_database, dev_keys, broker_url, auth_header, amqp_url, body
    ) as held:
        referral_id, subscription_id = held.referral_id, held.subscription_id
        apps = (held.intake_app, advocacy.client.application, held.second_app, notifications_client.application)
        with served(*apps) as (intake_url, a_url, b_url, notifications_url):
            env = {
                "SAR_TOKEN": make_token(*DPO),
                "SAR_INTAKE_URL": intake_url,
                "SAR_NOTIFICATIONS_URL": notifications_url,
                "SAR_PROVIDER_URLS": f"{PROVIDER}={a_url},{SECOND}={b_url}",
            }
            assert sar.main([referral_id, "--out", str(tmp_path)], env=env) == 0
            police = {"SAR_TOKEN": make_token(*POLICE)}
            assert sar.main([referral_id, "--out", str(tmp_path / "no")], env={**env, **police}) == 1

    copy = json.loads((tmp_path / f"sar-{referral_id}.json").read_text())
    parts = {part["service"]: part["answer"] for part in copy["parts"]}
    services = list(parts)
    assert services[0] == "intake" and services[-1] == "notifications"
    assert sorted(services[1:-1]) == [f"advocacy {PROVIDER}", f"advocacy {SECOND}"] and copy["other_recipients"] == []
    assert {answer["referral_id"] for answer in parts.values()} == {referral_id}
    at_intake = parts["intake"]["sections"]
    assert [r["id"] for r in at_intake["referrals"]] == [referral_id]
    subject = referral_body(seed=61)["subject"]
    assert at_intake["referrals"][0]["body"]["subject"]["family_name"] == subject["family_name"]
    assert sorted((o["provider_id"], o["status"]) for o in at_intake["offers"]) == [
        (PROVIDER, "declined"),
        (SECOND, "accepted"),
    ]
    recipients = {(d["recipient_org"], d["recipient_kind"], d["purpose"]) for d in at_intake["disclosures"]}
    assert recipients == {
        (PROVIDER, "provider", "offer_summary"),
        (SECOND, "provider", "offer_summary"),
        (SECOND, "provider", "case_opening"),
        ("notifications", "notifications", "referral_events"),
    }
    assert at_intake["consent_records"]  # as submitted
    # the erasure and rectification records join by themselves (none yet for this referral)
    assert at_intake["erasures"] == at_intake["erasure_recipients"] == at_intake["rectifications"] == []
    at_b, at_a = parts[f"advocacy {SECOND}"], parts[f"advocacy {PROVIDER}"]
    assert (at_b["provider_id"], at_a["provider_id"]) == (SECOND, PROVIDER)
    assert [c["referral_id"] for c in at_b["sections"]["cases"]] == [referral_id]
    # sealed at rest, answered opened (the person's own data); no service answers its wrapped data keys
    assert at_b["sections"]["cases"][0]["referral"]["subject"]["family_name"] == subject["family_name"]
    assert not [name for name, part in parts.items() if "data_keys" in part["sections"]]
    assert at_b["sections"]["timeline_entries"] and at_b["sections"]["clocks"]
    assert [o["status"] for o in at_a["sections"]["offers"]] == ["declined"] and at_a["sections"]["cases"] == []
    held = parts["notifications"]["sections"]
    assert [o["referral_id"] for o in held["referral_owners"]] == [referral_id]
    assert sorted(d["event_type"] for d in held["deliveries"]) == ["referral.allocated", "referral.received"]
    assert held["deliveries"][0]["payload"]["data"]["referral_id"] == referral_id
    [received_by] = held["subscriptions"]
    assert received_by["id"] == subscription_id and "secret" not in received_by
    page = (tmp_path / f"sar-{referral_id}.html").read_text()
    assert all(f"<h2>{service}</h2>" in page for service in parts)


def test_only_a_dpo_or_the_platform_may_ask_and_an_unknown_referral(intake, advocacy, notifications, auth_header):
    app, _ = intake
    root, notifications_client = notifications
    clients = (app.test_client(), advocacy.client, notifications_client)
    dpo, platform = auth_header(*DPO), auth_header("platform", "service", "referrals:erase")
    for client in clients:
        for headers in (auth_header(*POLICE), auth_header(PROVIDER, "provider", "referrals:erase cases:read")):
            assert client.get("/v1/subject-access/nobody", headers=headers).status_code == 403
        assert client.get("/v1/subject-access/nobody").status_code == 401
    unknown = clients[0].get("/v1/subject-access/nobody", headers=dpo)
    assert unknown.status_code == 404 and unknown.get_json()["message"] == "No such referral."
    for client in clients[1:]:
        answer = client.get("/v1/subject-access/nobody", headers=platform)
        assert answer.status_code == 200
        sections = answer.get_json()["sections"]
        assert sections and all(rows == [] for rows in sections.values())
