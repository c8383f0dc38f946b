"""The end of a benchmark run: a table on the terminal and a PNG of latency against offered rate."""

from __future__ import annotations

from pathlib import Path

from bench import figures


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(_row(header, widths))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(_row(row, widths))


def _fmt(value, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}" if isinstance(value, float | int) else str(value)


def _cell(ratio: float | None, suffix: str = "") -> str:
    return "-" if ratio is None else f"{ratio:g}{suffix}"


def print_table(r: dict) -> None:
    c = r["ceilings"]
    idle, b = r["idle"], r["burst"]
    workers = r.get("workers_per_service", 1)
    print("\nPlatform (tracing on, gunicorn sync workers: "
          + ", ".join(f"{k} {v}" for k, v in r["web_concurrency"].items())
          + "".join(f"; {svc}'s worker inside its API" for svc in r.get("worker_in_api", []))
          + (f"; {workers} workers each for intake and notifications, AMQP_PARTITIONS={workers}" if workers > 1 else "")
          + ")\n")  # fmt: skip
    if r.get("settings"):
        print("settings: " + ", ".join(f"{k}={v}" for k, v in r["settings"].items()))
    for name in r.get("settings_not_read", []):
        print(f"note: {name} was set but this build does not read it")
    _print_targets(r)
    print()
    _table(
        ["measure", "result"],
        [
            ["idle POST -> webhook p50 / p95 / p99", f"{idle['p50_ms']} / {idle['p95_ms']} / {idle['p99_ms']} ms"],
            ["sustainable rate (p99 < 1 s, no growing backlog)", f"{r['sustainable_per_s']} referrals/s"],
            [f"burst of {b['count']} from {b['clients']} clients: last webhook", f"{b['last_webhook_s']} s"],
            ["referrals lost (201 but never allocated and notified)", f"{r['lost']} of {r['accepted']}"],
            ["advocacy instance (API + worker) RSS after burst",
             f"{r['footprint_after_burst']['advocacy_instance']['rss_mib']} MiB"],
            ["whole stack RSS / PSS after burst",
             "{rss_mib} / {pss_mib} MiB".format(**r["footprint_after_burst"]["total"])],
        ],
    )  # fmt: skip
    print("\nSustained arrival rates (open loop)\n")
    rows = []
    for s in r["steps"]:
        depth = "/".join(str(v) for v in s["max_queue_depth"].values())
        rows.append([f"{s['offered_per_s']}/s", f"{s['achieved_per_s']}", f"{s['p50_ms']}", f"{s['p99_ms']}",
                     depth, str(s["max_outstanding"]), str(s["errors"]), str(s["not_notified_after_drain"]),
                     "yes" if s["sustained"] else "no"])  # fmt: skip
    _table(["offered", "achieved/s", "p50 ms", "p99 ms", "max queues i/a/n", "max backlog", "errors",
            "unnotified", "sustained"], rows)  # fmt: skip
    print("\nMemory (MiB)\n")
    rest, after = r["footprint_at_rest"]["processes"], r["footprint_after_burst"]["processes"]
    _table(
        ["process", "RSS at rest", "RSS after burst", "PSS after burst"],
        [[n, f"{rest[n]['rss_mib']}", f"{after[n]['rss_mib']}", f"{after[n]['pss_mib']}"] for n in after],
    )
    if "cpu_burst" in r:
        _print_cpu(r["cpu_burst"], f"during the burst of {b['count']}", c.get("cpu_floor_ms") if c else None)
    if r.get("scale_out"):
        _print_scale_out(r["scale_out"])
    if not c:
        print(f"\n(ceilings skipped)\nelapsed {r['elapsed_s']} s")
        return
    ratios = r["ratios"]
    print("\nCeilings on this machine, same run\n")
    bare, batched, stage = c["bare_consumer"], c.get("batched_consumer", {}), c["flask_stage"]
    _table(
        ["ceiling", "measured", "CPU ms each", "platform / ceiling"],
        [
            ["broker hop p50 / p99 (confirmed publish -> consume)",
             f"{c['broker_hop']['p50_ms']} / {c['broker_hop']['p99_ms']} ms", "",
             f"idle p50 = {_cell(ratios['idle_p50_over_hops'])} x 4 hops"],
            ["confirmed publish, waiting for each", f"{c['publish_confirm_each']['msg_per_s']} msg/s", "", ""],
            ["confirmed publish, 100 in flight", f"{c['publish_in_flight']['msg_per_s']} msg/s",
             _fmt(c["publish_in_flight"].get("cpu_ms_per_msg")), ""],
            ["bare consumer (parse + PG transaction + ack)", f"{bare['msg_per_s']} msg/s",
             _fmt(bare.get("cpu_ms_per_msg")), _cell(ratios["sustainable_over_bare_consumer"])],
            [f"batched bare consumer (up to {batched.get('batch', '-')} per transaction)",
             f"{_fmt(batched.get('msg_per_s'))} msg/s", _fmt(batched.get("cpu_ms_per_msg")), ""],
            ["bare Flask validate + insert with outbox row", f"{stage['req_per_s']} req/s",
             _fmt(stage.get("cpu_ms_per_req")), _cell(ratios["sustainable_over_flask_stage"])],
            ["pipeline estimate (1 API + 3 consumer steps, 2 cores)", f"{c['pipeline_estimate_per_s']} /s", "",
             _cell(ratios["sustainable_over_pipeline_estimate"])],
            ["pipeline estimate with batched consumers", f"{_fmt(c.get('pipeline_estimate_batched_per_s'))} /s", "",
             _cell(ratios.get("sustainable_over_pipeline_estimate_batched"))],
            ["CPU floor per referral (4 bare transactions + messages)", f"{_fmt(c.get('cpu_floor_ms'))} ms", "",
             _cell(ratios.get("cpu_over_floor"), " x")],
            ["CPU floor with batched consumers", f"{_fmt(c.get('cpu_floor_batched_ms'))} ms", "",
             _cell(ratios.get("cpu_over_floor_batched"), " x")],
        ],
    )  # fmt: skip
    print("\nRatios to the ceilings\n")
    _table(["ratio", "value"], [[label, _cell(ratios.get(key))] for key, label in figures.RATIO_LABELS.items()])
    print(f"\nelapsed {r['elapsed_s']} s")


def _print_targets(r: dict) -> None:
    """The issue's targets, each beside this run's figure and the ratio to its ceiling."""
    beside = {
        "cpu_ms_per_referral": ("cpu_over_floor", " x floor"),
        "sustainable_per_s": ("sustainable_over_pipeline_estimate", " of the pipeline estimate"),
        "idle_p50_ms": ("idle_p50_over_hops", " x 4 broker hops"),
        "burst_last_webhook_s": ("burst_rate_over_pipeline_estimate", " of the pipeline estimate (its rate)"),
    }
    rows = []
    for target in figures.TARGETS:
        found = r["targets"][target.figure]
        key, words = beside.get(target.figure, ("", ""))
        ratio = r["ratios"].get(key) if key else None
        note = found.get("note", "")
        rows.append([target.label, _fmt(found["value"], " " + target.unit), found["target"],
                     figures.verdict(found["met"]) + (f" ({note})" if note else ""),
                     "" if ratio is None else f"{ratio:g}{words}"])  # fmt: skip
    _table(["the issue's targets", "this run", "target", "", "against the ceiling"], rows)


def _print_cpu(cpu: dict, during: str, floor: float | None) -> None:
    print(f"\nCPU time per referral {during} (ms; a gunicorn master with its workers counts as one process)\n")
    rows = [[name, f"{ms:g}", f"{share:g}%"] for name, ms, share in figures.cpu_by_process(cpu["ms_per_referral"])]
    platform = figures.platform_cpu_ms(cpu["ms_per_referral"])
    rows.append(["= platform processes + their PostgreSQL backends", f"{platform:g}",
                 "" if not floor else f"{platform / floor:.1f} x the floor of {floor:g}"])  # fmt: skip
    rows.append(["= everything, with RabbitMQ", f"{round(sum(cpu['ms_per_referral'].values()), 1):g}", ""])
    _table(["process", "CPU ms / referral", "share"], rows)


def _print_scale_out(found: dict) -> None:
    print("\nScale-out: the same burst on a fresh platform, 1 and 2 workers per service (intake, notifications)\n")
    if "skipped" in found:
        print(f"skipped: {found['skipped']}")
        return
    rows = [[str(run["workers_per_service"]), f"{run['last_webhook_s']} s", _fmt(run["per_s"]),
             _fmt(run["cpu_ms_per_referral"]), str(run["errors"]), str(run["lost"])]
            for run in found["runs"]]  # fmt: skip
    _table(["workers per service", f"burst of {found['count']}: last webhook", "referrals/s",
            "CPU ms / referral", "errors", "lost"], rows)  # fmt: skip
    print(f"2 workers / 1 worker: {_fmt(found.get('two_over_one'))} x (on two cores it will not double)")


def write_plot(r: dict, path: Path) -> Path | None:
    """Latency (p50, p99; log scale) and achieved rate against offered rate. None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot written")
        return None
    steps = r["steps"]
    offered = [s["offered_per_s"] for s in steps]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(offered, [s["p50_ms"] for s in steps], "o-", label="p50")
    left.plot(offered, [s["p99_ms"] for s in steps], "s-", label="p99")
    left.axhline(1000, color="grey", linestyle="--", linewidth=1, label="p99 limit (1 s)")
    left.axhline(r["idle"]["p50_ms"], color="green", linestyle=":", linewidth=1, label="idle p50")
    left.set_yscale("log")
    left.set_xlabel("offered referrals/s (open loop)")
    left.set_ylabel("POST -> webhook latency (ms)")
    left.set_title("End-to-end latency")
    left.legend(fontsize=8)
    left.grid(True, which="both", alpha=0.3)
    right.plot(offered, [s["achieved_per_s"] for s in steps], "o-", label="achieved")
    right.plot(offered, offered, color="grey", linestyle="--", linewidth=1, label="offered")
    if r["ceilings"]:
        right.axhline(r["ceilings"]["pipeline_estimate_per_s"], color="red", linestyle=":", linewidth=1,
                      label="pipeline estimate")  # fmt: skip
    right.set_xlabel("offered referrals/s")
    right.set_ylabel("webhooks/s during the step")
    right.set_title(f"Throughput (sustainable: {r['sustainable_per_s']}/s)")
    right.legend(fontsize=8)
    right.grid(True, alpha=0.3)
    label = f" - {r['label']}" if r.get("label") else ""
    fig.suptitle(f"make bench, {r['started_at'][:19]}Z{label}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
