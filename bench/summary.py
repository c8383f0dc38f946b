"""Medians over several `make bench` runs (one run on a shared 2-core machine is one sample of the noise).

    .venv/bin/python -m bench.summary [--label after] [bench/results/bench-*.json ...]

Prints, per figure, the median and the range of the runs given (default: every bench-*.json with the label).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

FIGURES = {
    "idle p50 ms": lambda r: r["idle"]["p50_ms"],
    "idle p95 ms": lambda r: r["idle"]["p95_ms"],
    "idle p99 ms": lambda r: r["idle"]["p99_ms"],
    "sustainable referrals/s": lambda r: r["sustainable_per_s"],
    "burst: last webhook s": lambda r: r["burst"]["last_webhook_s"],
    "burst: referrals/s": lambda r: round(r["burst"]["count"] / r["burst"]["last_webhook_s"], 1),
    "lost": lambda r: r["lost"],
    "CPU ms per referral (platform + PG)": lambda r: round(
        sum(v for k, v in r["cpu_burst"]["ms_per_referral"].items() if not k.startswith("rabbitmq")), 1
    ),
    "advocacy instance RSS MiB": lambda r: r["footprint_after_burst"]["advocacy_instance"]["rss_mib"],
    "advocacy instance PSS MiB": lambda r: r["footprint_after_burst"]["advocacy_instance"]["pss_mib"],
    "whole stack RSS MiB": lambda r: r["footprint_after_burst"]["total"]["rss_mib"],
    "whole stack PSS MiB": lambda r: r["footprint_after_burst"]["total"]["pss_mib"],
    "ceiling: broker hop p50 ms": lambda r: r["ceilings"]["broker_hop"]["p50_ms"],
    "ceiling: publish, each confirm msg/s": lambda r: r["ceilings"]["publish_confirm_each"]["msg_per_s"],
    "ceiling: publish, 100 in flight msg/s": lambda r: r["ceilings"]["publish_in_flight"]["msg_per_s"],
    "ceiling: bare consumer msg/s": lambda r: r["ceilings"]["bare_consumer"]["msg_per_s"],
    "ceiling: bare Flask stage req/s": lambda r: r["ceilings"]["flask_stage"]["req_per_s"],
    "ceiling: pipeline estimate /s": lambda r: r["ceilings"]["pipeline_estimate_per_s"],
    "ratio: sustainable / pipeline estimate": lambda r: r["ratios"]["sustainable_over_pipeline_estimate"],
    "ratio: idle p50 / (4 x broker hop)": lambda r: r["ratios"]["idle_p50_over_hops"],
    "machine load at start (1 min)": lambda r: r["machine"]["loadavg_at_start"][0],
}


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
    width = max(len(name) for name in FIGURES)
    print(f"{'figure':<{width}}  {'median':>8}  range")
    for name, pick in FIGURES.items():
        try:
            values = [pick(r) for r in runs]
        except (KeyError, TypeError, ZeroDivisionError):
            continue
        values = [v for v in values if v is not None]
        if values:
            print(f"{name:<{width}}  {statistics.median(values):>8g}  {min(values):g} .. {max(values):g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
