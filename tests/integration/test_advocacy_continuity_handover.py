"""Handovers: a provider handover moves the case to the receiving provider's instance over the real broker
(routing key `case.handover.<provider>`, bound only by that provider's queue), with its timeline, NRM record,
clocks and open transitions, and no personal data (no birthday: the receiver recomputes turning 18 from the
referral intake lets it fetch); an advocate handover changes the advocate only when done."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta

from pika.exceptions import UnroutableError
from sqlalchemy import select
from test_advocacy_continuity import (  # the same instance fixture and helpers
    NOW,
    disclosed,
    make_instance_fixture,  # noqa: F401 - the `make_instance` fixture
    open_case_over_the_broker,
    publish_when_bound,
    tap,
)

from services.advocacy.models import Case
from shared.messaging.envelope import Event
from shared.testing import date_of_birth_for_age
from support.amqp import drain, publish, running
from support.events import arriving, payload
from support.waiting import wait_until

ALL_DONE = {"receiving_agency_informed": True, "accommodation_confirmed": True, "handover_summary_written": True}


def wait_for_case(instance, referral_id: str, timeout: float = 20) -> Case:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with instance.sessions.begin() as session:
            case = session.scalars(select(Case).where(Case.referral_id == referral_id)).first()
            if case is not None:
                return case
        time.sleep(0.1)
    raise AssertionError(f"no case for referral {referral_id} at {instance.provider_id}")


def accept_when_offered(sender, receiver, case_id: str, transition_id: str, timeout: float = 20) -> dict:
    """The completed provider_handover was offered: the receiving instance lists it and accepts it."""
    deadline = time.monotonic() + timeout
    while not receiver.get("/v1/handovers") and time.monotonic() < deadline:
        time.sleep(0.1)
    [offered] = receiver.get("/v1/handovers")
    assert offered["id"] == transition_id and offered["from_provider_id"] == sender.provider_id
    return receiver.post(f"/v1/handovers/{transition_id}/accept", {}, status=200)


def test_a_provider_handover_moves_the_case_with_its_timeline_to_the_receiving_instance(make_instance):
    sender, receiver = make_instance("charity-from"), make_instance("charity-to")
    sending, receiving = sender.loops(), receiver.loops()
    referred = NOW.date() - timedelta(days=40)
    dob = date_of_birth_for_age(17, 6, today=referred)  # a child: a turning_18 clock and transition
    birthday = date.fromisoformat(dob).replace(year=date.fromisoformat(dob).year + 18).isoformat()
    referral = disclosed(child=True, dob=dob, referred=referred)
    watch = tap(sender, "case.handover.*")
    with (
        running(sending["consumer"]),
        running(sending["relay"]),
        running(receiving["consumer"]),
        running(receiving["relay"]),
    ):
        case_id = open_case_over_the_broker(sender, referral)
        assert birthday in {c["due_on"] for c in sender.get(f"/v1/cases/{case_id}/nrm")["clocks"]}
        sender.post(
            f"/v1/cases/{case_id}/nrm/decisions", {"stage": "rg", "outcome": "positive", "decided_on": "2026-01-20"}
        )
        handover = sender.post(
            f"/v1/cases/{case_id}/transitions",
            {"kind": "provider_handover", "planned_for": "2026-03-20", "receiving_provider_id": "charity-to"},
        )
        sender.client.patch(f"/v1/cases/{case_id}/transitions/{handover['id']}", json={"checklist": ALL_DONE},
                            headers=sender.headers)  # fmt: skip
        offered = sender.post(f"/v1/cases/{case_id}/transitions/{handover['id']}/completion", status=200)
        assert offered["status"] == "in_progress" and offered["respond_by"]  # offered, awaiting the answer
        accept_when_offered(sender, receiver, case_id, handover["id"])
        wait_until(lambda: sender.get(f"/v1/cases/{case_id}")["status"] == "closed")
        received = wait_for_case(receiver, referral["id"])
        [(properties, body)] = drain(sender.amqp_url, watch, expect=1)
        # The case waits, opening, until intake has moved the allocation and the referral can be fetched.
        assert received.status == "opening"
        receiver.intake.referrals[referral["id"]] = referral
        publish(receiver.amqp_url, transferred(referral["id"]))
        wait_until(lambda: receiver.get(f"/v1/cases/{received.id}")["status"] == "open")

    # On the wire: addressed to the receiving provider, carrying ids, codes, dates and the timeline only:
    # no name, no narrative, no date of birth, and no 18th birthday (nor any clock measured from it).
    message = json.loads(body)
    assert properties.type == "case.handover" and message["data"]["to_provider_id"] == "charity-to"
    subject = referral["subject"]
    for personal in (subject["given_name"], subject["family_name"], dob, birthday, referral["narrative"]):
        assert personal not in body.decode()
    assert "turning_18" not in body.decode()

    # The receiving instance has the case, open, with the whole story so far and the running clocks; what
    # derives from the person's details it planned again from the referral it fetched.
    moved = receiver.get(f"/v1/cases/{received.id}")
    kinds = [entry["kind"] for entry in moved["timeline"]]
    assert kinds[:2] == ["offer_received", "offer_accepted"]
    assert {"nrm_decision_recorded", "transition_planned", "case_handed_over", "case_received"} <= set(kinds)
    nrm = receiver.get(f"/v1/cases/{received.id}/nrm")
    assert [(d["stage"], d["outcome"], d["decided_on"]) for d in nrm["decisions"]] == [("rg", "positive", "2026-01-20")]
    clocks = {c["kind"]: c for c in nrm["clocks"]}
    assert {"recovery_period", "cg_not_before", "turning_18"} <= set(clocks)
    assert clocks["turning_18"]["due_on"] == birthday

    # The sending instance closed its case and stopped its clocks.
    closed = sender.get(f"/v1/cases/{case_id}")
    assert closed["status"] == "closed"
    assert all(c["state"] == "stopped" for c in sender.get(f"/v1/cases/{case_id}/nrm")["clocks"])


def transferred(referral_id: str) -> Event:
    """intake's allocation.transferred: the handed-over case is now charity-to's."""
    moved = payload(
        "allocation.transferred", referral_id=referral_id, provider_id="charity-to", from_provider_id="charity-from"
    )
    return arriving(moved)


def test_a_handover_is_routed_only_to_the_receiving_providers_queue(make_instance):
    receiver = make_instance("charity-to")
    loops = receiver.loops()

    def handover(to: str) -> Event:
        data = payload(
            "case.handover",
            referral_id=str(uuid.uuid4()),
            case_id=str(uuid.uuid4()),
            transition_id=str(uuid.uuid4()),
            from_provider_id="charity-x",
            to_provider_id=to,
            handed_over_at="2026-03-01T09:00:00+00:00",
            summary={"is_child": False, "pathway": "nrm", "region": "london"},
            nrm={},
        )
        return arriving(data)

    with running(loops["consumer"]):
        publish_when_bound(receiver.amqp_url, handover("charity-to"), "case.handover.charity-to")
        try:
            publish(receiver.amqp_url, handover("charity-other"), "case.handover.charity-other")
        except UnroutableError:
            pass
        else:
            raise AssertionError("a handover to charity-other was routable with only charity-to's queue bound")


def test_an_advocate_handover_changes_the_advocate_only_when_completed_and_a_relocation_never(make_instance):
    charity = make_instance("charity-h")
    loops = charity.loops()
    with running(loops["consumer"]), running(loops["relay"]):
        case_id = open_case_over_the_broker(charity, disclosed(referred=date(2026, 2, 1)))
    first = charity.get(f"/v1/cases/{case_id}")["advocate"]["id"]
    second = charity.post(
        "/v1/advocates", {"name": "Advocate Synthetic-Mi", "email": "mi@charity-h.example", "languages": ["sq"],
                          "max_caseload": 5}
    )["id"]  # fmt: skip
    relocation = charity.post(f"/v1/cases/{case_id}/transitions", {"kind": "relocation", "planned_for": "2026-04-01"})
    charity.client.patch(f"/v1/cases/{case_id}/transitions/{relocation['id']}", json={"checklist": ALL_DONE},
                         headers=charity.headers)  # fmt: skip
    charity.post(f"/v1/cases/{case_id}/transitions/{relocation['id']}/completion", status=200)
    assert charity.get(f"/v1/cases/{case_id}")["advocate"]["id"] == first
    handover = charity.post(
        f"/v1/cases/{case_id}/transitions",
        {"kind": "advocate_handover", "planned_for": "2026-04-02", "to_advocate_id": second},
    )
    assert charity.get(f"/v1/cases/{case_id}")["advocate"]["id"] == first  # planned is not done
    charity.client.patch(f"/v1/cases/{case_id}/transitions/{handover['id']}", json={"checklist": ALL_DONE},
                         headers=charity.headers)  # fmt: skip
    charity.post(f"/v1/cases/{case_id}/transitions/{handover['id']}/completion", status=200)
    assert charity.get(f"/v1/cases/{case_id}")["advocate"]["id"] == second


def test_after_a_handover_the_receiving_provider_fetches_the_referral_once_intake_moves_the_allocation(make_instance):
    sender, receiver = make_instance("charity-from"), make_instance("charity-to")
    sending, receiving = sender.loops(), receiver.loops()
    referral = disclosed(referred=date(2026, 1, 5))
    watch = tap(sender, "case.handed_over")
    with (
        running(sending["consumer"]),
        running(sending["relay"]),
        running(receiving["consumer"]),
        running(receiving["relay"]),
    ):
        case_id = open_case_over_the_broker(sender, referral)
        handover = sender.post(
            f"/v1/cases/{case_id}/transitions",
            {"kind": "provider_handover", "planned_for": "2026-03-20", "receiving_provider_id": "charity-to"},
        )
        sender.client.patch(f"/v1/cases/{case_id}/transitions/{handover['id']}", json={"checklist": ALL_DONE},
                            headers=sender.headers)  # fmt: skip
        sender.post(f"/v1/cases/{case_id}/transitions/{handover['id']}/completion", status=200)
        accept_when_offered(sender, receiver, case_id, handover["id"])
        received = wait_for_case(receiver, referral["id"])
        [(_, body)] = drain(sender.amqp_url, watch, expect=1)  # intake hears of it and moves the allocation
        told = json.loads(body)["data"]
        assert (told["from_provider_id"], told["to_provider_id"]) == ("charity-from", "charity-to")

        receiver.intake.referrals[referral["id"]] = referral  # intake now lets charity-to read it
        publish(receiver.amqp_url, transferred(referral["id"]))
        deadline = time.monotonic() + 20
        while receiver.get(f"/v1/cases/{received.id}")["referral"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
    case = receiver.get(f"/v1/cases/{received.id}")
    assert case["referral"]["subject"]["given_name"] == referral["subject"]["given_name"]
    assert "referral_disclosed" in [entry["kind"] for entry in case["timeline"]]
