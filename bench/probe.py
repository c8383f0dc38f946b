"""What the benchmark watches besides latency: queue depths and the memory of every process it started."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import pika


class QueueDepths:
    """Messages ready in each queue (a passive declare, which changes nothing), a partitioned queue's summed
    over its partitions. One connection, made and used in the thread that calls it (pika connections are
    not thread-safe)."""

    def __init__(self, amqp_url: str, queues: Mapping[str, tuple[str, ...]]):
        self._url = amqp_url
        self._queues = queues
        self._connection: pika.BlockingConnection | None = None

    def read(self) -> dict[str, int]:
        if self._connection is None or not self._connection.is_open:
            self._connection = pika.BlockingConnection(pika.URLParameters(self._url))
        channel = self._connection.channel()
        try:
            return {
                name: sum(channel.queue_declare(q, passive=True).method.message_count for q in parts)
                for name, parts in self._queues.items()
            }
        finally:
            with contextlib.suppress(Exception):
                channel.close()

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(child) for child in text)
    return found


def _kib(pid: int, path: str, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def memory_of(pid: int) -> dict[str, float]:
    """RSS and PSS (MiB) of a process and all its descendants (a gunicorn master and its workers).

    RSS counts pages shared between a gunicorn master and its forked workers once per process; PSS divides
    them among the sharers, so the sum of PSS is what the processes really cost together."""
    pids, i = [pid], 0
    while i < len(pids):
        pids.extend(_children(pids[i]))
        i += 1
    rss = sum(_kib(p, "status", "VmRSS") for p in pids)
    pss = sum(_kib(p, "smaps_rollup", "Pss") for p in pids)
    return {"processes": len(pids), "rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1)}


def tree(pid: int) -> list[int]:
    """A process and all its descendants (a gunicorn master and its workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        pids.extend(_children(pids[i]))
        i += 1
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (not their reaped children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / ticks


class CpuMeter:
    """CPU seconds per platform process (with a gunicorn master's workers), per PostgreSQL backend serving
    the platform's databases, and of the RabbitMQ node (shared with anything else using the broker)."""

    def __init__(self, processes: dict[str, int], database_names: list[str], pg_admin_url: str):
        self._processes = processes
        self._databases = database_names
        self._pg_url = pg_admin_url

    def _postgres_pids(self) -> list[int]:
        from sqlalchemy import create_engine, text

        if not self._databases:
            return []
        engine = create_engine(self._pg_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = ANY(:names)"), {"names": self._databases}
                )
                return [row[0] for row in rows]
        finally:
            engine.dispose()

    @staticmethod
    def _rabbitmq_pids() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if (entry / "comm").read_text().strip() == "beam.smp":
                        found.append(int(entry.name))
        return found

    def read(self) -> dict[str, float]:
        found = {name: cpu_seconds(tree(pid)) for name, pid in self._processes.items()}
        found["postgres (platform databases)"] = cpu_seconds(self._postgres_pids())
        found["rabbitmq (whole node)"] = cpu_seconds(self._rabbitmq_pids())
        return found


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}
