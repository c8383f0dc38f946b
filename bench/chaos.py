"""`make chaos`: referrals arrive at a steady rate while the platform is broken, one fault at a time; then
every accepted referral is followed to its end (bench/chaos_report.py).

    make chaos                 (or: .venv/bin/python -m bench.chaos [--short] [--cluster 3])
    make chaos CLUSTER=3       the same on a 3-node cluster of private nodes, killing the node leading the queues

The broker is a private RabbitMQ node (or cluster) started here, never the shared one; the databases are
fresh ones on TEST_DATABASE_URL's PostgreSQL, each reached through a proxy the run can cut, and dropped
afterwards (bench/chaos_stack.py). Faults (bench/chaos_faults.py): broker restarts (graceful and SIGKILL),
each worker SIGKILLed and restarted, PostgreSQL backends of this run's databases terminated, each service's
database refusing connections for 15-30 s, intake's API down for 30 s, the agency's receiver failing for
longer than the compressed webhook schedule's first step, and poison messages.

Exits 1 on any referral lost or stalled, any duplicate effect, a parked message other than the poison, or a
worker not ready within READY_BOUND_S (--ready-bound) of a broker fault being over (issue 11's target is 2 s,
READY_TARGET_S, printed next to each broker fault's figure; the bound is looser because this 2-core machine is
shared and noisy); 2 if the platform could not be started. Bounded: a fixed plan, a rate, a drain bound; under
10 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench import chaos_faults as f  # noqa: E402
from bench.chaos_report import Findings, duplicate_effects, fault_rows, log_noise, read  # noqa: E402
from bench.chaos_stack import AGENCY, SERVICES, ChaosStack, _headers, chaos_stack  # noqa: E402
from bench.load import Poster, Sent  # noqa: E402
from bench.stack import local_setup  # noqa: E402
from shared.testing import referral_body  # noqa: E402
from support.rabbit_node import available, private_cluster, private_node  # noqa: E402

# Short enough to be exhausted by a long outage, long enough that a receiver down for 20 s outlives its first
# steps: 2 s, then 4, 8, 16, 32, 64 (about two minutes in all).
WEBHOOK_RETRY_SCHEDULE = "2,4,8,16,32,64"
BUDGET_S = 540  # no fault starts after this long; with the drain bound the run stays under 10 minutes
# Issue 11: after a broker restart (or a cluster node's failure) every loop is back within 2 s of the broker
# being ready. The run fails only past READY_BOUND_S, on a shared machine where a process may wait for a core.
READY_TARGET_S = 2.0
READY_BOUND_S = 10.0

Plan = list[tuple[str, Callable[[ChaosStack, f.Fault], None]]]


def full_plan(poison: set[str]) -> Plan:
    plan: Plan = [("broker restart (graceful)", partial(f.broker_restart, kill=False))]
    plan += [(f"SIGKILL {s} worker", partial(f.worker_kill, service=s)) for s in SERVICES]
    plan += [("terminate PostgreSQL backends", f.terminate_backends)]
    for service, seconds in zip(SERVICES, (20, 30, 15), strict=True):
        plan += [(f"{service} database refuses {seconds} s", partial(f.database_cut, service=service, seconds=seconds))]
    plan += [
        ("terminate PostgreSQL backends", f.terminate_backends),
        ("intake API down 30 s", partial(f.intake_api_down, seconds=30)),
        ("receiver fails 20 s", partial(f.receiver_fails, seconds=20)),
        ("poison messages", partial(f.poison, sent=poison)),
        ("broker SIGKILL", partial(f.broker_restart, kill=True)),
    ]
    return plan


def short_plan(poison: set[str]) -> Plan:
    return [
        ("SIGKILL advocacy worker", partial(f.worker_kill, service="advocacy")),
        ("terminate PostgreSQL backends", f.terminate_backends),
        ("notifications database refuses 15 s", partial(f.database_cut, service="notifications", seconds=15)),
        ("poison messages", partial(f.poison, sent=poison)),
        ("broker SIGKILL", partial(f.broker_restart, kill=True)),
    ]


class Load:
    """POST /v1/referrals at `rate` per second on the clock, on a few threads, until stopped."""

    def __init__(self, poster: Poster, rate: float, threads: int = 4):
        self.poster, self.rate, self.sent = poster, rate, []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._start = time.monotonic()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                i, self._next = self._next, self._next + 1
                sent = Sent(due=self._start + i / self.rate)
                self.sent.append(sent)
            if self._stop.wait(max(0.0, sent.due - time.monotonic())):
                self.sent.remove(sent)
                return
            self.poster.post(json.dumps(referral_body(seed=i)).encode(), sent)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)


def run(stack: ChaosStack, plan: Plan, rate: float, bound: float, started: float, ready_bound: float) -> dict:
    load = Load(Poster(stack.urls["intake"], _headers(stack.token, *AGENCY)), rate).start()
    faults: list[f.Fault] = []
    time.sleep(5)
    for name, inject in plan:
        if time.monotonic() - started > BUDGET_S:
            print(f"  (budget spent: {name} and what follows skipped)", flush=True)
            break
        fault = f.Fault(name, started=time.monotonic())
        inject(stack, fault)
        faults.append(fault)
        ready = "-" if fault.ready_s is None else f"{fault.ready_s:.1f} s"
        if fault.broker:
            ready = f"{'never' if fault.ready_s is None else ready} (target {READY_TARGET_S:g} s)"
        print(
            f"  {time.monotonic() - started:6.1f} s  {name}: over, workers ready after {ready} {fault.note}", flush=True
        )
        time.sleep(8)
    load.stop()
    accepted = [s.referral_id for s in load.sent if s.ok]
    last = faults[-1].ended if faults else time.monotonic()
    print(
        f"  {len(accepted)} accepted; waiting up to {bound:.0f} s after the last fault for each to complete", flush=True
    )
    found = read(stack, accepted, broker=False)
    while found.stalled() and time.monotonic() - last < bound:
        time.sleep(2)
        found = read(stack, accepted, broker=False)
    found = read(stack, accepted)
    return summarise(stack, load.sent, found, faults, time.monotonic() - last, ready_bound)


def broker_recovery(faults: list[f.Fault], ready_bound: float) -> str:
    """The workers' readiness after each broker fault against issue 11's 2 s, for the summary table."""
    figures = ["never" if x.ready_s is None else f"{x.ready_s:.1f}" for x in faults if x.broker]
    if not figures:
        return "-"
    over = sum(1 for x in faults if x.broker and (x.ready_s is None or x.ready_s > READY_TARGET_S))
    return (
        f"{', '.join(figures)} s (target {READY_TARGET_S:g} s: {over} over it; the run fails above {ready_bound:g} s)"
    )


def summarise(
    stack: ChaosStack, sent: list[Sent], found: Findings, faults: list[f.Fault], waited: float, ready_bound: float
) -> dict:
    stalled = found.stalled()
    ok = [s.referral_id for s in sent if s.ok]
    return {
        "sent": len(sent),
        "accepted": len(ok),
        "refused": Counter_of(s.error for s in sent if not s.ok),
        "allocated": sum(1 for r in ok if found.statuses.get(r) == "allocated"),
        "exactly one case": sum(1 for r in ok if found.cases.get(r, (0, 0))[0] == 1),
        "case holds the referral": sum(1 for r in ok if found.cases.get(r, (0, 0))[1] == 1),
        "notified": sum(1 for r in ok if r in found.notified),
        "lost": len(found.lost()),
        "stalled": len(stalled),
        "stalled at intake status": Counter_of(found.statuses[r] for r in stalled),
        "duplicate effects": duplicate_effects(found, stack),
        "same-webhook-id resends": stack.receiver.resends(),
        "webhook attempts refused by the failing receiver": stack.receiver.refused,
        "failed deliveries": found.failed_deliveries,
        "parked poison": f"{len(found.parked_poison())} of {len(stack.poison)}",
        "parked other": len(found.parked_other()),
        "parked other reasons": Counter_of(why.split(":")[0] for _, why in found.parked_other()),
        "still queued": {q: n for q, n in found.waiting.items() if n},
        "outbox unsent": found.outbox_pending,
        "unplanned process exits": {
            m.name: len(m.unplanned_exits) for m in stack.managed.values() if m.unplanned_exits
        },
        "worker log": log_noise(stack),
        "worker /readyz served": stack.health_served(),
        "waited after the last fault (s)": round(waited, 1),
        "workers ready after broker faults": broker_recovery(faults, ready_bound),
        "ready target (s)": READY_TARGET_S,
        "ready bound (s)": ready_bound,
        "faults": fault_rows(faults, sent, found),
    }


def Counter_of(items) -> dict[str, int]:  # noqa: N802 - reads as the Counter it builds, as a plain dict
    out: dict[str, int] = {}
    for item in items:
        out[str(item)] = out.get(str(item), 0) + 1
    return out


def failures(result: dict) -> list[str]:
    found = []
    if result["lost"]:
        found.append(f"{result['lost']} lost")
    if result["stalled"]:
        found.append(f"{result['stalled']} stalled")
    if sum(result["duplicate effects"].values()):
        found.append(f"duplicate effects {result['duplicate effects']}")
    if result["parked other"]:
        found.append(f"{result['parked other']} parked that are not the poison")
    poison_parked, poison_sent = result["parked poison"].split(" of ")
    if poison_parked != poison_sent:
        found.append(f"only {result['parked poison']} poison messages parked")
    if not result["accepted"]:
        found.append("no referral accepted")
    bound = result["ready bound (s)"]
    for row in result["faults"]:
        ready = row["workers_ready_s"]
        if row["broker_fault"] and (ready is None or ready > bound):
            after = "never ready" if ready is None else f"ready only after {ready} s"
            found.append(f"workers {after} after '{row['fault']}' (bound {bound:g} s, target {READY_TARGET_S:g} s)")
    return found


def print_tables(result: dict, title: str) -> None:
    print(f"\n{title}\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key != "faults":
            print(f"  {key:<{width}}  {value}")
    header = f"{'lasted s':>8} {'ready s':>8} {'target s':>8} {'in flight':>9} {'caught up s':>11}"
    print(f"\n  {'fault':<38} {header}  note")
    for row in result["faults"]:
        ready = row["workers_ready_s"]
        target = "-"
        if row["broker_fault"]:
            ready = "never" if ready is None else ready
            target = f"{result['ready target (s)']:g}"
        elif ready is None:
            ready = "-"
        print(f"  {row['fault']:<38} {row['lasted_s']:>8} {ready:>8} {target:>8} {row['in_flight']:>9} "
              f"{row['caught_up_s']:>11}  {row['note']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cluster", type=int, default=0, help="nodes in a private cluster (0: one node)")
    parser.add_argument("--short", action="store_true", help="a few faults, tens of referrals, about a minute")
    parser.add_argument("--rate", type=float, help="referrals per second (default 3, short 1.5)")
    parser.add_argument("--bound", type=float, help="seconds after the last fault for every referral to complete")
    parser.add_argument(
        "--ready-bound", type=float, default=READY_BOUND_S,
        help=f"fail if a worker is not ready this long after a broker fault (default {READY_BOUND_S:g}; "
        f"issue 11's target is {READY_TARGET_S:g})",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the result here (default bench/results/chaos-<time>.json)")
    args = parser.parse_args(argv)
    reason = available()
    if reason:
        print(f"chaos: cannot start a private RabbitMQ node: {reason}", file=sys.stderr)
        return 2
    rate = args.rate or (1.5 if args.short else 3.0)
    bound = args.bound or (60.0 if args.short else 120.0)
    setup = local_setup("chaos-")
    started = time.monotonic()
    poison: set[str] = set()
    plan = short_plan(poison) if args.short else full_plan(poison)
    broker_cm = private_cluster(args.cluster, name="chaos") if args.cluster > 1 else private_node("chaos")
    shape = f"{args.cluster}-node cluster" if args.cluster > 1 else "one private node"
    print(f"chaos: {len(plan)} faults, {rate:g} referrals/s, RabbitMQ {shape}; work dir {setup.work}", flush=True)
    env = {"WEBHOOK_RETRY_SCHEDULE": WEBHOOK_RETRY_SCHEDULE}
    referrals = int(rate * (BUDGET_S + 60))
    with broker_cm as broker, chaos_stack(broker, setup.database, setup.keys, setup.token, setup.work,
                                          referrals=referrals, extra_env=env) as stack:  # fmt: skip
        stack.poison = poison
        print(f"  {time.monotonic() - started:6.1f} s  platform up; referrals arriving", flush=True)
        result = run(stack, plan, rate, bound, started, args.ready_bound)
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "broker": shape, "rate": rate, **result}
    result["total_s"] = round(time.monotonic() - started, 1)
    print_tables(result, f"chaos ({shape}, {rate:g}/s, {result['total_s']} s in all)")
    out = args.json or ROOT / "bench" / "results" / f"chaos-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    problems = failures(result)
    passed = "PASS: nothing lost, stalled or doubled; workers back within the bound after each broker fault"
    print(f"\n{'FAIL: ' + '; '.join(problems) if problems else passed} ({out})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
