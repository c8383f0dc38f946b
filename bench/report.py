"""The end of a benchmark run: a table on the terminal and a PNG of latency against offered rate."""

from __future__ import annotations

from pathlib import Path


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(_row(header, widths))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(_row(row, widths))


def print_table(r: dict) -> None:
    c = r["ceilings"]
    idle, b = r["idle"], r["burst"]
    print("\nPlatform (tracing on, gunicorn sync workers: "
          + ", ".join(f"{k} {v}" for k, v in r["web_concurrency"].items())
          + "".join(f"; {svc}'s worker inside its API" for svc in r.get("worker_in_api", [])) + ")\n")  # fmt: skip
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
        print(f"\nCPU time per referral during the burst (ms; {r['burst']['count']} referrals)\n")
        per = r["cpu_burst"]["ms_per_referral"]
        _table(["process", "CPU ms / referral"], [[name, f"{ms}"] for name, ms in per.items()])
        platform = sum(ms for name, ms in per.items() if not name.startswith("rabbitmq"))
        print(f"{'platform processes + their PostgreSQL backends':<40} {platform:.1f} ms per referral")
    if not c:
        print(f"\n(ceilings skipped)\nelapsed {r['elapsed_s']} s")
        return
    print("\nCeilings on this machine, same run\n")
    _table(
        ["ceiling", "measured", "platform / ceiling"],
        [
            ["broker hop p50 / p99 (confirmed publish -> consume)",
             f"{c['broker_hop']['p50_ms']} / {c['broker_hop']['p99_ms']} ms",
             f"idle p50 = {r['ratios']['idle_p50_over_hops']} x 4 hops"],
            ["confirmed publish, waiting for each", f"{c['publish_confirm_each']['msg_per_s']} msg/s", ""],
            ["confirmed publish, 100 in flight", f"{c['publish_in_flight']['msg_per_s']} msg/s", ""],
            ["bare consumer (parse + PG transaction + ack)", f"{c['bare_consumer']['msg_per_s']} msg/s",
             f"{r['ratios']['sustainable_over_bare_consumer']}"],
            ["bare Flask validate + insert with outbox row", f"{c['flask_stage']['req_per_s']} req/s",
             f"{r['ratios']['sustainable_over_flask_stage']}"],
            ["pipeline estimate (1 API + 3 consumer steps, 2 cores)", f"{c['pipeline_estimate_per_s']} /s",
             f"{r['ratios']['sustainable_over_pipeline_estimate']}"],
        ],
    )  # fmt: skip
    print(f"\nelapsed {r['elapsed_s']} s")


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
