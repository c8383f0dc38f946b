"""Erasure reaches every recipient (issue 14 Done when), on the real PostgreSQL of intake, three charities and
notifications and the real broker: a referral with a canary in every personal field is declined by charity-a
and held by charity-b (which logs a contact, a note and a risk flag, each with a canary) until it hands the
case over to charity-c (provider handover: offered, accepted, moved; intake moves the allocation and charity-c
fetches the referral), and notifications queues the referrer's webhooks. The referring force asks for its
erasure: intake erases its copy and asks each recipient; each erases its copy (charity-b its leftovers) and
confirms through the broker; `GET .../erasure` shows each with its time (notifications, silent meanwhile,
shows unconfirmed until it answers), no canary is left in any row of any table of the five databases, and a
subject access request then finds none either."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from services.advocacy.models import Case
from services.advocacy.models import Outbox as AdvocacyOutbox
from services.intake.models import Outbox as IntakeOutbox
from services.notifications.models import Outbox as NotificationsOutbox
from support.advocacy import PROVIDER
from support.apps import dispose, service_app
from support.canaries import CANARIES, REFERENCE, canary_referral, casework
from support.canaries import canaries_left as left_in
from support.flows import relayed
from support.rights import POLICE, SECOND, held_by_two_charities

THIRD = "charity-c"
ALL_DONE = {"receiving_agency_informed": True, "accommodation_confirmed": True, "handover_summary_written": True}
CANARIES = CANARIES | {"reference": REFERENCE}  # erased too: notifications kept it for the referrer's webhooks


def canaries_left(engine) -> dict[str, list[str]]:
    return left_in(engine, CANARIES)


def hand_over(held, sessions, amqp_url, auth_header, root, case_id: str, third) -> None:
    """charity-b hands its case to charity-c through the events a provider handover exchanges."""
    second, charity_b = held.second, held.second_app.test_client()
    charity_c = third.test_client()
    headers_b = auth_header(SECOND, "provider", "cases:read cases:write")
    headers_c = auth_header(THIRD, "provider", "offers:respond cases:read cases:write")
    planned = (datetime.now(UTC).date() + timedelta(days=7)).isoformat()
    handover = charity_b.post(f"/v1/cases/{case_id}/transitions", headers=headers_b, json={
        "kind": "provider_handover", "planned_for": planned, "receiving_provider_id": THIRD})  # fmt: skip
    assert handover.status_code == 201, handover.get_json()
    transition = handover.get_json()["id"]
    checked = charity_b.patch(f"/v1/cases/{case_id}/transitions/{transition}", json={"checklist": ALL_DONE},
                              headers=headers_b)  # fmt: skip
    assert checked.status_code == 200, checked.get_json()
    done = charity_b.post(f"/v1/cases/{case_id}/transitions/{transition}/completion", headers=headers_b)
    assert done.status_code == 200, done.get_json()
    c = third.extensions["advocacy"]
    offered = relayed(amqp_url, second.sessions, AdvocacyOutbox, f"case.handover_offered.{THIRD}")
    held.deliver_to_charity(c, THIRD, offered[f"case.handover_offered.{THIRD}"])
    accepted = charity_c.post(f"/v1/handovers/{transition}/accept", json={}, headers=headers_c)
    assert accepted.status_code == 200, accepted.get_json()
    answer = relayed(amqp_url, c.sessions, AdvocacyOutbox, f"case.handover_accepted.{SECOND}")
    held.deliver_to_charity(second, SECOND, answer[f"case.handover_accepted.{SECOND}"])
    moved = relayed(amqp_url, second.sessions, AdvocacyOutbox, f"case.handover.{THIRD}", "case.handed_over")
    held.deliver_to_charity(c, THIRD, moved[f"case.handover.{THIRD}"])
    held.deliver_to_intake(moved["case.handed_over"])
    transferred = relayed(amqp_url, sessions, IntakeOutbox, f"allocation.transferred.{THIRD}", "referral.transferred")
    held.deliver_to_charity(c, THIRD, transferred[f"allocation.transferred.{THIRD}"])  # fetches the referral
    root.handlers(transferred["referral.transferred"])
    with c.sessions.begin() as session:
        case = session.scalars(select(Case).where(Case.referral_id == held.referral_id)).one()
        assert case.status == "open" and case.referral["subject"]["given_name"] == CANARIES["given"]


def test_an_erasure_reaches_every_charity_and_notifications_and_leaves_no_canary_anywhere(
    intake, advocacy, notifications, fresh_database, dev_keys, broker_url, auth_header, amqp_url
):
    app, sessions = intake
    client = app.test_client()
    root, _ = notifications
    police = auth_header(*POLICE)
    with ExitStack() as stack:
        held = stack.enter_context(held_by_two_charities(
            intake, advocacy, notifications, fresh_database, dev_keys, broker_url, auth_header, amqp_url,
            canary_referral()))  # fmt: skip
        referral_id, second = held.referral_id, held.second
        charity_b = held.second_app.test_client()
        headers_b = auth_header(SECOND, "provider", "cases:read cases:write")
        with second.sessions.begin() as session:
            case_id = session.scalars(select(Case.id).where(Case.referral_id == referral_id)).one()
        for path, body in casework():
            response = charity_b.post(f"/v1/cases/{case_id}/{path}", json=body, headers=headers_b)
            assert response.status_code == 201, response.get_json()
        third = service_app("advocacy", fresh_database("advocacy"), dev_keys, PROVIDER_ID=THIRD, AMQP_URL=broker_url)
        stack.callback(dispose, third)
        admin = auth_header("platform", "coordinator", "providers:admin")
        directory = {"regions": ["london"], "serves": ["adult", "child"], "languages": ["sq"], "name": "Charity C",
                     "capacity": 2}  # fmt: skip
        assert client.put(f"/v1/providers/{THIRD}", json=directory, headers=admin).status_code == 201
        assert third.test_client().post(
            "/v1/advocates",
            json={"name": "Advocate Synthetic-Cy", "email": "cy@charity-c.example", "languages": ["sq"],
                  "max_caseload": 5},
            headers=auth_header(THIRD, "provider", "cases:write"),
        ).status_code == 201  # fmt: skip
        hand_over(held, sessions, amqp_url, auth_header, root, case_id, third)
        engines = {"intake": app.extensions["intake"].engine, PROVIDER: advocacy.advocacy.engine,
                   SECOND: second.engine, THIRD: third.extensions["advocacy"].engine,
                   "notifications": root.engine}  # fmt: skip
        before = {name: canaries_left(engine) for name, engine in engines.items()}
        # Sealed at rest (shared.sealed): only the external reference, a column of its own, is found in clear.
        assert set(before["intake"]) == {"reference"} and "reference" in before["notifications"]
        assert not before[SECOND] and not before[THIRD]  # the sender's notes and the copy the receiver fetched

        asked = client.post(f"/v1/referrals/{referral_id}/erasure", json={"reason": "Synthetic request."},
                            headers=police)  # fmt: skip
        assert asked.status_code == 202, asked.get_json()
        charities = {PROVIDER: advocacy, SECOND: second, THIRD: third.extensions["advocacy"]}
        keys = {p: f"referral.erasure_requested.provider.{p}" for p in charities}
        requests = relayed(amqp_url, sessions, IntakeOutbox, *keys.values(), "referral.erasure_requested.notifications")
        for provider, instance in charities.items():
            held.deliver_to_charity(instance, provider, requests[keys[provider]])
        for instance in charities.values():
            held.deliver_to_intake(relayed(amqp_url, instance.sessions, AdvocacyOutbox, "erasure.completed")[
                "erasure.completed"])  # fmt: skip

        status = client.get(f"/v1/referrals/{referral_id}/erasure", headers=police).get_json()
        by_recipient = {r["recipient"]: r for r in status["recipients"]}
        assert status["status"] == "pending" and by_recipient["notifications"]["confirmed_at"] is None
        root.handlers(requests["referral.erasure_requested.notifications"])  # notifications comes back
        confirmed = relayed(amqp_url, root.sessions, NotificationsOutbox, "erasure.completed")
        held.deliver_to_intake(confirmed["erasure.completed"])

        status = client.get(f"/v1/referrals/{referral_id}/erasure", headers=police).get_json()
        assert status["status"] == "complete"
        expected = {f"provider.{p}" for p in charities} | {"notifications"}
        assert {r["recipient"] for r in status["recipients"]} == expected
        assert all(r["confirmed_at"] for r in status["recipients"])
        left = {name: found for name, engine in engines.items() if (found := canaries_left(engine))}
        assert left == {}
        for name, engine in engines.items():  # crypto-shredded: no data key of the referral anywhere
            if name != "notifications":
                with engine.connect() as connection:
                    keys = text("SELECT count(*) FROM data_keys WHERE referral_id = :r")
                    assert connection.execute(keys, {"r": referral_id}).scalar() == 0, name
        assert client.get(f"/v1/referrals/{referral_id}", headers=police).status_code == 410
        dpo = auth_header("platform-dpo", "ops", "referrals:erase")  # a subject access request now: nothing left
        for service in (client, advocacy.client, charity_b, third.test_client(), notifications[1]):
            copy = service.get(f"/v1/subject-access/{referral_id}", headers=dpo)
            assert copy.status_code == 200, copy.get_json()
            assert not [
                name for name, canary in CANARIES.items() if canary.lower() in copy.get_data(as_text=True).lower()
            ]
