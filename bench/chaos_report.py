"""What `make chaos` found: every accepted referral followed to its end, read from the services' own
databases (directly, not through the proxies), the broker's queues and the agency's receiver.

A referral is complete when intake has it allocated, advocacy has exactly one case for it holding the
disclosed referral, and the agency got its `referral.allocated` webhook. Accepted (201) but unknown to intake
is **lost**; known but not complete within the bound after the last fault is **stalled**.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

import pika
from sqlalchemy import create_engine, text

from bench.chaos_faults import POISON_PREFIX, Fault
from bench.chaos_stack import QUEUES, ChaosStack


@dataclass
class Findings:
    accepted: list[str]
    statuses: dict[str, str] = field(default_factory=dict)  # intake's status of each referral it has
    cases: dict[str, tuple[int, int]] = field(default_factory=dict)  # referral -> (cases, with the referral)
    notified: dict[str, float] = field(default_factory=dict)  # referral -> first allocated webhook
    delivery_rows: Counter = field(default_factory=Counter)  # (referral, event type) -> deliveries rows
    failed_deliveries: int = 0
    outbox_pending: dict[str, int] = field(default_factory=dict)
    parked: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # queue -> (message id, reason)
    waiting: dict[str, int] = field(default_factory=dict)  # messages still in main and retry queues

    def complete(self, referral_id: str) -> bool:
        return (
            self.statuses.get(referral_id) == "allocated"
            and self.cases.get(referral_id) == (1, 1)
            and referral_id in self.notified
        )

    def lost(self) -> list[str]:
        return [r for r in self.accepted if r not in self.statuses]

    def stalled(self) -> list[str]:
        return [r for r in self.accepted if r in self.statuses and not self.complete(r)]

    def parked_other(self) -> list[tuple[str, str]]:
        return [(m, why) for found in self.parked.values() for m, why in found if not m.startswith(POISON_PREFIX)]

    def parked_poison(self) -> set[str]:
        return {m for found in self.parked.values() for m, _ in found if m.startswith(POISON_PREFIX)}


def _rows(url: str, sql: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)))
    finally:
        engine.dispose()


def read(stack: ChaosStack, accepted: list[str], *, broker: bool = True) -> Findings:
    found = Findings(accepted)
    db = stack.databases
    found.statuses = {r.id: r.status for r in _rows(db["intake"], "SELECT id, status FROM referrals")}
    sql = "SELECT referral_id, count(*), count(referral) FROM cases GROUP BY referral_id"
    found.cases = {r[0]: (int(r[1]), int(r[2])) for r in _rows(db["advocacy"], sql)}
    found.notified = stack.receiver.first_arrival("referral.allocated")
    sql = "SELECT referral_id, event_type, status FROM deliveries WHERE referral_id IS NOT NULL"
    for row in _rows(db["notifications"], sql):
        found.delivery_rows[(row.referral_id, row.event_type)] += 1
        found.failed_deliveries += row.status == "failed"
    for service in ("intake", "advocacy"):
        found.outbox_pending[service] = int(
            _rows(db[service], "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0]
        )
    if broker:
        _read_queues(stack, found)
    return found


def _read_queues(stack: ChaosStack, found: Findings) -> None:
    """Parked messages (taken unacked and given back when the connection closes) and what still waits."""
    for url in stack.broker_urls():
        try:
            with pika.BlockingConnection(pika.URLParameters(url)) as connection:
                channel = connection.channel()
                for queue in QUEUES.values():
                    parked = []
                    while (got := channel.basic_get(f"{queue}.parking", auto_ack=False))[0] is not None:
                        props = got[1]
                        reason = (props.headers or {}).get("x-parked-reason", "")
                        parked.append((props.message_id or "", str(reason)))
                    found.parked[queue] = parked
                    for name in (queue, f"{queue}.retry"):
                        found.waiting[name] = channel.queue_declare(name, passive=True).method.message_count
            return
        except pika.exceptions.AMQPConnectionError:
            continue


def duplicate_effects(found: Findings, stack: ChaosStack) -> dict[str, int]:
    return {
        "referrals with more than one case": sum(1 for n, _ in found.cases.values() if n > 1),
        "events queued as two webhooks": sum(1 for n in found.delivery_rows.values() if n > 1),
        "facts told under two webhook-ids": stack.receiver.duplicate_effects(),
    }


def fault_rows(faults: list[Fault], sent: list, found: Findings, window: float = 10.0) -> list[dict]:
    """Per fault: its length, the workers' recovery, and how long until every referral accepted in the `window`
    seconds before it or during it was complete ("never" if one is not)."""
    rows = []
    for fault in faults:
        during = [s.referral_id for s in sent if s.ok and fault.started - window <= s.answered <= fault.ended]
        if not during:
            caught_up = "-"
        elif not all(found.complete(r) for r in during):
            caught_up = "never"
        else:
            caught_up = f"{max(0.0, max(found.notified[r] for r in during) - fault.ended):.1f}"
        rows.append(
            {
                "fault": fault.name,
                "lasted_s": round(fault.ended - fault.started, 1),
                "workers_ready_s": None if fault.ready_s is None else round(fault.ready_s, 1),
                "broker_fault": fault.broker,
                "in_flight": len(during),
                "caught_up_s": caught_up,
                "note": fault.note,
            }
        )
    return rows


def log_noise(stack: ChaosStack) -> dict[str, int]:
    """ERROR lines and tracebacks in the workers' logs (the issue wants one WARNING per reconnect attempt)."""
    counts = {"ERROR lines": 0, "tracebacks": 0, "parked-message ERRORs": 0}
    for log in stack.platform.workdir.glob("*-worker.*.log"):
        with contextlib.suppress(OSError):
            for line in log.read_text(errors="replace").splitlines():
                if "Traceback" in line:
                    counts["tracebacks"] += 1
                if "ERROR" in line:
                    counts["ERROR lines"] += 1
                    counts["parked-message ERRORs"] += "message parked" in line
    return counts
