"""Run the platform's processes (gunicorn APIs and workers) against the test broker and databases."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pika
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Platform:
    """Starts processes with a common environment; stops every one it started, by PID."""

    workdir: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    # Each process's /metrics, as Prometheus scrapes it: process name -> (service, "api" | "worker", host:port).
    targets: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], extra_env: dict[str, str]) -> Process:
        log = self.workdir / f"{name}.log"
        env = {**os.environ, **self.env, **extra_env, "OTEL_SERVICE_NAME": name, "PYTHONUNBUFFERED": "1"}
        handle = log.open("wb")
        popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def start_api(self, service: str, extra_env: dict[str, str], *, name: str | None = None) -> str:
        port = free_port()
        app = f"services.{service}.app:create_app()"
        argv = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                "--workers", "1", "--threads", "4", app]  # fmt: skip
        process = self.start(f"{name or service}-api", argv, {**extra_env, "PORT": str(port)})
        url = f"http://127.0.0.1:{port}"
        self._wait_ready(process, url)
        self.urls[name or service] = url
        self.targets[process.name] = (service, "api", f"127.0.0.1:{port}")
        return url

    def start_worker(self, service: str, extra_env: dict[str, str], *, name: str | None = None) -> Process:
        """A worker process; with a WORKER_PORT of its own (its /healthz, /readyz and /metrics) unless given one."""
        env = dict(extra_env)
        if "WORKER_PORT" not in {**self.env, **env}:
            env["WORKER_PORT"] = str(free_port())
        argv = [str(BIN / "python"), "-m", f"services.{service}.worker"]
        process = self.start(name or f"{service}-worker", argv, env)
        port = {**self.env, **env}["WORKER_PORT"]
        if port != "0":
            self.targets[process.name] = (service, "worker", f"127.0.0.1:{port}")
        return process

    def _wait_ready(self, process: Process, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited early:\n{process.output()[-3000:]}")
            try:
                if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or slow on its first request
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{process.name} not ready after {timeout}s:\n{process.output()[-3000:]}")

    def wait_for_consumers(self, amqp_url: str, queues: list[str], timeout: float = 30) -> None:
        """Workers are ready when each of their queues has a consumer."""
        deadline = time.monotonic() + timeout
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            for queue in queues:
                while True:
                    self.check_alive()
                    channel = connection.channel()
                    try:
                        if channel.queue_declare(queue, passive=True).method.consumer_count > 0:
                            channel.close()
                            break
                        channel.close()
                    except pika.exceptions.ChannelClosedByBroker:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no consumer on {queue} after {timeout}s")
                    time.sleep(0.2)
        finally:
            connection.close()

    def check_alive(self) -> None:
        for process in self.processes:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited ({process.popen.returncode}):\n{process.output()[-3000:]}")

    def logs(self) -> str:
        return "\n".join(p.output() for p in self.processes)

    def stop(self, process: Process | None = None, sig: int = signal.SIGTERM) -> None:
        targets = [process] if process else list(self.processes)
        for p in targets:
            if p.popen.poll() is None:
                p.popen.send_signal(sig)
        for p in targets:
            try:
                p.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(timeout=5)
            if process:
                self.processes.remove(p)
