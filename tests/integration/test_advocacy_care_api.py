"""An advocate's day on a case through advocacy's API on the real PostgreSQL (issue 13 items 2-3): the contact
log, notes and risk flags; `case.risk_raised` for a high flag; the no-contact rule firing
`case.contact_overdue` exactly once across two workers with time passed in (the coordinator's page showing it:
test_advocacy_care_page); special-category notes in no event and no log line; the 4xx a bad request gets."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select

from services.advocacy.bootstrap import bootstrap
from services.advocacy.continuity.scheduler import ClockScheduler
from services.advocacy.continuity.wall_clock import LONDON, FixedClock
from services.advocacy.models import Outbox
from support.advocacy import PROVIDER, FakeIntake, accepted_case, confirmed, deliver, outbox, staged

SECRET = "Synthetic-secret-Quorra"  # in every note below: it must never leave the case's own rows
NOTE = f"{SECRET}: says the man from the car wash found her new address."


def open_case(advocacy) -> dict:
    case = accepted_case(advocacy)
    deliver(advocacy, confirmed(case), intake=FakeIntake())
    return case


def post(advocacy, path: str, body: dict):
    return advocacy.client.post(path, json=body, headers=advocacy.headers)


def get(advocacy, path: str):
    response = advocacy.client.get(path, headers=advocacy.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def now_iso(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def test_contacts_notes_and_risks_are_kept_and_their_text_is_in_no_event_log_or_timeline(advocacy, caplog):
    case = open_case(advocacy)
    base = f"/v1/cases/{case['id']}"
    caplog.set_level(logging.DEBUG)

    logged = post(advocacy, f"{base}/contacts", {"at": now_iso(hours=-2), "method": "phone", "outcome": "no_answer",
                                                 "interpreter_used": False, "note": NOTE})  # fmt: skip
    reached = post(advocacy, f"{base}/contacts", {"at": now_iso(hours=-1), "method": "in_person",
                                                  "outcome": "reached", "interpreter_used": True})  # fmt: skip
    note = post(advocacy, f"{base}/notes", {"text": NOTE})
    low = post(advocacy, f"{base}/risks", {"kind": "self_harm", "level": "low", "review_on": date.today().isoformat(),
                                           "note": NOTE})  # fmt: skip
    high = post(advocacy, f"{base}/risks", {"kind": "re_trafficking", "level": "high", "review_on": "2099-01-01"})
    for response in (logged, reached, note, low, high):
        assert response.status_code == 201, response.get_json()

    contacts = get(advocacy, f"{base}/contacts")
    assert [(c["method"], c["outcome"], c["interpreter_used"]) for c in contacts] == [
        ("in_person", "reached", True),  # newest first
        ("phone", "no_answer", False),
    ]
    assert contacts[1]["note"] == NOTE
    assert [n["text"] for n in get(advocacy, f"{base}/notes")] == [NOTE]
    assert {(r["kind"], r["level"]) for r in get(advocacy, f"{base}/risks")} == {
        ("self_harm", "low"),
        ("re_trafficking", "high"),
    }
    # A high flag is announced at once, with ids, its kind and level; the low one is not announced.
    assert staged(advocacy, "case.risk_raised") == [
        {
            "referral_id": case["referral_id"],
            "case_id": case["id"],
            "provider_id": PROVIDER,
            "local_authority_org_id": None,
            "risk_id": high.get_json()["id"],
            "kind": "re_trafficking",
            "level": "high",
        }
    ]
    timeline = get(advocacy, base)["timeline"]
    [added] = [e for e in timeline if e["kind"] == "note_added"]
    assert added["detail"] == "" and added["actor"]  # "note added by X", without the text
    assert [e["detail"] for e in timeline if e["kind"] == "contact_logged"] == [
        "contact by phone: no answer",
        "contact by in person: reached",
    ]
    with advocacy.sessions.begin() as session:
        everything = json.dumps(
            [row for row in session.execute(select(Outbox.type, Outbox.payload)).all()], default=str
        )
    assert SECRET not in everything
    assert SECRET not in json.dumps(timeline)
    assert SECRET not in caplog.text and all(SECRET not in str(r.__dict__) for r in caplog.records)


def test_the_no_contact_rule_fires_once_per_episode_across_two_workers(advocacy):
    case = open_case(advocacy)
    # Time passed in: two workers' schedulers, each on its own engine, 15 days after the case opened.
    clock = FixedClock(datetime.now(UTC) + timedelta(days=15))
    workers = [bootstrap(advocacy.advocacy.settings, wall_clock=clock, instrument=False) for _ in range(2)]
    schedulers = [ClockScheduler(w.unit_of_work, PROVIDER, clock, contacts=w.continuity.contacts) for w in workers]
    try:
        ticks = [threading.Thread(target=s.tick) for s in (*schedulers, *schedulers)]
        for t in ticks:
            t.start()
        for t in ticks:
            t.join()
        assert sum(s.tick().contact_overdue for s in schedulers) == 0  # once per episode

        [overdue] = staged(advocacy, "case.contact_overdue")
        opened = datetime.fromisoformat(get(advocacy, f"/v1/cases/{case['id']}")["opened_at"])
        assert overdue == {
            "referral_id": case["referral_id"],
            "case_id": case["id"],
            "provider_id": PROVIDER,
            "local_authority_org_id": None,
            "is_child": False,
            "counted_from": overdue["counted_from"],
            "due_on": (date.fromisoformat(overdue["counted_from"]) + timedelta(days=14)).isoformat(),
            "policy_version": "no_contact_adult@*:2009-04-01",
        }
        assert abs(date.fromisoformat(overdue["counted_from"]) - opened.date()) <= timedelta(days=1)

        # A reached contact ends the episode; the next lapse is a new episode.
        reached_now = {"at": now_iso(), "method": "video", "outcome": "reached", "interpreter_used": False}
        reached = post(advocacy, f"/v1/cases/{case['id']}/contacts", reached_now)
        assert reached.status_code == 201, reached.get_json()
        clock.at = datetime.fromisoformat(reached_now["at"]) + timedelta(days=14, minutes=-5)
        assert sum(s.tick().contact_overdue for s in schedulers) == 0  # within 14 days of the reached contact
        clock.advance(minutes=10)
        assert sum(s.tick().contact_overdue for s in schedulers) == 1
        first, second = staged(advocacy, "case.contact_overdue")
        reached_on = datetime.fromisoformat(reached_now["at"]).astimezone(LONDON).date().isoformat()
        assert second["counted_from"] == reached_on and second["counted_from"] >= first["counted_from"]
    finally:
        for worker in workers:
            worker.engine.dispose()


def test_a_childs_case_lapses_after_7_days(advocacy):
    child = open_case(advocacy)
    clock = FixedClock(datetime.now(UTC) + timedelta(days=8))
    scheduler = ClockScheduler(advocacy.unit_of_work, PROVIDER, clock, contacts=advocacy.continuity.contacts)
    assert scheduler.tick().contact_overdue == 0  # an adult's: 14 days
    with advocacy.unit_of_work() as uow:
        case = uow.cases.get(child["id"])
        case.referral = {**(case.referral or {}), "is_child": True}
    assert scheduler.tick().contact_overdue == 1
    [overdue] = staged(advocacy, "case.contact_overdue")
    assert (overdue["case_id"], overdue["is_child"]) == (child["id"], True)
    assert overdue["policy_version"] == "no_contact_child@*:2009-04-01"


def test_bad_contacts_notes_and_risks_are_422_naming_the_field_an_unknown_case_404_a_closed_one_409(advocacy):
    case = open_case(advocacy)
    base = f"/v1/cases/{case['id']}"
    good_contact = {"at": now_iso(), "method": "phone", "outcome": "reached", "interpreter_used": False}
    good_risk = {"kind": "missing", "level": "high", "review_on": "2099-01-01"}
    bad = [
        ("contacts", {**good_contact, "at": now_iso(hours=1)}, "at"),
        ("contacts", {**good_contact, "method": "carrier_pigeon"}, "method"),
        ("contacts", {**good_contact, "outcome": "maybe"}, "outcome"),
        ("contacts", {k: v for k, v in good_contact.items() if k != "interpreter_used"}, "interpreter_used"),
        ("contacts", {**good_contact, "case_id": "x"}, "case_id"),  # no mass assignment
        ("notes", {"text": ""}, "text"),
        ("notes", {"text": "   "}, "text"),
        ("notes", {"text": "x" * 10_001}, "text"),
        ("risks", {**good_risk, "kind": "weather"}, "kind"),
        ("risks", {**good_risk, "level": "extreme"}, "level"),
        ("risks", {**good_risk, "review_on": (date.today() - timedelta(days=2)).isoformat()}, "review_on"),
        ("risks", {**good_risk, "review_on": "soon"}, "review_on"),
    ]
    for what, body, field in bad:
        response = post(advocacy, f"{base}/{what}", body)
        assert response.status_code == 422 and field in response.get_json()["errors"]["json"], (what, body)
    assert staged(advocacy, "case.risk_raised") == []

    for what, body in (("contacts", good_contact), ("notes", {"text": "Synthetic."}), ("risks", good_risk)):
        assert post(advocacy, f"/v1/cases/no-such-case/{what}", body).status_code == 404
        assert advocacy.client.get(f"/v1/cases/no-such-case/{what}", headers=advocacy.headers).status_code == 404
    assert post(advocacy, f"{base}/closure", {"outcome": "moved_on"}).status_code == 200
    for what, body in (("contacts", good_contact), ("notes", {"text": "Synthetic."}), ("risks", good_risk)):
        assert post(advocacy, f"{base}/{what}", body).status_code == 409, what
        assert advocacy.client.get(f"{base}/{what}", headers=advocacy.headers).status_code == 200
    assert outbox(advocacy, "case.risk_raised") == []


def test_writes_need_cases_write(advocacy, auth_header):
    case = open_case(advocacy)
    reader = auth_header(PROVIDER, "provider", "cases:read")
    response = advocacy.client.post(f"/v1/cases/{case['id']}/notes", json={"text": "Synthetic."}, headers=reader)
    assert response.status_code == 403
    assert advocacy.client.get(f"/v1/cases/{case['id']}/notes", headers=reader).status_code == 200
