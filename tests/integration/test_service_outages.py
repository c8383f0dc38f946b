"""Issue 11, "Done when": a 30 s database outage of each service, and a 30 s outage of intake's API while
advocacy fetches referrals from it, leave no referral stalled and no referral's events reordered, and the
affected worker's `/readyz` says which dependency is down.

The platform runs as processes on a private RabbitMQ node with fresh databases, each reached through a proxy
that can be cut (bench/chaos_stack.py, started once for the module). Each test keeps referrals arriving
(RATE a second) before, during and after its fault (advocacy's and notifications' database outages overlap,
STAGGER_S apart, each checked on its own worker), then follows every accepted referral to its end:

- complete within COMPLETION_BOUND s of the fault's end: allocated at intake, exactly one case at advocacy
  holding the disclosed referral, its `referral.allocated` webhook received (none stalled);
- nothing parked;
- in order: the agency's webhooks for each referral arrive in the order their events happened (the events'
  `timestamp`), and advocacy's timeline of each offer begins received, accepted, disclosed, opened, once each;
- intake and advocacy agree: the case intake names is the one advocacy opened, on the offer intake made, and
  no fact had a second effect (bench/chaos_report.py's duplicate effects).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select, text

from services.advocacy.models import Case, DataKey
from shared import crypto, sealed
from shared.auth.tokens import ensure_dev_keys, mint_token
from shared.db import make_engine, make_session_factory
from shared.testing import referral_body
from support.rabbit_node import available, private_node
from support.waiting import wait_until

# The harness `make chaos` runs on (bench/), used here as a library: the repository root is not on pytest's path.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos_report import Findings, duplicate_effects, read  # noqa: E402
from bench.chaos_stack import AGENCY, PROVIDER, QUEUES, ChaosStack, chaos_stack, wait_http  # noqa: E402
from bench.load import Poster, Sent  # noqa: E402
from bench.stack import _headers  # noqa: E402

pytestmark = pytest.mark.skipif(available() is not None, reason=f"no private RabbitMQ node: {available()}")

OUTAGE_S = 30.0
RATE = 1.5  # referrals a second
BEFORE_S = 4.0  # arrivals before the fault
AFTER_S = 6.0  # arrivals after it
COMPLETION_BOUND = 90.0  # seconds after the fault's end for every accepted referral to complete
STAGGER_S = 10.0  # overlapping outages begin this far apart
READYZ_WITHIN = 25.0  # the affected worker's /readyz must name the dependency within this, during the outage
# How advocacy's timeline of each offer begins, each once (the case's clocks follow).
TIMELINE = ["offer_received", "offer_accepted", "referral_disclosed", "case_opened"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[ChaosStack]:
    work = tmp_path_factory.mktemp("outages")
    keys = ensure_dev_keys(work / "keys")[:2]
    private_key = keys[0].read_text()

    def token(org: str, kind: str, scopes: str) -> str:
        return mint_token(private_key, org=org, org_kind=kind, scopes=scopes.split(), issuer="referrals-dev",
                          audience="referrals")  # fmt: skip

    database = os.environ["TEST_DATABASE_URL"]
    with private_node("outages") as node, chaos_stack(node, database, keys, token, work, referrals=400) as running:
        yield running


# --- arrivals ------------------------------------------------------------------------------------------


class Arrivals:
    """POST /v1/referrals at `rate` a second on a thread until stopped; only a 201 is an accepted referral."""

    def __init__(self, stack: ChaosStack, rate: float = RATE):
        self.poster = Poster(stack.urls["intake"], _headers(stack.token, *AGENCY))
        self.rate = rate
        self.sent: list[Sent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Arrivals:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=40)

    def _run(self) -> None:
        start = time.monotonic()
        i = 0
        while not self._stop.wait(max(0.0, start + i / self.rate - time.monotonic())):
            self.post()
            i += 1

    def post(self) -> Sent:
        sent = Sent(due=time.monotonic())
        self.poster.post(json.dumps(referral_body()).encode(), sent)
        self.sent.append(sent)
        return sent

    def accepted(self) -> list[str]:
        return [s.referral_id for s in self.sent if s.ok and s.referral_id]

    def refused(self) -> int:
        return sum(1 for s in self.sent if not s.ok)


# --- the fault's window and the worker's /readyz -------------------------------------------------------


def readyz(stack: ChaosStack, worker: str) -> tuple[int, dict]:
    port = stack.managed[worker].port
    try:
        response = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
    except requests.RequestException as exc:
        return 0, {"error": exc.__class__.__name__}
    return response.status_code, response.json()


def names_down(stack: ChaosStack, worker: str, dependency: str) -> dict | None:
    """The 503 /readyz body of `worker` while it names `dependency` down, else None."""
    status, body = readyz(stack, worker)
    return body if status == 503 and dependency in body.get("down", {}) else None


def readyz_during(stack: ChaosStack, worker: str, dependency: str) -> dict | None:
    """Poll `worker`'s /readyz until it answers 503 naming `dependency` (None if it does not in READYZ_WITHIN)."""
    with contextlib.suppress(AssertionError):
        return wait_until(lambda: names_down(stack, worker, dependency), timeout=READYZ_WITHIN)
    return None


def until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


# --- what the databases, the broker and the receiver say -------------------------------------------------


def _rows(url: str, sql: str, **params: Any) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql), params))
    finally:
        engine.dispose()


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def wait_complete(stack: ChaosStack, accepted: list[str]) -> Findings:
    """Every accepted referral complete within COMPLETION_BOUND s, else a failure saying where each stands."""

    def complete() -> Findings | None:
        found = read(stack, accepted, broker=False)
        if not found.lost() and not found.stalled():
            return found
        time.sleep(1.0)
        return None

    try:
        wait_until(complete, timeout=COMPLETION_BOUND)
    except AssertionError:
        found = read(stack, accepted)
        pytest.fail(f"not complete {COMPLETION_BOUND:.0f} s after the fault:\n{stall_report(stack, found)}")
    return read(stack, accepted)  # with the broker's queues


def stall_report(stack: ChaosStack, found: Findings) -> str:
    lines = [f"lost (accepted, unknown to intake): {found.lost()}"]
    for referral_id in found.stalled():
        lines.append(
            f"stalled {referral_id}: intake {found.statuses.get(referral_id)}, advocacy cases/with referral "
            f"{found.cases.get(referral_id, (0, 0))}, referral.allocated webhook {referral_id in found.notified}"
        )
    lines.append(f"parked: { {q: p for q, p in found.parked.items() if p} }; waiting: {found.waiting}")
    lines.append(f"outbox unsent: {found.outbox_pending}")
    lines.append(worker_log_lines(stack))
    return "\n".join(lines)


def worker_log_lines(stack: ChaosStack, limit: int = 40) -> str:
    """The workers' (and APIs') WARNING and ERROR lines, the last `limit` of each log."""
    out = []
    for log in sorted(stack.platform.workdir.glob("*.log")):
        lines = [line for line in log.read_text(errors="replace").splitlines() if "WARNING" in line or "ERROR" in line]
        if lines:
            out.append(f"--- {log.name} ({len(lines)} WARNING/ERROR lines)")
            out.extend(line[:400] for line in lines[-limit:])
    return "\n".join(out)


DELIVERIES = (
    "SELECT webhook_id, referral_id, event_type, payload, status, attempts, created_at, delivered_at "
    "FROM deliveries WHERE referral_id IS NOT NULL"
)


def webhook_order_problems(stack: ChaosStack, accepted: list[str]) -> list[str]:
    """Referrals whose webhooks arrived out of the order of their events (each webhook by its first arrival;
    a resend under the same webhook-id is the same webhook), or without their referral.received."""
    rows = _rows(stack.databases["notifications"], DELIVERIES)
    occurred = {r.webhook_id: _when(json.loads(r.payload)["timestamp"]) for r in rows}
    rows_of: dict[str, list] = defaultdict(list)
    for r in rows:
        rows_of[r.referral_id].append(r)
    with stack.receiver.changed:
        hooks = list(stack.receiver.hooks)
    arrived: dict[str, list[tuple[str, str]]] = defaultdict(list)  # referral -> [(type, webhook id)] in order
    seen: set[str] = set()
    for hook in hooks:
        if hook.webhook_id not in seen:
            seen.add(hook.webhook_id)
            arrived[hook.referral_id].append((hook.type, hook.webhook_id))
    problems = []
    for referral_id in accepted:
        got = arrived.get(referral_id, [])
        types = [t for t, _ in got]
        times = [occurred[w] for _, w in got if w in occurred]
        in_order = len(times) == len(got) and times == sorted(times)
        if types != ["referral.received", "referral.allocated"] or not in_order:
            problems.append(f"{referral_id}: webhooks arrived as {types}; {_deliveries(rows_of[referral_id])}")
    return problems


def _deliveries(rows: list) -> str:
    """A referral's deliveries rows as a failure message shows them: what was queued when, and sent when."""
    return "; ".join(
        f"{r.event_type} event at {json.loads(r.payload)['timestamp']}, queued {r.created_at}, "
        f"{r.status} {r.delivered_at} after {r.attempts} attempt(s)"
        for r in sorted(rows, key=lambda r: r.created_at)
    )


INTAKE_REFERRALS = "SELECT id, external_reference, status, provider_id, case_id FROM referrals WHERE id = ANY(:ids)"
INTAKE_OFFERS = "SELECT id, referral_id, status FROM offers WHERE referral_id = ANY(:ids)"
ADVOCACY_CASES = "SELECT id, referral_id, offer_id, status FROM cases WHERE referral_id = ANY(:ids)"
ADVOCACY_TIMELINES = (
    "SELECT t.kind, o.referral_id FROM timeline_entries t JOIN offers o ON o.id = t.offer_id "
    "WHERE o.referral_id = ANY(:ids) ORDER BY t.seq"
)


def disclosed_copies(url: str, ids: list[str]) -> dict[str, dict | None]:
    """advocacy's copy of each referral, opened as the service opens it (sealed at rest under dev's KEK)."""
    engine = make_engine(url, instrument=False)
    try:
        sessions = sealed.enable(make_session_factory(engine), DataKey, crypto.keks_from_env({}, production=False))
        with sessions() as session:
            return {c.referral_id: c.referral for c in session.scalars(select(Case).where(Case.referral_id.in_(ids)))}
    finally:
        engine.dispose()


def disagreements(stack: ChaosStack, accepted: list[str]) -> list[str]:
    """Where intake's and advocacy's records of a referral differ, or advocacy's timeline of it is out of order."""
    intake_db, advocacy_db, ids = stack.databases["intake"], stack.databases["advocacy"], list(accepted)
    intake = {r.id: r for r in _rows(intake_db, INTAKE_REFERRALS, ids=ids)}
    offers: dict[str, list] = defaultdict(list)
    for r in _rows(intake_db, INTAKE_OFFERS, ids=ids):
        offers[r.referral_id].append(r)
    cases = {r.referral_id: r for r in _rows(advocacy_db, ADVOCACY_CASES, ids=ids)}
    copies = disclosed_copies(advocacy_db, ids)
    timelines: dict[str, list[str]] = defaultdict(list)
    for r in _rows(advocacy_db, ADVOCACY_TIMELINES, ids=ids):
        timelines[r.referral_id].append(r.kind)
    problems = []
    for referral_id in accepted:
        referral, case = intake.get(referral_id), cases.get(referral_id)
        if referral is None or case is None:
            problems.append(f"{referral_id}: intake {referral}, advocacy {case}")
            continue
        accepted_offers = [o.id for o in offers[referral_id] if o.status == "accepted"]
        disclosed = copies.get(referral_id)
        agree = (
            referral.status == "allocated"
            and referral.provider_id == PROVIDER
            and referral.case_id == case.id
            and case.status == "open"
            and accepted_offers == [case.offer_id]
            and isinstance(disclosed, dict)
            and disclosed.get("id") == referral_id
            and disclosed.get("external_reference") == referral.external_reference
            and (disclosed.get("allocation") or {}).get("case_id") == case.id
        )
        if not agree:
            problems.append(
                f"{referral_id}: intake {referral.status} {referral.provider_id} case {referral.case_id} offers "
                f"{[(o.id, o.status) for o in offers[referral_id]]}; advocacy case {case.id} {case.status} on "
                f"offer {case.offer_id}, disclosed {None if disclosed is None else disclosed.get('id')}"
            )
        timeline = timelines[referral_id]  # then the case's own entries (its clocks), none of these again
        if timeline[: len(TIMELINE)] != TIMELINE or set(timeline[len(TIMELINE) :]) & set(TIMELINE):
            problems.append(f"{referral_id}: advocacy's timeline reads {timeline}")
    return problems


def assert_none_stalled_nor_reordered(stack: ChaosStack, arrivals: Arrivals) -> None:
    accepted = arrivals.accepted()
    assert len(accepted) >= 10, f"only {len(accepted)} referrals accepted ({arrivals.refused()} refused)"
    found = wait_complete(stack, accepted)
    parked = {q: p for q, p in found.parked.items() if p}
    assert not parked, f"parked: {parked}\n{worker_log_lines(stack)}"
    assert set(found.parked) == set(QUEUES.values()), f"parking queues not read: {found.parked}"
    doubled = duplicate_effects(found, stack)
    assert not sum(doubled.values()), f"duplicate effects: {doubled}"
    reordered = webhook_order_problems(stack, accepted)
    assert not reordered, "webhooks out of order:\n" + "\n".join(reordered[:20])
    differ = disagreements(stack, accepted)
    assert not differ, "intake and advocacy disagree:\n" + "\n".join(differ[:20])


def database_outages(stack: ChaosStack, services: tuple[str, ...]) -> None:
    """Referrals arriving while each of `services`' databases refuses connections for OUTAGE_S, the next
    STAGGER_S after the one before; each worker's /readyz names the database during its own outage; then none
    stalled nor reordered."""
    outages: dict[str, tuple[float, dict | None]] = {}  # service -> (when its outage began, its /readyz body)
    closed: list[str] = []
    with Arrivals(stack) as arrivals:
        time.sleep(BEFORE_S)
        first = time.monotonic()
        try:
            for i, service in enumerate(services):
                until(first + i * STAGGER_S)
                started = time.monotonic()
                stack.proxies[service].close()
                closed.append(service)
                outages[service] = (started, readyz_during(stack, f"{service}-worker", "database"))
            for service, (started, _) in outages.items():
                until(started + OUTAGE_S)
                closed.remove(service)
                stack.proxies[service].open()
        finally:
            for service in closed:  # a failure above: open what it left closed
                stack.proxies[service].open()
        time.sleep(AFTER_S)
    for service, (_, seen) in outages.items():
        now = readyz(stack, f"{service}-worker")
        assert seen is not None, f"{service}-worker's /readyz never named the database during its outage: {now}"
    assert_none_stalled_nor_reordered(stack, arrivals)
    for service, (started, _) in outages.items():
        if service != "intake":  # intake's API shares the database: nothing is accepted while it is down
            during = [s for s in arrivals.sent if s.ok and started < s.answered < started + OUTAGE_S]
            assert during, f"no referral accepted during {service}'s outage"


# --- the tests -----------------------------------------------------------------------------------------


# Advocacy's and notifications' outages overlap (no worker depends on the other's database, and intake keeps
# accepting): advocacy's backlog of answers reaches notifications while its database is still down, so both
# kinds of webhook are held there together. Intake's outage is alone: nothing is accepted while it lasts.
@pytest.mark.parametrize("services", [("intake",), ("advocacy", "notifications")], ids="+".join)
def test_a_30_s_database_outage_stalls_and_reorders_nothing_and_the_worker_says_the_database_is_down(stack, services):
    database_outages(stack, services)


@contextlib.contextmanager
def paused(stack: ChaosStack, name: str) -> Iterator[None]:
    """`name`'s process stopped (SIGSTOP) meanwhile: it takes nothing until it is continued."""
    process = stack.managed[name].process
    assert process is not None
    process.popen.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.popen.send_signal(signal.SIGCONT)


def test_a_30_s_intake_api_outage_while_advocacy_fetches_referrals_stalls_and_reorders_nothing(stack):
    """Referrals accepted just before intake's API stops reach advocacy's allocation.confirmed while it is down
    (advocacy's worker is paused until then, so this is certain, not a race): advocacy holds the message, its
    /readyz names intake, and the case opens once intake is back."""
    with Arrivals(stack) as arrivals:
        time.sleep(BEFORE_S)
        with paused(stack, "advocacy-worker"):
            held = [arrivals.post() for _ in range(3)]
            started = time.monotonic()
            stack.kill("intake-api", signal.SIGTERM)  # returns once the API has exited
            down = time.monotonic()
        try:
            seen = readyz_during(stack, "advocacy-worker", "intake")
            until(started + OUTAGE_S)
        finally:
            stack.launch("intake-api")
            back = wait_http(stack.urls["intake"], stack)
        time.sleep(AFTER_S)
    assert back is not None, "intake's API did not come back"
    assert all(s.ok for s in held), f"the referrals sent just before the outage: {[s.error for s in held]}"
    assert seen is not None, f"advocacy-worker's /readyz never named intake: {readyz(stack, 'advocacy-worker')}"
    assert_none_stalled_nor_reordered(stack, arrivals)
    assert not any(s.ok for s in arrivals.sent if down < s.due < started + OUTAGE_S - 1), (
        "a referral was accepted while intake's API was down"
    )
