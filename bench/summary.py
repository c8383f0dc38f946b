"""Medians over several `make bench` runs (one run on a shared 2-core machine is one sample of the noise).

    .venv/bin/python -m bench.summary [--label after] [bench/results/bench-*.json ...]

Prints, per figure, the median and the range of the runs given (default: every bench-*.json with the label),
and for the issue's figures whether the median meets its target (bench.figures). A run of an earlier build
lacks the newer figures: a figure is summarised over the runs that have it, and their count is shown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from bench import figures

RESULTS = Path(__file__).resolve().parent / "results"

Pick = Callable[[Mapping[str, Any]], Any]


def _headline(name: str) -> Pick:
    return lambda r: figures.headline(r)[name]


def _ratio(name: str) -> Pick:
    return lambda r: figures.ratios(r)[name]  # computed again, so that runs stored before a ratio existed have it


FIGURES: dict[str, Pick] = {
    "idle p50 ms": _headline("idle_p50_ms"),
    "idle p95 ms": lambda r: r["idle"]["p95_ms"],
    "idle p99 ms": _headline("idle_p99_ms"),
    "sustainable referrals/s": _headline("sustainable_per_s"),
    "burst: last webhook s": _headline("burst_last_webhook_s"),
    "burst: referrals/s": _headline("burst_per_s"),
    "lost": lambda r: r["lost"],
    "CPU ms per referral (platform + PG)": _headline("cpu_ms_per_referral"),
    "CPU ms per referral (RabbitMQ)": lambda r: figures.rabbitmq_cpu_ms(r["cpu_burst"]["ms_per_referral"]),
    "advocacy instance RSS MiB": lambda r: r["footprint_after_burst"]["advocacy_instance"]["rss_mib"],
    "advocacy instance PSS MiB": lambda r: r["footprint_after_burst"]["advocacy_instance"]["pss_mib"],
    "whole stack RSS MiB": _headline("stack_rss_mib"),
    "whole stack PSS MiB": lambda r: r["footprint_after_burst"]["total"]["pss_mib"],
    "ceiling: broker hop p50 ms": lambda r: r["ceilings"]["broker_hop"]["p50_ms"],
    "ceiling: publish, each confirm msg/s": lambda r: r["ceilings"]["publish_confirm_each"]["msg_per_s"],
    "ceiling: publish, 100 in flight msg/s": lambda r: r["ceilings"]["publish_in_flight"]["msg_per_s"],
    "ceiling: bare consumer msg/s": lambda r: r["ceilings"]["bare_consumer"]["msg_per_s"],
    "ceiling: bare consumer CPU ms/msg": lambda r: r["ceilings"]["bare_consumer"]["cpu_ms_per_msg"],
    "ceiling: batched consumer msg/s": lambda r: r["ceilings"]["batched_consumer"]["msg_per_s"],
    "ceiling: batched consumer CPU ms/msg": lambda r: r["ceilings"]["batched_consumer"]["cpu_ms_per_msg"],
    "ceiling: bare Flask stage req/s": lambda r: r["ceilings"]["flask_stage"]["req_per_s"],
    "ceiling: bare Flask stage CPU ms/req": lambda r: r["ceilings"]["flask_stage"]["cpu_ms_per_req"],
    "ceiling: pipeline estimate /s": lambda r: r["ceilings"]["pipeline_estimate_per_s"],
    "ceiling: pipeline estimate, batched /s": lambda r: r["ceilings"]["pipeline_estimate_batched_per_s"],
    "ceiling: CPU floor ms per referral": lambda r: figures.cpu_floor_ms(r["ceilings"]),
    "ceiling: CPU floor, batched ms": lambda r: figures.cpu_floor_ms(r["ceilings"], batched=True),
    **{f"ratio: {label}": _ratio(key) for key, label in figures.RATIO_LABELS.items()},
    "scale-out: referrals/s, 1 worker": lambda r: r["scale_out"]["runs"][0]["per_s"],
    "scale-out: referrals/s, 2 workers": lambda r: r["scale_out"]["runs"][1]["per_s"],
    "scale-out: 2 workers / 1": lambda r: r["scale_out"]["two_over_one"],
    "machine load at start (1 min)": lambda r: r["machine"]["loadavg_at_start"][0],
}
# The figures the issue sets a target for: name in FIGURES -> its target.
TARGETED = {
    "idle p50 ms": "idle_p50_ms",
    "idle p99 ms": "idle_p99_ms",
    "sustainable referrals/s": "sustainable_per_s",
    "burst: last webhook s": "burst_last_webhook_s",
    "CPU ms per referral (platform + PG)": "cpu_ms_per_referral",
    "whole stack RSS MiB": "stack_rss_mib",
}


class Row(NamedTuple):
    name: str
    median: float
    low: float
    high: float
    runs: int  # how many of the runs have this figure
    target: str  # e.g. "<= 30 ms", or "" for a figure without one
    met: bool | None


def _values(runs: list[Mapping[str, Any]], pick: Pick) -> list[float]:
    values = []
    for r in runs:
        try:
            value = pick(r)
        except (KeyError, TypeError, ZeroDivisionError, IndexError):
            continue
        if value is not None:
            values.append(value)
    return values


def medians(runs: list[Mapping[str, Any]]) -> list[Row]:
    """Each figure's median and range over the runs that have it; a targeted figure's median judged."""
    by_figure = {t.figure: t for t in figures.TARGETS}
    rows = []
    for name, pick in _all_figures(runs).items():
        values = _values(runs, pick)
        if not values:
            continue
        median = statistics.median(values)
        target = by_figure.get(TARGETED.get(name, ""))
        bursts = {r["burst"]["count"] for r in runs if "burst" in r}
        judged = target is not None and not (name == "burst: last webhook s" and bursts != {figures.TARGET_BURST})
        rows.append(
            Row(
                name,
                median,
                min(values),
                max(values),
                len(values),
                target.text() if target else "",
                target.met(median) if judged and target else None,
            )  # fmt: skip
        )
    return rows


def _all_figures(runs: list[Mapping[str, Any]]) -> dict[str, Pick]:
    """FIGURES, then the CPU per referral of each process any run measured (the processes differ with
    --workers-per-service and --separate-workers)."""
    names = sorted({p for r in runs for p in ((r.get("cpu_burst") or {}).get("ms_per_referral") or {})})
    return {**FIGURES, **{f"CPU ms per referral: {p}": _cpu_of(p) for p in names}}


def _cpu_of(process: str) -> Pick:
    return lambda r: r["cpu_burst"]["ms_per_referral"][process]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default=None)
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args(argv)
    runs = [json.loads(p.read_text()) for p in (args.files or sorted(RESULTS.glob("bench-*.json")))]
    runs = [r for r in runs if args.label is None or r.get("label") == args.label]
    runs = [r for r in runs if r.get("ceilings") and r.get("cpu_burst")]  # complete runs only
    if not runs:
        print("no complete runs found", file=sys.stderr)
        return 1
    print(f"{len(runs)} run(s): " + ", ".join(r["started_at"][:19] for r in runs))
    rows = medians(runs)
    width = max(len(row.name) for row in rows)
    print(f"{'figure':<{width}}  {'median':>8}  {'range':<20}  target")
    for row in rows:
        spread = f"{row.low:g} .. {row.high:g}" + (f" ({row.runs} runs)" if row.runs != len(runs) else "")
        judged = f"{row.target} {figures.verdict(row.met)}" if row.target else ""
        print(f"{row.name:<{width}}  {row.median:>8g}  {spread:<20}  {judged}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
