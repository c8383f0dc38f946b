"""The bench's arithmetic: each figure beside the issue's target and its ratio to the same run's ceiling
(bench.figures), the medians bench.summary takes over runs (older runs lacking newer figures), and the
terminal table drawn from a run's results. No run, no I/O: results are built here."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

# The benchmark (bench/) is not a package of the project: the repository root is not on pytest's path.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import figures, report, stack, summary  # noqa: E402

pytestmark = pytest.mark.unit


def ceilings(*, consumer_cpu=0.9, batched_cpu=0.1, stage_cpu=4.0, publish_cpu=0.1) -> dict:
    return {
        "broker_hop": {"p50_ms": 2.0, "p99_ms": 5.0},
        "publish_confirm_each": {"msg_per_s": 600},
        "publish_in_flight": {"msg_per_s": 6000, "cpu_ms_per_msg": publish_cpu},
        "bare_consumer": {"msg_per_s": 300, "cpu_ms_per_msg": consumer_cpu},
        "batched_consumer": {"msg_per_s": 3000, "batch": 50, "cpu_ms_per_msg": batched_cpu},
        "flask_stage": {"req_per_s": 300, "cpu_ms_per_req": stage_cpu},
        "pipeline_estimate_per_s": 120,
        "pipeline_estimate_batched_per_s": 250,
    }


def run(**changes) -> dict:
    """A complete run's results, as bench.run stores them."""
    found = {
        "started_at": "2026-12-02T13:00:00+00:00",
        "label": "after",
        "machine": {"cpus": 2, "loadavg_at_start": [1.0, 1.0, 1.0]},
        "web_concurrency": {"intake": 2, "advocacy": 1, "notifications": 1},
        "worker_in_api": ["advocacy"],
        "workers_per_service": 1,
        "ceilings": ceilings(),
        "idle": {"count": 200, "errors": 0, "p50_ms": 24.0, "p95_ms": 60.0, "p99_ms": 90.0, "max_ms": 120.0},
        "steps": [
            {
                "offered_per_s": 25,
                "achieved_per_s": 24.8,
                "p50_ms": 30.0,
                "p99_ms": 200.0,
                "errors": 0,
                "max_queue_depth": {"intake": 0, "advocacy.demo-charity": 1, "notifications": 0},
                "max_outstanding": 4,
                "not_notified_after_drain": 0,
                "sustained": True,
            },
            {
                "offered_per_s": 50,
                "achieved_per_s": 41.0,
                "p50_ms": 900.0,
                "p99_ms": 3000.0,
                "errors": 0,
                "max_queue_depth": {"intake": 40, "advocacy.demo-charity": 90, "notifications": 3},
                "max_outstanding": 300,
                "not_notified_after_drain": 0,
                "sustained": False,
            },
        ],  # fmt: skip
        "sustainable_per_s": 25,
        "burst": {"count": 1000, "clients": 20, "errors": 0, "last_webhook_s": 40.0},
        "cpu_burst": {
            "ms_per_referral": {
                "intake-api": 8.0,
                "intake-worker": 9.0,
                "advocacy-api": 12.0,
                "notifications-worker": 7.0,
                "postgres (platform databases)": 6.0,
                "rabbitmq (whole node)": 5.0,
            }
        },
        "footprint_at_rest": {"processes": {"intake-api": {"rss_mib": 150.0, "pss_mib": 100.0}}},
        "footprint_after_burst": {
            "processes": {"intake-api": {"rss_mib": 160.0, "pss_mib": 110.0}},
            "advocacy_instance": {"rss_mib": 130.0, "pss_mib": 100.0},
            "total": {"rss_mib": 590.0, "pss_mib": 450.0},
        },
        "accepted": 1500,
        "lost": 0,
        "elapsed_s": 250.0,
    }
    found.update(changes)
    found["headline"] = figures.headline(found)
    found["ratios"] = figures.ratios(found)
    found["targets"] = figures.targets(found)
    return found


def test_platform_cpu_leaves_out_the_rabbitmq_node_and_the_total_keeps_it():
    per = run()["cpu_burst"]["ms_per_referral"]
    assert figures.platform_cpu_ms(per) == 42.0
    assert figures.rabbitmq_cpu_ms(per) == 5.0


def test_the_cpu_floor_is_a_flask_request_and_three_consumer_steps_each_with_its_message():
    c = ceilings(consumer_cpu=0.9, batched_cpu=0.1, stage_cpu=4.0, publish_cpu=0.1)
    assert figures.cpu_floor_ms(c) == pytest.approx(4.0 + 3 * (0.9 + 0.1))
    assert figures.cpu_floor_ms(c, batched=True) == pytest.approx(4.0 + 3 * (0.1 + 0.1))


def test_ceilings_of_a_build_that_did_not_measure_cpu_have_no_floor():
    c = ceilings()
    del c["flask_stage"]["cpu_ms_per_req"]
    assert figures.cpu_floor_ms(c) is None
    assert figures.ratios(run(ceilings=c))["cpu_over_floor"] is None


def test_the_pipeline_estimate_shares_two_cores_between_the_api_and_three_consumer_steps():
    # 2 / (2/300 + 3/300) = 120 referrals/s
    assert figures.pipeline_estimate(300, 300) == 120
    assert figures.pipeline_estimate(300, 3000) == 261  # 2 / (2/300 + 3/3000) = 260.9


def test_each_ratio_divides_the_figure_by_its_ceiling_of_the_same_run():
    ratios = run()["ratios"]
    assert ratios["cpu_over_floor"] == round(42.0 / 7.0, 2)
    assert ratios["cpu_over_floor_batched"] == round(42.0 / 4.6, 2)
    assert ratios["idle_p50_over_hops"] == 3.0  # 24 ms over 4 hops of 2 ms
    assert ratios["sustainable_over_pipeline_estimate"] == round(25 / 120, 2)
    assert ratios["sustainable_over_pipeline_estimate_batched"] == 0.1
    assert ratios["burst_rate_over_pipeline_estimate"] == round(25.0 / 120, 2)  # 1,000 in 40 s
    assert set(ratios) == set(figures.RATIO_LABELS)


def test_a_run_without_ceilings_has_no_ratios():
    assert figures.ratios(run(ceilings={})) == {}


def test_each_target_is_met_or_missed_by_this_runs_figure():
    targets = run()["targets"]
    assert {name: t["met"] for name, t in targets.items()} == {
        "cpu_ms_per_referral": False,  # 42 > 30
        "sustainable_per_s": False,  # 25 < 40
        "idle_p50_ms": True,  # 24 <= 30
        "idle_p99_ms": False,  # 90 > 80
        "burst_last_webhook_s": False,  # 40 > 25
        "stack_rss_mib": True,  # 590 <= 600
    }
    assert targets["sustainable_per_s"]["target"] == ">= 40 /s"
    assert targets["cpu_ms_per_referral"] == {"target": "<= 30 ms", "value": 42.0, "met": False}


def test_a_target_exactly_at_its_limit_is_met():
    targets = run(sustainable_per_s=40, idle={**run()["idle"], "p99_ms": 80.0})["targets"]
    assert targets["sustainable_per_s"]["met"] is True
    assert targets["idle_p99_ms"]["met"] is True


def test_a_burst_of_another_size_is_not_judged_against_the_target_for_a_thousand():
    found = run(burst={"count": 300, "clients": 20, "errors": 0, "last_webhook_s": 5.0})["targets"]
    assert found["burst_last_webhook_s"]["met"] is None
    assert "1,000" in found["burst_last_webhook_s"]["note"]


def test_cpu_by_process_is_heaviest_first_with_each_share_of_everything():
    rows = figures.cpu_by_process({"a": 1.0, "b": 3.0})
    assert rows == [("b", 3.0, 75.0), ("a", 1.0, 25.0)]


def _row(rows, name):
    return next(r for r in rows if r.name == name)


def test_summary_takes_medians_and_ranges_and_judges_the_median_against_its_target():
    runs = [run(sustainable_per_s=n) for n in (25, 50, 40)]
    rows = summary.medians(runs)
    sustainable = _row(rows, "sustainable referrals/s")
    assert (sustainable.median, sustainable.low, sustainable.high, sustainable.runs) == (40, 25, 50, 3)
    assert (sustainable.target, sustainable.met) == (">= 40 /s", True)
    cpu_ratio = _row(rows, "ratio: " + figures.RATIO_LABELS["cpu_over_floor"])
    assert cpu_ratio.median == 6.0
    assert _row(rows, "ceiling: CPU floor ms per referral").median == 7.0
    assert _row(rows, "CPU ms per referral: advocacy-api").median == 12.0
    assert _row(rows, "lost").target == ""


def test_summary_counts_an_older_run_only_for_the_figures_it_has():
    older = copy.deepcopy(run())
    del older["ceilings"]["batched_consumer"]
    for c in ("bare_consumer", "publish_in_flight"):
        del older["ceilings"][c]["cpu_ms_per_msg"]
    rows = summary.medians([run(), run(), older])
    assert _row(rows, "ceiling: batched consumer msg/s").runs == 2
    assert _row(rows, "ceiling: CPU floor ms per referral").runs == 2
    assert _row(rows, "idle p50 ms").runs == 3


def test_summary_judges_no_burst_target_over_bursts_of_another_size():
    short = {"count": 300, "clients": 20, "errors": 0, "last_webhook_s": 5.0}
    row = _row(summary.medians([run(burst=short), run(burst=short)]), "burst: last webhook s")
    assert (row.median, row.met) == (5.0, None)


def test_summary_of_the_scale_out_runs():
    scaled = {"count": 500, "runs": [{"per_s": 20.0}, {"per_s": 30.0}], "two_over_one": 1.5}
    rows = summary.medians([run(scale_out=scaled)])
    assert _row(rows, "scale-out: 2 workers / 1").median == 1.5


def test_the_table_shows_each_target_met_or_missed_with_its_ratio(capsys):
    r = run(
        settings={"AMQP_BATCH_SIZE": "50"},
        settings_not_read=["AMQP_BATCH_SIZE"],
        scale_out={"skipped": "this build's shared.config.Settings does not read AMQP_PARTITIONS"},
    )
    r["ceilings"]["cpu_floor_ms"] = figures.cpu_floor_ms(r["ceilings"])
    report.print_table(r)
    out = capsys.readouterr().out
    target_line = next(line for line in out.splitlines() if line.startswith("CPU per referral (platform"))
    assert "42 ms" in target_line and "<= 30 ms" in target_line and "MISSED" in target_line
    assert "6 x floor" in target_line
    idle_line = next(line for line in out.splitlines() if line.startswith("idle POST -> webhook p50"))
    assert " met " in idle_line and "3 x 4 broker hops" in idle_line
    assert "note: AMQP_BATCH_SIZE was set but this build does not read it" in out
    assert "skipped: this build's shared.config.Settings does not read AMQP_PARTITIONS" in out
    assert "= platform processes + their PostgreSQL backends" in out


def test_a_setting_this_build_does_not_read_is_named(monkeypatch):
    monkeypatch.setattr(stack, "ISSUE_17_SETTINGS", ("AMQP_PREFETCH", "AMQP_NO_SUCH_SETTING"))
    given = {"AMQP_PREFETCH": "7", "AMQP_NO_SUCH_SETTING": "7", "OTHER": "1"}
    assert stack.unread_settings(given) == ["AMQP_NO_SUCH_SETTING"]


def test_the_table_of_a_run_without_ceilings_judges_the_targets_without_ratios(capsys):
    report.print_table(run(ceilings={}))
    out = capsys.readouterr().out
    assert "(ceilings skipped)" in out
    assert next(line for line in out.splitlines() if line.startswith("sustainable rate")).split()[-1] == "MISSED"
