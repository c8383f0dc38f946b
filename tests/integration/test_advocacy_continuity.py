"""Continuity of care on the real RabbitMQ and PostgreSQL: NRM decisions start the right clocks and plan
move-on; a child's case plans turning 18 and its notice fires once; a missed transition is flagged and
published once, with two schedulers and across a restart; time is a fake wall clock, nobody sleeps for days."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.advocacy.app import create_app
from services.advocacy.bootstrap import bootstrap
from services.advocacy.continuity.scheduler import ClockScheduler
from services.advocacy.continuity.wall_clock import FixedClock
from services.advocacy.models import Case, Clock, Outbox, Transition
from services.advocacy.worker import build_loops
from services.migrate import migrate
from shared.config import Settings
from shared.messaging.envelope import Event
from shared.testing import date_of_birth_for_age, referral_body
from support.amqp import declare_tap, drain, publish, running
from support.events import arriving, payload

SCOPES = "offers:respond cases:read cases:write"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # a Monday


class FakeIntake:
    """intake's disclosure of the full referral, keyed by referral id."""

    def __init__(self):
        self.referrals: dict[str, dict] = {}

    def fetch_referral(self, referral_id: str) -> dict:
        return self.referrals[referral_id]


@dataclass
class Instance:
    provider_id: str
    url: str
    settings: Settings
    client: FlaskClient
    sessions: sessionmaker
    headers: dict[str, str]
    clock: FixedClock
    intake: FakeIntake
    amqp_url: str

    def loops(self):
        return build_loops(self.settings, intake=self.intake, wall_clock=self.clock)

    def scheduler(self) -> ClockScheduler:
        """A scheduler of its own, on its own engine: as a second worker process would have."""
        second = bootstrap(self.settings, wall_clock=self.clock, instrument=False)
        return ClockScheduler(second.unit_of_work, self.provider_id, self.clock)

    def get(self, path: str):
        response = self.client.get(path, headers=self.headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def post(self, path: str, body: dict | None = None, status: int = 201):
        response = self.client.post(path, json=body or {}, headers=self.headers)
        assert response.status_code == status, response.get_json()
        return response.get_json()


@pytest.fixture(name="make_instance")
def make_instance_fixture(fresh_database, dev_keys, amqp_url, auth_header):
    made = []

    def make(provider_id: str = "charity-c") -> Instance:
        url = fresh_database(f"advocacy_{provider_id}")
        migrate("advocacy", url)
        env = {
            "ADVOCACY_DATABASE_URL": url,
            "PROVIDER_ID": provider_id,
            "AUTO_ACCEPT": "true",
            "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
            "AMQP_URL": amqp_url,
            "AMQP_RETRY_DELAY_MS": "200",
        }
        settings = Settings.from_env("advocacy", env=env)
        clock = FixedClock(NOW)
        app = create_app(settings, wall_clock=clock)
        made.append(app)
        advocacy = app.extensions["advocacy"]
        sessions = advocacy.sessions
        with advocacy.unit_of_work() as uow:
            advocacy.continuity.casework.create_advocate(
                uow,
                name="Advocate Synthetic-Ve",
                email=f"ve@{provider_id}.example",
                languages=["sq"],
                max_caseload=9,
            )
        headers = auth_header(provider_id, "provider", SCOPES)
        return Instance(provider_id, url, settings, app.test_client(), sessions, headers, clock, FakeIntake(), amqp_url)

    yield make
    for app in made:
        app.extensions["advocacy"].engine.dispose()


def tap(instance: Instance, *keys: str) -> str:
    name = f"tap.{uuid.uuid4().hex[:8]}"
    declare_tap(instance.amqp_url, name, *keys)
    return name


def events(url: str, queue: str, expect: int, timeout: float = 20) -> list[dict]:
    return [json.loads(body) for _, body in drain(url, queue, expect=expect, timeout=timeout)]


def open_case_over_the_broker(instance: Instance, referral: dict) -> str:
    """intake offers the referral (auto-accepted), then confirms the allocation; the case opens. Its id."""
    referral_id = referral["id"]
    instance.intake.referrals[referral_id] = referral
    watch = tap(instance, "offer.accepted", "case.opened")
    offer_id = str(uuid.uuid4())
    summary = {"is_child": referral["is_child"], "pathway": "nrm", "region": referral["location"]["region"],
               "languages": ["sq"]}  # fmt: skip
    offer = arriving(
        payload(
            "referral.offered",
            referral_id=referral_id,
            offer_id=offer_id,
            provider_id=instance.provider_id,
            org_id="met-police",
            offered_at=NOW.isoformat(),
            respond_by=(NOW + timedelta(hours=24)).isoformat(),
            summary=summary,
        )
    )
    publish_when_bound(instance.amqp_url, offer, f"referral.offered.{instance.provider_id}")
    [accepted] = events(instance.amqp_url, watch, 1)
    case_id = accepted["data"]["case_id"]
    allocation = arriving(
        payload(
            "allocation.confirmed",
            referral_id=referral_id,
            offer_id=offer_id,
            provider_id=instance.provider_id,
            case_id=case_id,
        )
    )
    publish(instance.amqp_url, allocation)
    [opened] = events(instance.amqp_url, watch, 1)
    assert opened["type"] == "case.opened" and opened["data"]["case_id"] == case_id
    return case_id


def publish_when_bound(url: str, event: Event, key: str) -> None:
    from pika.exceptions import UnroutableError

    for _ in range(100):
        try:
            return publish(url, event, key)
        except UnroutableError:
            threading.Event().wait(0.1)
    raise AssertionError(f"nothing bound to {key}")


def disclosed(*, child: bool = False, dob: str | None = None, region: str = "london", referred: date) -> dict:
    body = referral_body(child=child, seed=3, referred_at=f"{referred.isoformat()}T10:00:00+00:00")
    body["location"] = {"region": region}
    if dob:
        body["subject"]["date_of_birth"] = dob
    return {**body, "id": str(uuid.uuid4()), "status": "allocated", "pathway": "nrm", "is_child": child}


def test_a_positive_rg_then_a_positive_cg_produce_the_right_clocks_and_a_move_on_transition(make_instance):
    charity = make_instance()
    loops = charity.loops()
    watch = tap(charity, "transition.planned")
    with running(loops["consumer"]), running(loops["relay"]):
        case_id = open_case_over_the_broker(charity, disclosed(referred=date(2026, 1, 5)))
        nrm = charity.get(f"/v1/cases/{case_id}/nrm")
        assert [(c["kind"], c["due_on"], c["state"]) for c in nrm["clocks"]] == [
            ("rg_decision", "2026-01-12", "breached")  # 5 working days after 5 January; today is 2 March
        ]
        charity.post(
            f"/v1/cases/{case_id}/nrm/decisions", {"stage": "rg", "outcome": "positive", "decided_on": "2026-01-20"}
        )
        charity.post(
            f"/v1/cases/{case_id}/nrm/decisions", {"stage": "cg", "outcome": "positive", "decided_on": "2026-02-25"}
        )
        [planned] = events(charity.amqp_url, watch, 1)

    clocks = {c["kind"]: c for c in charity.get(f"/v1/cases/{case_id}/nrm")["clocks"]}
    assert clocks["rg_decision"]["state"] == "stopped"
    assert (clocks["recovery_period"]["due_on"], clocks["recovery_period"]["state"]) == ("2026-02-19", "stopped")
    assert clocks["recovery_period"]["policy_version"] == "recovery_period@*:2022-12-13"
    assert (clocks["cg_not_before"]["due_on"], clocks["cg_not_before"]["state"]) == ("2026-02-19", "stopped")
    assert (clocks["move_on"]["due_on"], clocks["move_on"]["state"]) == ("2026-04-11", "running")
    [move_on] = charity.get(f"/v1/cases/{case_id}/transitions")
    assert (move_on["kind"], move_on["planned_for"], move_on["status"]) == ("move_on", "2026-04-11", "planned")
    assert move_on["origin"] == "positive CG decision"
    assert planned["data"] == {
        "referral_id": planned["subject"],
        "case_id": case_id,
        "provider_id": charity.provider_id,
        "transition_id": move_on["id"],
        "kind": "move_on",
        "status": "planned",
        "planned_for": "2026-04-11",
        "date_basis": "exact",
        "receiving_agency": None,
        "receiving_provider_id": None,
        "local_authority_org_id": None,  # an adult's case
    }
    kinds = [t["kind"] for t in charity.get(f"/v1/cases/{case_id}")["timeline"]]
    assert kinds.count("nrm_decision_recorded") == 2 and "transition_planned" in kinds


def test_a_positive_rg_dated_60_days_ago_reaches_its_minimums_and_only_the_overdue_rg_decision_breaches(
    make_instance,
):
    charity = make_instance()
    loops = charity.loops()
    watch = tap(charity, "clock.due_soon", "clock.breached")
    with running(loops["consumer"]), running(loops["relay"]):
        case_id = open_case_over_the_broker(charity, disclosed(referred=date(2025, 12, 22)))
        schedulers = [charity.scheduler(), charity.scheduler()]
        for scheduler in schedulers:
            scheduler.tick()  # the RG decision, expected by 29 December, is overdue: breached once
        sixty_days_ago = (NOW.date() - timedelta(days=60)).isoformat()
        charity.post(
            f"/v1/cases/{case_id}/nrm/decisions", {"stage": "rg", "outcome": "positive", "decided_on": sixty_days_ago}
        )
        for scheduler in (*schedulers, charity.scheduler()):
            scheduler.tick()
        sent = events(charity.amqp_url, watch, 2, timeout=3)
    assert [(e["type"], e["data"]["kind"], e["data"]["status"]) for e in sent] == [
        ("clock.breached", "rg_decision", "breached")
    ]
    clocks = {c["kind"]: c for c in charity.get(f"/v1/cases/{case_id}/nrm")["clocks"]}
    assert {k: (c["nature"], c["state"]) for k, c in clocks.items()} == {
        "rg_decision": ("deadline", "stopped"),
        "recovery_period": ("minimum", "reached"),
        "cg_not_before": ("minimum", "reached"),
    }
    assert clocks["rg_decision"]["breached_fired_at"] and clocks["recovery_period"]["breached_fired_at"] is None
    with charity.sessions.begin() as session:
        fired = session.scalars(select(Outbox.type).where(Outbox.type.like("clock.%"))).all()
    assert fired == ["clock.breached"]


def test_in_scotland_the_recovery_period_is_90_days(make_instance):
    charity = make_instance()
    loops = charity.loops()
    with running(loops["consumer"]), running(loops["relay"]):
        case_id = open_case_over_the_broker(charity, disclosed(region="scotland", referred=date(2026, 2, 1)))
    charity.post(
        f"/v1/cases/{case_id}/nrm/decisions", {"stage": "rg", "outcome": "positive", "decided_on": "2026-02-06"}
    )
    clocks = {c["kind"]: c for c in charity.get(f"/v1/cases/{case_id}/nrm")["clocks"]}
    assert clocks["recovery_period"]["due_on"] == "2026-05-07"


def test_a_child_referred_at_17_years_10_months_gets_a_turning_18_transition_whose_notice_fires_once(make_instance):
    charity = make_instance()
    referred = NOW.date() - timedelta(days=3)
    dob = date_of_birth_for_age(17, 10, today=referred)
    loops = charity.loops()
    watch = tap(charity, "clock.*", "transition.*")
    with running(loops["consumer"]), running(loops["relay"]):
        case_id = open_case_over_the_broker(charity, disclosed(child=True, dob=dob, referred=referred))
        [turning_18] = charity.get(f"/v1/cases/{case_id}/transitions")
        assert turning_18["kind"] == "turning_18" and turning_18["date_basis"] == "exact"
        birthday = date.fromisoformat(dob).replace(year=date.fromisoformat(dob).year + 18)
        assert turning_18["planned_for"] == birthday.isoformat()
        assert "consent_reobtained" in turning_18["checklist"]
        [planned] = events(charity.amqp_url, watch, 1)
        assert planned["type"] == "transition.planned"

        # Two schedulers tick at once, again, and a third starts after a "restart": the notice fires once.
        first, second = charity.scheduler(), charity.scheduler()
        ticks = [threading.Thread(target=s.tick) for s in (first, second, first, second)]
        for thread in ticks:
            thread.start()
        for thread in ticks:
            thread.join()
        charity.scheduler().tick()
        fired = events(charity.amqp_url, watch, 3, timeout=3)
        # Each clock due soon fires once: turning 18 (90 days' notice), and the RG decision expected by 6 March.
        assert sorted((e["type"], e["data"]["kind"]) for e in fired) == [
            ("clock.due_soon", "rg_decision"),
            ("clock.due_soon", "turning_18"),
        ]
        [notice] = [e for e in fired if e["data"]["kind"] == "turning_18"]
        assert (notice["data"]["due_on"], notice["data"]["transition_id"]) == (
            turning_18["planned_for"][:7], turning_18["id"]
        )  # fmt: skip
        # An 18th birthday is a date of birth by another name: only its month leaves the service.
        assert dob not in json.dumps(notice) and turning_18["planned_for"] not in json.dumps(notice)

        # The birthday passes with the transition not completed: breached and missed, each once.
        charity.clock.at = datetime.combine(birthday + timedelta(days=1), NOW.timetz())
        for scheduler in (first, second, charity.scheduler()):
            scheduler.tick()
        later = events(charity.amqp_url, watch, 4, timeout=3)
    assert sorted((e["type"], e["data"]["kind"]) for e in later) == [
        ("clock.breached", "rg_decision"),
        ("clock.breached", "turning_18"),
        ("transition.missed", "turning_18"),
    ]
    with charity.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(Outbox).where(Outbox.type == "clock.due_soon")) == 2
        assert session.get(Transition, turning_18["id"]).status == "missed"


def test_a_missed_transition_is_flagged_and_published_once(make_instance):
    charity = make_instance()
    loops = charity.loops()
    watch = tap(charity, "transition.missed")
    with running(loops["consumer"]), running(loops["relay"]):
        case_id = open_case_over_the_broker(charity, disclosed(referred=date(2026, 2, 20)))
        relocation = charity.post(
            f"/v1/cases/{case_id}/transitions",
            {"kind": "relocation", "planned_for": "2026-03-10", "receiving_agency": "leeds-city-council"},
        )
        schedulers = [charity.scheduler() for _ in range(3)]
        schedulers[0].tick()
        assert charity.get(f"/v1/cases/{case_id}/transitions")[0]["status"] == "planned"
        charity.clock.advance(days=9)  # 11 March: the day after the planned date
        barrier = threading.Barrier(3)

        def tick(scheduler):
            barrier.wait()
            scheduler.tick()

        threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        charity.scheduler().tick()  # after a restart
        published = events(charity.amqp_url, watch, 2, timeout=3)
    assert len(published) == 1
    assert published[0]["data"]["transition_id"] == relocation["id"]
    assert published[0]["data"]["receiving_agency"] == "leeds-city-council"
    [flagged] = charity.get(f"/v1/cases/{case_id}/transitions")
    assert flagged["status"] == "missed" and flagged["missed_at"]
    timeline = charity.get(f"/v1/cases/{case_id}")["timeline"]
    assert [t["actor"] for t in timeline if t["kind"] == "transition_missed"] == ["scheduler"]
    case = charity.get(f"/v1/cases/{case_id}")
    assert case["advocate"]["name"] == "Advocate Synthetic-Ve"  # a relocation keeps the advocate


def test_many_clocks_fire_exactly_once_with_two_schedulers_racing(make_instance):
    charity = make_instance()
    loops = charity.loops()
    with running(loops["consumer"]), running(loops["relay"]):
        case_id = open_case_over_the_broker(charity, disclosed(referred=date(2026, 2, 1)))
    with charity.sessions.begin() as session:
        template = session.scalars(select(Clock).where(Clock.case_id == case_id)).first()
        for n in range(60):
            session.add(Clock(id=str(uuid.uuid4()), provider_id=charity.provider_id, case_id=case_id,
                              kind="rg_decision", starts_on=date(2026, 2, 1), due_on=date(2026, 3, 1 + n % 5),
                              notice_on=date(2026, 2, 20), policy_version=template.policy_version, basis="test",
                              created_at=NOW))  # fmt: skip
    schedulers = [charity.scheduler(), charity.scheduler()]
    barrier = threading.Barrier(2)

    def race(scheduler):
        barrier.wait()
        for _ in range(3):
            scheduler.tick()

    threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with charity.sessions.begin() as session:
        count = {
            kind: session.scalar(select(func.count()).select_from(Outbox).where(Outbox.type == kind))
            for kind in ("clock.due_soon", "clock.breached")
        }
        open_clocks = session.scalar(select(func.count()).select_from(Clock).where(Clock.stopped_at.is_(None)))
    # 2 March: the 12 due on 1 March (and the case's own RG clock, due in February) are breached; the other 48
    # are due soon. (Deadlines: an exit period, a support end, would never be breached.)
    assert count == {"clock.due_soon": 48, "clock.breached": 13}
    assert open_clocks == 61


def test_decisions_and_transitions_are_validated_and_scoped_to_the_provider(make_instance, auth_header):
    charity = make_instance()
    loops = charity.loops()
    with running(loops["consumer"]), running(loops["relay"]):
        case_id = open_case_over_the_broker(charity, disclosed(referred=date(2026, 2, 1)))
    bad = charity.client.post(
        f"/v1/cases/{case_id}/nrm/decisions", json={"stage": "xg", "outcome": "maybe"}, headers=charity.headers
    )
    assert bad.status_code == 422 and set(bad.get_json()["errors"]["json"]) == {"stage", "outcome", "decided_on"}
    rg = {"stage": "rg", "outcome": "positive", "decided_on": "2026-02-06"}
    charity.post(f"/v1/cases/{case_id}/nrm/decisions", rg)
    again = charity.client.post(f"/v1/cases/{case_id}/nrm/decisions", json=rg, headers=charity.headers)
    assert again.status_code == 409 and "on_reconsideration" in again.get_json()["message"]
    assert len(charity.get(f"/v1/cases/{case_id}/nrm")["decisions"]) == 1  # one decision, one set of clocks
    handover = charity.client.post(
        f"/v1/cases/{case_id}/transitions", json={"kind": "provider_handover", "planned_for": "2026-04-01"},
        headers=charity.headers,
    )  # fmt: skip
    assert handover.status_code == 422 and "receiving_provider_id" in handover.get_json()["message"]
    move = charity.post(f"/v1/cases/{case_id}/transitions", {"kind": "relocation", "planned_for": "2026-04-01"})
    early = charity.client.post(f"/v1/cases/{case_id}/transitions/{move['id']}/completion", headers=charity.headers)
    assert early.status_code == 409 and "receiving_agency_informed" in early.get_json()["message"]
    other = auth_header("charity-z", "provider", SCOPES)
    assert charity.client.get(f"/v1/cases/{case_id}/nrm", headers=other).status_code == 403
    assert charity.client.get(f"/v1/cases/{uuid.uuid4()}/nrm", headers=charity.headers).status_code == 404
    with charity.sessions.begin() as session:
        assert session.get(Case, case_id).status == "open"
