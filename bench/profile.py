"""Where the time goes under load: py-spy on every process of the platform while referrals arrive.

    make bench-profile RATE=25 PROFILE_SECONDS=15   (or: .venv/bin/python -m bench.profile --rate 25 --seconds 15)

Starts the platform as `make bench` does, sends referrals at a steady open-loop rate, and records each
process with py-spy (sampling, so the processes run at full speed; gunicorn masters with their workers).
Writes py-spy's collapsed stacks per process under bench/results/profile-<time>/ (speedscope and
flamegraph.pl read them) and prints the heaviest frames of each: wall-clock samples including idle, and
samples holding the GIL (Python code running: the closest py-spy comes to CPU time).
py-spy needs ptrace rights (root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench.load import Poster, Sent, open_loop  # noqa: E402
from bench.run import Counter, bodies  # noqa: E402
from bench.stack import AGENCY, deployed, local_setup  # noqa: E402

WEB_CONCURRENCY = {"intake": 2, "advocacy": 1, "notifications": 1}


def heaviest(collapsed: Path, top: int) -> list[tuple[str, float]]:
    """Frames by the share of samples they appear in (inclusive), from py-spy's collapsed format."""
    totals: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        for frame in set(stack.split(";")):
            totals[frame] += n
    return [(frame, 100 * n / max(samples, 1)) for frame, n in totals.most_common(top)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    broker, database, work, keys, token = local_setup("bench-profile-")

    out = ROOT / "bench" / "results" / f"profile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True)
    count = int(args.rate * args.seconds)
    counter = Counter()
    with deployed(broker, database, keys, token, work, web_concurrency=WEB_CONCURRENCY, referrals=count) as d:
        poster = Poster(d.urls["intake"], {"Authorization": f"Bearer {token(*AGENCY)}"})
        open_loop(poster, bodies(counter, 20), 10, threads=4, into=[])  # warm up every code path
        time.sleep(2)
        recorders = []
        for name, process in d.processes.items():
            # wall: every sample, waiting included; gil: only samples holding the GIL, i.e. Python code
            # running (waits in psycopg or on a socket release the GIL), the closest py-spy has to CPU.
            for mode, extra in (("wall", ["--idle"]), ("gil", ["--gil"])):
                stem = out / f"{name}-{mode}"
                argv = [spy, "record", "--pid", str(process.popen.pid), "--subprocesses", "--rate", "200",
                        "--duration", str(int(args.seconds)), "--format", "raw", "--output", f"{stem}.txt",
                        "--nonblocking", *extra]  # fmt: skip
                recorders.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # noqa: S603
        time.sleep(1)
        sent: list[Sent] = []
        open_loop(poster, bodies(counter, count), args.rate, threads=max(16, int(args.rate)), into=sent)
        for recorder in recorders:
            recorder.wait(timeout=args.seconds + 60)
        arrived = sum(1 for s in sent if s.ok and d.webhooks.arrival(s.referral_id) is not None)
        print(f"{count} referrals at {args.rate}/s; {arrived} notified while recording")
    report = {}
    for path in sorted(out.glob("*.txt")):
        report[path.stem] = heaviest(path, args.top)
        print(f"\n== {path.stem}")
        for frame, share in report[path.stem]:
            print(f"{share:5.1f}%  {frame}")
    (out / "summary.json").write_text(json.dumps(report, indent=2))
    print(f"\nwritten under {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
