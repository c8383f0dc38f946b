"""`make bench`: the platform driven like a busy partnership, beside this machine's raw ceilings.

    make bench                    (or: .venv/bin/python -m bench.run [--quick])

1. ceilings: a broker hop, confirmed publishing (each confirm waited for / 100 in flight), a bare consumer
   (one transaction per message, and batched), a bare Flask validate-and-insert stage, each with its CPU
   (bench/ceilings.py);
2. the platform as deployed (bench/stack.py): memory at rest; idle latency (referrals one at a time,
   POST -> webhook); sustained open-loop arrival rates stepping up; a burst from 20 concurrent clients with
   the CPU per referral of every process; memory after the burst; referrals lost (posted 201 but never
   allocated and notified);
3. with --scale-out, a shorter burst on a fresh platform with 1, then 2 workers per service (partitions);
4. a table with each figure beside the issue's target and its ratio to the same run's ceiling
   (bench/figures.py), bench/results/bench-<time>.json and bench-<time>.png (latency against offered rate).

Uses TEST_AMQP_URL / TEST_DATABASE_URL like the tests (a private vhost and throw-away databases on them).
Everything it sends goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy.engine import make_url  # noqa: E402

from bench import ceilings, figures  # noqa: E402
from bench.load import Poster, Sent, closed_loop, open_loop  # noqa: E402
from bench.probe import CpuMeter, QueueDepths, cpu_used, memory_of  # noqa: E402
from bench.report import print_table, write_plot  # noqa: E402
from bench.stack import (  # noqa: E402
    AGENCY,
    Deployment,
    LocalSetup,
    deployed,
    local_setup,
    partitions_unavailable,
    unread_settings,
)
from bench.stats import backlog_growing, percentiles  # noqa: E402
from shared.testing import referral_body  # noqa: E402
from support.infra import private_vhost, temporary_databases  # noqa: E402

WEB_CONCURRENCY = {"intake": 2, "advocacy": 1, "notifications": 1}
# The steps (25 ... 300/s), with lower ones first so that a slower build still finds its rate.
RATES = "5,10,15,25,50,100,150,200,300"
STEPS_BUDGET_S = 150  # no new step starts after this long in the steps phase (the run must stay < 5 min)
P99_LIMIT_MS = 1000.0
SCALE_OUT_BURST = 500  # referrals of each --scale-out burst (100 with --quick)
# Settings the services read that are recorded with the results when set (never a URL, header or secret).
RECORDED_PREFIXES = ("AMQP_", "OUTBOX_", "OTEL_BSP_", "OTEL_TRACES_SAMPLER", "WORKER_IN_API", "TRANSIENT_")


class Progress:
    """One status line, redrawn in place on a terminal (a line every few seconds otherwise)."""

    def __init__(self) -> None:
        self._tty = sys.stdout.isatty()
        self._text = lambda: ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def show(self, text_fn) -> None:
        self._text = text_fn

    def say(self, line: str) -> None:
        self._text = lambda: ""
        print(("\r\033[K" if self._tty else "") + line, flush=True)

    def _loop(self) -> None:
        every = 0.5 if self._tty else 5.0
        while not self._stop.wait(every):
            text = self._text()
            if text:
                print(f"\r\033[K{text}" if self._tty else text, end="" if self._tty else "\n", flush=True)


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def take(self, k: int) -> range:
        with self._lock:
            start, self.n = self.n, self.n + k
        return range(start, start + k)


def bodies(counter: Counter, k: int) -> list[bytes]:
    return [json.dumps(referral_body(seed=i)).encode() for i in counter.take(k)]


def latencies_ms(sent: list[Sent], deployment: Deployment) -> list[float]:
    out = []
    for s in sent:
        if s.ok:
            at = deployment.webhooks.arrival(s.referral_id)
            if at is not None:
                out.append((at - s.due) * 1000)
    return out


def outstanding(sent: list[Sent], deployment: Deployment) -> int:
    arrived = deployment.webhooks.arrived
    return sum(1 for s in list(sent) if s.ok and s.referral_id not in arrived)


def drain(sent: list[Sent], deployment: Deployment, timeout: float, *, quiet: float | None = None) -> float:
    """Wait until every accepted referral in `sent` has its webhook, or the time is up, or (with `quiet`)
    no webhook has come for `quiet` seconds; return the time."""
    deadline = time.monotonic() + timeout
    last_count, last_change = deployment.webhooks.count(), time.monotonic()
    while outstanding(sent, deployment) and time.monotonic() < deadline:
        time.sleep(0.1)
        if deployment.webhooks.count() != last_count:
            last_count, last_change = deployment.webhooks.count(), time.monotonic()
        elif quiet is not None and time.monotonic() - last_change > quiet:
            break
    return time.monotonic()


def idle_latency(deployment: Deployment, poster: Poster, counter: Counter, count: int, progress: Progress):
    sent: list[Sent] = []
    last = [0.0]
    progress.show(lambda: f"idle latency: {len(sent)}/{count} referrals, last {last[0]:.1f} ms")
    for body in bodies(counter, count):
        s = poster.post(body, Sent(due=time.monotonic()))
        sent.append(s)
        if s.ok:
            at = deployment.webhooks.wait_for_arrival(s.referral_id, timeout=10)
            if at is not None:
                last[0] = (at - s.due) * 1000
    found = latencies_ms(sent, deployment)
    result = {"count": count, "errors": sum(1 for s in sent if not s.ok), **percentiles(found)}
    progress.say(f"idle latency: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms over {count}")
    return result, sent


def sustained_step(
    deployment: Deployment, poster: Poster, counter: Counter, rate: int, seconds: float, progress: Progress
) -> tuple[dict, list[Sent]]:
    batch = bodies(counter, int(rate * seconds))
    sent: list[Sent] = []
    samples: list[dict] = []
    done = threading.Event()
    depths = QueueDepths(deployment.amqp_url, deployment.queues)

    def sample() -> None:
        started = time.monotonic()
        while not done.wait(1.0):
            samples.append(
                {
                    "t": round(time.monotonic() - started, 1),
                    "outstanding": outstanding(sent, deployment),
                    "queues": depths.read(),
                }  # fmt: skip
            )
        depths.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = max(16, min(160, rate))
    started = time.monotonic()
    progress.show(
        lambda: (
            f"sustained {rate}/s: {sum(1 for s in sent if s.answered)}/{len(batch)} posted, "
            f"{outstanding(sent, deployment)} awaiting their webhook, {time.monotonic() - started:.0f}s"
        )
    )
    open_loop(poster, batch, rate, threads=threads, into=sent)  # returns when the last POST is answered
    posting_ended = time.monotonic()
    done.set()
    sampler.join(5)
    in_window = sum(1 for s in sent if s.ok and (deployment.webhooks.arrival(s.referral_id) or 1e18) <= posting_ended)
    drained_at = drain(sent, deployment, timeout=20)
    found = latencies_ms(sent, deployment)
    ok = [s for s in sent if s.ok]
    trend = [s["outstanding"] for s in samples]
    result = {
        "offered_per_s": rate,
        "seconds": seconds,
        "posted": len(sent),
        "accepted": len(ok),
        "errors": len(sent) - len(ok),
        "achieved_per_s": round(in_window / (posting_ended - started), 1),
        **percentiles(found),
        "max_queue_depth": {q: max((s["queues"][q] for s in samples), default=0) for q in deployment.queues},
        "max_outstanding": max(trend, default=0),
        "backlog_growing": backlog_growing(trend, rate),
        "not_notified_after_drain": len(ok) - len(found),
        "drain_s": round(drained_at - posting_ended, 1),
        "samples": samples,
    }
    result["sustained"] = (
        result["p99_ms"] is not None and result["p99_ms"] < P99_LIMIT_MS and not result["backlog_growing"]
        and result["errors"] == 0 and result["not_notified_after_drain"] == 0
    )  # fmt: skip
    verdict = "ok" if result["sustained"] else "NOT sustained"
    progress.say(
        f"sustained {rate}/s: achieved {result['achieved_per_s']}/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max outstanding {result['max_outstanding']}, errors {result['errors']}: {verdict}"
    )
    return result, sent


def burst(deployment: Deployment, poster: Poster, counter: Counter, count: int, clients: int, progress: Progress):
    batch = bodies(counter, count)
    sent: list[Sent] = []
    started = time.monotonic()
    progress.show(lambda: f"burst: {len(sent) or '...'} posted, {time.monotonic() - started:.0f}s")
    sent.extend(closed_loop(poster, batch, clients=clients))
    posted = time.monotonic()
    drain(sent, deployment, timeout=90, quiet=10)
    arrivals = [deployment.webhooks.arrival(s.referral_id) for s in sent if s.ok]
    last = max((a for a in arrivals if a is not None), default=posted)
    result = {
        "count": count,
        "clients": clients,
        "errors": sum(1 for s in sent if not s.ok),
        "posting_s": round(posted - started, 2),
        "last_webhook_s": round(last - started, 2),
        "not_notified": sum(1 for a in arrivals if a is None),
        **percentiles(latencies_ms(sent, deployment)),
    }
    progress.say(
        f"burst of {count} from {clients} clients: posted in {result['posting_s']} s, last webhook at "
        f"{result['last_webhook_s']} s, errors {result['errors']}, not notified {result['not_notified']}"
    )
    return result, sent


def measured_burst(
    deployment: Deployment, poster: Poster, counter: Counter, count: int, clients: int, pg_admin_url: str,
    progress: Progress,
) -> tuple[dict, dict, list[Sent]]:  # fmt: skip
    """A burst with the CPU every process used during it, per referral: each gunicorn master with its workers,
    each worker, the PostgreSQL backends of the platform's databases, and the RabbitMQ node."""
    meter = CpuMeter(
        {name: p.popen.pid for name, p in deployment.processes.items()},
        [make_url(url).database for url in deployment.database_urls.values()],
        pg_admin_url,
    )
    cpu_before = meter.read()
    result, sent = burst(deployment, poster, counter, count, clients, progress)
    used = cpu_used(cpu_before, meter.read())
    per = {k: round(1000 * v / max(1, count), 2) for k, v in used.items()}
    cpu = {
        "seconds": used,
        "ms_per_referral": per,
        "platform_ms_per_referral": figures.platform_cpu_ms(per),
        "rabbitmq_ms_per_referral": figures.rabbitmq_cpu_ms(per),
        "total_ms_per_referral": round(sum(per.values()), 1),
    }
    return result, cpu, sent


def footprint(deployment: Deployment) -> dict:
    per_process = {name: memory_of(p.popen.pid) for name, p in deployment.processes.items()}
    total = {k: round(sum(m[k] for m in per_process.values()), 1) for k in ("rss_mib", "pss_mib")}
    instance = [m for name, m in per_process.items() if name in ("advocacy-api", "advocacy-worker")]
    advocacy = {k: round(sum(m[k] for m in instance), 1) for k in ("rss_mib", "pss_mib")}
    return {"processes": per_process, "advocacy_instance": advocacy, "total": total}


def run_ceilings(broker: str, database: str, workdir: Path, counter: Counter, progress: Progress) -> dict:
    found: dict = {}
    with private_vhost(broker) as amqp_url, temporary_databases(database) as new_database:
        progress.say("ceilings: broker hop ...")
        found["broker_hop"] = ceilings.broker_hop(amqp_url)
        found["publish_confirm_each"] = ceilings.publish_waiting_each(amqp_url)
        found["publish_in_flight"] = ceilings.publish_in_flight(amqp_url)
        progress.say("ceilings: bare consumer, one transaction per message, then batched ...")
        found["bare_consumer"] = ceilings.bare_consumer(amqp_url, new_database("bench_consumer"), 1000, database)
        found["batched_consumer"] = ceilings.batched_consumer(amqp_url, new_database("bench_batched"), 2000, database)
        progress.say("ceilings: bare Flask stage ...")
        found["flask_stage"] = ceilings.flask_stage(
            workdir, new_database("bench_stage"), bodies(counter, 2600),
            workers=WEB_CONCURRENCY["intake"], clients=8, on_start=lambda: None, pg_admin_url=database,
        )  # fmt: skip
    stage = found["flask_stage"]["req_per_s"]
    found["pipeline_estimate_per_s"] = figures.pipeline_estimate(stage, found["bare_consumer"]["msg_per_s"])
    found["pipeline_estimate_batched_per_s"] = figures.pipeline_estimate(stage, found["batched_consumer"]["msg_per_s"])
    found["cpu_floor_ms"] = figures.cpu_floor_ms(found)
    found["cpu_floor_batched_ms"] = figures.cpu_floor_ms(found, batched=True)
    progress.say(
        "ceilings: hop p50 {} ms; publish {}/s each-confirm, {}/s in flight; consumer {}/s, batched {}/s; "
        "Flask stage {}/s; pipeline estimate {}/s; CPU floor {} ms per referral".format(
            found["broker_hop"]["p50_ms"],
            found["publish_confirm_each"]["msg_per_s"],
            found["publish_in_flight"]["msg_per_s"],
            found["bare_consumer"]["msg_per_s"],
            found["batched_consumer"]["msg_per_s"],
            stage,
            found["pipeline_estimate_per_s"],
            found["cpu_floor_ms"],
        )  # fmt: skip
    )
    return found


def scale_out(
    setup: LocalSetup, counter: Counter, progress: Progress, *, count: int, extra_env: dict, in_api: tuple
) -> dict:
    """The same burst on a fresh platform with 1, then 2 workers of intake and notifications (AMQP_PARTITIONS),
    or why it could not run (a build without partitions, a broker without the consistent-hash exchange)."""
    reason = partitions_unavailable(setup.broker)
    if reason:
        progress.say(f"scale-out skipped: {reason}")
        return {"skipped": reason}
    found: dict = {"count": count, "runs": []}
    for workers in (1, 2):
        progress.say(f"scale-out: {workers} worker(s) per service, burst of {count} ...")
        try:
            found["runs"].append(_scaled_burst(setup, counter, progress, workers, count, extra_env, in_api))
        except RuntimeError as exc:  # a process of the platform exited (support.processes.Platform.check_alive)
            reason = f"with {workers} workers per service: {str(exc).splitlines()[0]} (logs in {setup.work})"
            progress.say(f"scale-out stopped: {reason}")
            return {**found, "skipped": reason}
    one, two = (run["per_s"] for run in found["runs"])
    found["two_over_one"] = round(two / one, 2) if one and two else None
    return found


def _scaled_burst(setup: LocalSetup, counter: Counter, progress: Progress, workers: int, count: int, extra_env: dict,
                  in_api: tuple) -> dict:  # fmt: skip
    broker, database, work, keys, token = setup
    with deployed(broker, database, keys, token, work, web_concurrency=WEB_CONCURRENCY, referrals=count,
                  extra_env=extra_env, worker_in_api=in_api, workers_per_service=workers) as deployment:  # fmt: skip
        poster = Poster(deployment.urls["intake"], {"Authorization": f"Bearer {token(*AGENCY)}"})
        result, cpu, sent = measured_burst(deployment, poster, counter, count, 20, database, progress)
        drain(sent, deployment, timeout=60, quiet=10)
        lost = sum(1 for s in sent if s.ok and deployment.webhooks.arrival(s.referral_id) is None)
    return {
        "workers_per_service": workers,
        "last_webhook_s": result["last_webhook_s"],
        "per_s": round(count / result["last_webhook_s"], 1) if result["last_webhook_s"] else None,
        "errors": result["errors"],
        "lost": lost,
        "cpu_ms_per_referral": cpu["platform_ms_per_referral"],
        "cpu_burst": cpu,
    }


def recorded_settings(extra_env: dict[str, str]) -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if k.startswith(RECORDED_PREFIXES) and "URL" not in k}
    return dict(sorted({**found, **extra_env}.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=RATES, help="offered rates per second, in order (default %(default)s)")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--idle", type=int, default=200, help="referrals sent one at a time")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients of the burst")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few referrals, short steps")
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. 'before')")
    parser.add_argument("--no-tracing", action="store_true", help="OTEL_SDK_DISABLED=true: what tracing costs")
    parser.add_argument(
        "--separate-workers",
        action="store_true",
        help="run advocacy's worker as its own process, not inside its API (WORKER_IN_API)",
    )
    parser.add_argument("--skip-ceilings", action="store_true", help="for quick A/B runs of the platform alone")
    parser.add_argument(
        "--workers-per-service", type=int, default=1, metavar="N",
        help="start intake's and notifications' workers N times each, with AMQP_PARTITIONS=N (default 1)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, metavar="N", help="AMQP_BATCH_SIZE for every service")
    parser.add_argument(
        "--scale-out", action="store_true",
        help=f"at the end, a burst of {SCALE_OUT_BURST} on a fresh platform with 1, then 2 workers per service",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.rates, args.step_seconds, args.idle, args.burst = "25,50", 5.0, 20, min(args.burst, 300)
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    setup = local_setup("bench-")
    broker, database, work, keys, token = setup
    extra_env = {"OTEL_SDK_DISABLED": "true"} if args.no_tracing else {}
    if args.batch_size is not None:
        extra_env["AMQP_BATCH_SIZE"] = str(args.batch_size)
    if args.workers_per_service > 1:
        reason = partitions_unavailable(broker)
        if reason:
            print(f"--workers-per-service {args.workers_per_service}: {reason}", file=sys.stderr)
            return 2

    began = time.monotonic()
    progress = Progress()
    counter = Counter()
    results: dict = {"started_at": datetime.now(UTC).isoformat(), "label": args.label, "machine": _machine()}
    results["tracing"] = not args.no_tracing
    results["settings"] = recorded_settings(extra_env)
    results["settings_not_read"] = unread_settings(results["settings"])
    for name in results["settings_not_read"]:
        progress.say(f"note: {name} is set but this build's shared.config.Settings does not read it (no effect)")
    results["ceilings"] = {} if args.skip_ceilings else run_ceilings(broker, database, work, counter, progress)
    total = args.idle + args.burst + int(sum(rates) * args.step_seconds)
    progress.say(f"starting the platform (logs in {work}) ...")
    in_api = () if args.separate_workers else ("advocacy",)
    with deployed(broker, database, keys, token, work, web_concurrency=WEB_CONCURRENCY, referrals=total,
                  extra_env=extra_env, worker_in_api=in_api,
                  workers_per_service=args.workers_per_service) as deployment:  # fmt: skip
        results["web_concurrency"] = WEB_CONCURRENCY
        results["worker_in_api"] = list(in_api)
        results["workers_per_service"] = args.workers_per_service
        results["advocates"] = deployment.advocates
        results["footprint_at_rest"] = footprint(deployment)
        poster = Poster(deployment.urls["intake"], {"Authorization": f"Bearer {token(*AGENCY)}"})
        everything: list[Sent] = []
        results["idle"], sent = idle_latency(deployment, poster, counter, args.idle, progress)
        everything += sent
        results["steps"] = []
        steps_began = time.monotonic()
        for rate in rates:
            if time.monotonic() - steps_began > STEPS_BUDGET_S:
                progress.say(f"time budget of the steps spent: {rate}/s and above not run")
                break
            step, sent = sustained_step(deployment, poster, counter, rate, args.step_seconds, progress)
            everything += sent
            results["steps"].append(step)
            if not step["sustained"]:
                break  # higher rates would only pile up more backlog
        passing = [s["offered_per_s"] for s in results["steps"] if s["sustained"]]
        results["sustainable_per_s"] = max(passing, default=0)
        results["burst"], results["cpu_burst"], sent = measured_burst(
            deployment, poster, counter, args.burst, args.clients, database, progress
        )
        everything += sent
        results["footprint_after_burst"] = footprint(deployment)
        progress.say("final check: every accepted referral allocated and notified ...")
        drain(everything, deployment, timeout=90, quiet=10)  # late is not lost: wait while webhooks still come
        accepted = [s for s in everything if s.ok]
        results["accepted"] = len(accepted)
        results["lost"] = sum(1 for s in accepted if deployment.webhooks.arrival(s.referral_id) is None)
        results["otlp_export_bytes"] = deployment.collector.bytes
    if args.scale_out:
        count = 100 if args.quick else SCALE_OUT_BURST
        results["scale_out"] = scale_out(setup, counter, progress, count=count, extra_env=extra_env, in_api=in_api)
    results["headline"] = figures.headline(results)
    results["ratios"] = figures.ratios(results)
    results["targets"] = figures.targets(results)
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    out = ROOT / "bench" / "results" / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    plotted = write_plot(results, out.with_suffix(".png"))
    progress.say("")
    print_table(results)
    written = [out.with_suffix(".json"), *([plotted] if plotted else [])]
    print("\nwritten: " + ", ".join(str(p.relative_to(ROOT)) for p in written))
    scaled = (results.get("scale_out") or {}).get("runs", [])
    return 0 if results["lost"] == 0 and all(run["lost"] == 0 for run in scaled) else 1


def _machine() -> dict:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load]}


if __name__ == "__main__":
    sys.exit(main())
