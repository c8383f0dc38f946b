"""Issue 11's short chaos run: the platform as processes on a private RabbitMQ node, referrals arriving while a
worker is SIGKILLed, PostgreSQL backends are terminated, notifications' database refuses connections for 15 s,
poison messages arrive and the broker is SIGKILLed; then every accepted referral is followed to its end, and
every worker must be ready again within the run's bound of the broker's return (bench/chaos.py --short, about
a minute and a half here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.rabbit_node import available

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(available() is not None, reason=f"no private RabbitMQ node: {available()}")


def test_a_short_chaos_run_loses_stalls_and_doubles_nothing_and_parks_only_the_poison(tmp_path):
    out = tmp_path / "chaos.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--short", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert out.exists(), f"no result (exit {run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    result = json.loads(out.read_text())
    table = run.stdout[-4000:]
    assert result["accepted"] >= 30, table
    assert result["lost"] == 0, table
    assert result["stalled"] == 0, table
    assert sum(result["duplicate effects"].values()) == 0, table
    assert result["parked other"] == 0, table
    parked, sent = result["parked poison"].split(" of ")
    assert parked == sent != "0", table
    # Issue 11: every worker back within 2 s of the broker (the run fails past a looser bound on this machine).
    broker_faults = [row for row in result["faults"] if row["broker_fault"]]
    assert broker_faults, table
    for row in broker_faults:
        assert row["workers_ready_s"] is not None and row["workers_ready_s"] <= result["ready bound (s)"], table
    assert run.returncode == 0, table
