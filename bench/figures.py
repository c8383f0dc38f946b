"""Each headline figure of a run beside the issue's target and the same run's ceiling (issue 17's table).

Pure functions of a run's results, so that the terminal table, the JSON and `bench.summary` say the same,
and the tests can check them without a run. Absolute figures drift with this shared machine's load; the
ratio of a figure to a ceiling measured in the same minutes drifts less, so each carries both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RABBITMQ = "rabbitmq"  # the prefix of the RabbitMQ node's entry in the CPU figures (probe.CpuMeter)
HOPS = 4  # offered, accepted, allocated (-> notifications) as messages, then the webhook's HTTP call
CONSUMER_STEPS = 3  # offer accepted, allocation recorded, webhook queued: the consumer steps of a referral
TARGET_BURST = 1000  # the burst target is for 1,000 referrals from 20 clients


def platform_cpu_ms(per_process: Mapping[str, float]) -> float:
    """CPU ms per referral of every platform process and their PostgreSQL backends (RabbitMQ apart: its node
    is shared with anything else using the broker)."""
    return round(sum(ms for name, ms in per_process.items() if not name.startswith(RABBITMQ)), 1)


def rabbitmq_cpu_ms(per_process: Mapping[str, float]) -> float:
    return round(sum(ms for name, ms in per_process.items() if name.startswith(RABBITMQ)), 1)


def cpu_floor_ms(ceilings: Mapping[str, Any], *, batched: bool = False) -> float | None:
    """The CPU a referral cannot go below on this machine: the bare Flask stage's request (validate, insert
    with an outbox row) and three bare consumer steps, each with its message published (in flight) and
    consumed, their PostgreSQL backends included. `batched`: the consumer steps as the batched consumer's."""
    consumer = ceilings.get("batched_consumer" if batched else "bare_consumer", {}).get("cpu_ms_per_msg")
    stage = ceilings.get("flask_stage", {}).get("cpu_ms_per_req")
    publish = ceilings.get("publish_in_flight", {}).get("cpu_ms_per_msg")
    if consumer is None or stage is None or publish is None:
        return None
    return round(stage + CONSUMER_STEPS * (consumer + publish), 2)


def pipeline_estimate(flask_per_s: float, consumer_per_s: float, cores: int = 2) -> int:
    """Four database-writing steps share the cores: intake's API (every core busy at the stage's rate) and
    three consumer steps, each costing one bare consumer message."""
    api_cost = cores / flask_per_s
    return round(cores / (api_cost + CONSUMER_STEPS / consumer_per_s))


def headline(r: Mapping[str, Any]) -> dict[str, float | None]:
    """The figures the issue's table names, read from a run's results (None where the run has no such part)."""
    burst = r.get("burst") or {}
    cpu = (r.get("cpu_burst") or {}).get("ms_per_referral")
    last = burst.get("last_webhook_s")
    return {
        "cpu_ms_per_referral": platform_cpu_ms(cpu) if cpu else None,
        "sustainable_per_s": r.get("sustainable_per_s"),
        "idle_p50_ms": (r.get("idle") or {}).get("p50_ms"),
        "idle_p99_ms": (r.get("idle") or {}).get("p99_ms"),
        "burst_last_webhook_s": last,
        "burst_per_s": round(burst["count"] / last, 1) if last else None,
        "stack_rss_mib": ((r.get("footprint_after_burst") or {}).get("total") or {}).get("rss_mib"),
    }


@dataclass(frozen=True)
class Target:
    figure: str  # a key of headline()
    label: str
    most: bool  # True: the figure must be at most `limit`; False: at least
    limit: float
    unit: str

    def text(self) -> str:
        return f"{'<=' if self.most else '>='} {self.limit:g} {self.unit}".rstrip()

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value <= self.limit if self.most else value >= self.limit


TARGETS = (
    Target("cpu_ms_per_referral", "CPU per referral (platform + PostgreSQL)", True, 30, "ms"),
    Target("sustainable_per_s", "sustainable rate", False, 40, "/s"),
    Target("idle_p50_ms", "idle POST -> webhook p50", True, 30, "ms"),
    Target("idle_p99_ms", "idle POST -> webhook p99", True, 80, "ms"),
    Target("burst_last_webhook_s", "burst of 1,000: last webhook", True, 25, "s"),
    Target("stack_rss_mib", "whole stack RSS after the burst", True, 600, "MiB"),
)


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else "met" if met else "MISSED"


def targets(r: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target of the issue with this run's figure and whether it was met (None: not measured here, or,
    for the burst, a burst of another size than the target's)."""
    figures = headline(r)
    out = {}
    for target in TARGETS:
        value = figures[target.figure]
        entry: dict[str, Any] = {"target": target.text(), "value": value, "met": target.met(value)}
        burst_count = (r.get("burst") or {}).get("count")
        if target.figure == "burst_last_webhook_s" and burst_count != TARGET_BURST:
            entry["met"] = None
            entry["note"] = f"burst of {burst_count}, not {TARGET_BURST:,}"
        out[target.figure] = entry
    return out


def _ratio(value: float | None, ceiling: float | None) -> float | None:
    if value is None or not ceiling:
        return None
    return round(value / ceiling, 2)


def ratios(r: Mapping[str, Any]) -> dict[str, float | None]:
    """Each figure over the ceiling it is bounded by, all measured in this run (empty without ceilings)."""
    c = r.get("ceilings") or {}
    if not c:
        return {}
    f = headline(r)
    hop = c["broker_hop"]["p50_ms"]
    return {
        "idle_p50_over_hops": _ratio(f["idle_p50_ms"], HOPS * hop if hop else None),
        "sustainable_over_pipeline_estimate": _ratio(f["sustainable_per_s"], c["pipeline_estimate_per_s"]),
        "sustainable_over_pipeline_estimate_batched": _ratio(
            f["sustainable_per_s"], c.get("pipeline_estimate_batched_per_s")
        ),
        "burst_rate_over_pipeline_estimate": _ratio(f["burst_per_s"], c["pipeline_estimate_per_s"]),
        "sustainable_over_flask_stage": _ratio(f["sustainable_per_s"], c["flask_stage"]["req_per_s"]),
        "sustainable_over_bare_consumer": _ratio(f["sustainable_per_s"], c["bare_consumer"]["msg_per_s"]),
        "cpu_over_floor": _ratio(f["cpu_ms_per_referral"], cpu_floor_ms(c)),
        "cpu_over_floor_batched": _ratio(f["cpu_ms_per_referral"], cpu_floor_ms(c, batched=True)),
    }


# How each ratio reads in the tables: (its key, what it divides).
RATIO_LABELS: dict[str, str] = {
    "sustainable_over_pipeline_estimate": "sustainable rate / pipeline estimate",
    "sustainable_over_pipeline_estimate_batched": "sustainable rate / pipeline estimate (batched consumers)",
    "burst_rate_over_pipeline_estimate": "burst referrals/s / pipeline estimate",
    "idle_p50_over_hops": f"idle p50 / ({HOPS} broker hops)",
    "cpu_over_floor": "CPU per referral / floor (4 bare transactions and their messages)",
    "cpu_over_floor_batched": "CPU per referral / floor with batched consumers",
    "sustainable_over_flask_stage": "sustainable rate / bare Flask stage",
    "sustainable_over_bare_consumer": "sustainable rate / bare consumer",
}


def cpu_by_process(per_process: Mapping[str, float]) -> list[tuple[str, float, float]]:
    """(process, ms per referral, share of the total with RabbitMQ in %), heaviest first."""
    total = sum(per_process.values())
    rows = sorted(per_process.items(), key=lambda item: -item[1])
    return [(name, ms, round(100 * ms / total, 1) if total else 0.0) for name, ms in rows]
