"""Idle latency: referrals posted one at a time; time from POST to the agency's webhook.

    make bench-latency            (or: .venv/bin/python -m bench.latency --count 50)

Starts the platform as processes (gunicorn APIs, workers, PostgreSQL databases, tracing exported over OTLP
to a local sink), an agency webhook receiver, and the demo provider with AUTO_ACCEPT. Prints p50/p95/max
and writes bench/results/latency-<time>.json. Uses TEST_AMQP_URL / TEST_DATABASE_URL like the tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
from opentelemetry.instrumentation.utils import suppress_instrumentation

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench.stack import local_setup  # noqa: E402
from shared.testing import referral_body  # noqa: E402
from support.stack import platform_stack  # noqa: E402

AGENCY = ("met-police", "police", "referrals:write referrals:read subscriptions:write")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="referrals to send, one at a time (default 50)")
    args = parser.parse_args(argv)
    broker, database, work, keys, token = local_setup("bench-latency-")

    print(f"starting the platform (logs in {work}) ...", flush=True)
    with platform_stack(broker, database, keys, token, work, advocate_capacity=args.count + 10) as stack:
        headers = stack.headers(*AGENCY)
        hook = {"url": f"{stack.webhooks.url}/hooks", "events": ["referral.allocated"]}
        requests.post(f"{stack.url('notifications')}/v1/subscriptions", json=hook, headers=headers, timeout=10)
        latencies = []
        for i in range(args.count):
            started = time.monotonic()
            with suppress_instrumentation():
                response = requests.post(
                    f"{stack.url('intake')}/v1/referrals",
                    json=referral_body(seed=i),
                    headers=headers,
                    timeout=10,
                )
            response.raise_for_status()
            referral_id = response.json()["id"]
            arrived = stack.webhooks.wait_for(lambda items, rid=referral_id: _arrival(items, rid), timeout=30)
            latencies.append((arrived - started) * 1000)
            print(f"\r{i + 1}/{args.count} referrals, last {latencies[-1]:.1f} ms", end="", flush=True)
        print()
    result = summarise(latencies)
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"latency-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"measure": "POST /v1/referrals -> referral.allocated webhook", **result}, indent=2))
    print(f"written to {out.relative_to(ROOT)}")
    return 0


def _arrival(items, referral_id: str) -> float | None:
    for item in items:
        if json.loads(item.body)["data"]["referral_id"] == referral_id:
            return item.at
    return None


def summarise(latencies_ms: list[float]) -> dict:
    ordered = sorted(latencies_ms)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)  # noqa: E731
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": pick(0.95),
        "max_ms": round(ordered[-1], 1),
    }


if __name__ == "__main__":
    sys.exit(main())
