"""Private RabbitMQ nodes on this machine, for tests and `make chaos`: started, restarted, SIGKILLed and
clustered without touching the shared broker on 127.0.0.1:5672.

The shared node's files would leak into a private one: /etc/rabbitmq/rabbitmq.conf binds 5672 and
/etc/rabbitmq/rabbitmq-env.conf names the node rabbit@localhost. A private node therefore gets its own config
file, env file, enabled-plugins file (none: no management listener), node name, AMQP and distribution ports,
mnesia and log directories, and a HOME holding its own .erlang.cookie (shared by the nodes of one cluster,
which is what lets them join). /usr/sbin/rabbitmqctl switches to the rabbitmq user and drops the environment,
so the scripts under /usr/lib/rabbitmq/bin are called directly. Every node started is stopped by its PID.

    with private_node("solo", config={"consumer_timeout": "5000"}) as node:
        node.amqp_url; node.ctl("list_queues"); node.stop(kill=True); node.start()

    with private_cluster(3) as cluster:
        cluster.amqp_url              # the three nodes' URLs, comma-separated (AMQP_URL accepts a list)
        cluster.leader_of("intake")   # the node leading a quorum queue; .stop(kill=True) to fail it over
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika

SBIN = Path(os.environ.get("RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin"))
HOST = "localhost"  # the shared node's env file names rabbit@localhost; distribution listens on loopback
LOOPBACK_ONLY = "-kernel inet_dist_use_interface {127,0,0,1}"


def available() -> str | None:
    """Why a private node cannot be started here, or None if it can."""
    if not (SBIN / "rabbitmq-server").exists():
        return f"no RabbitMQ server scripts in {SBIN} (set RABBITMQ_SBIN)"
    if shutil.which("erl") is None:
        return "no Erlang runtime (erl) on PATH"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_dist_port() -> int:
    """A distribution port p with p+10000 also free: the CLI tools take theirs from RABBITMQ_DIST_PORT+10000."""
    for _ in range(50):
        port = _free_port()
        if port + 10010 < 65535:
            with contextlib.suppress(OSError), socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
                return port
    raise RuntimeError("no free distribution port pair found")


@dataclass
class Node:
    """One private node. `start()` after `stop()` restarts it with the same data (queues, messages, users)."""

    short: str
    base: Path
    home: Path
    amqp_port: int
    dist_port: int
    config: dict[str, str]
    start_timeout: float = 60.0
    _popen: subprocess.Popen | None = field(default=None, repr=False)
    pid: int | None = None  # the Erlang VM's (beam.smp) PID while running

    @property
    def name(self) -> str:
        return f"{self.short}@{HOST}"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def log_file(self) -> Path:
        return self.base / "log" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.base / f"{self.short}.pid"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": LOOPBACK_ONLY,
        }

    def _write_files(self) -> None:
        (self.base / "log").mkdir(parents=True, exist_ok=True)
        settings = {
            "listeners.tcp.default": str(self.amqp_port),
            "loopback_users": "none",
            "default_user": "guest",
            "default_pass": "guest",
            "log.console": "false",
            "log.file.level": "info",
            **self.config,
        }
        (self.base / "rabbitmq.conf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.base / "rabbitmq-env.conf").write_text(f"NODENAME={self.name}\nERL_EPMD_ADDRESS=127.0.0.1\n")
        (self.base / "enabled_plugins").write_text("[].\n")

    def start(self) -> Node:
        """Start the node (again) and return once it accepts AMQP connections."""
        if self.running():
            return self
        self._write_files()
        self.pid_file.unlink(missing_ok=True)
        out = (self.base / "log" / "server.out").open("ab")
        self._popen = subprocess.Popen(
            [str(SBIN / "rabbitmq-server")], env=self.env(), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, cwd=self.base, start_new_session=True,
        )  # fmt: skip
        out.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self._popen.returncode}) while starting:\n{self.tail()}")
            if self.pid is None and self.pid_file.exists():
                with contextlib.suppress(ValueError):
                    self.pid = int(self.pid_file.read_text().strip())
            if self.pid is not None and self.accepts_amqp():
                return self
            time.sleep(0.25)
        self.stop(kill=True)
        raise RuntimeError(f"{self.name} did not accept AMQP within {self.start_timeout:.0f} s:\n{self.tail()}")

    def accepts_amqp(self) -> bool:
        try:
            params = pika.URLParameters(self.amqp_url)
            params.socket_timeout = 2
            params.connection_attempts = 1
            pika.BlockingConnection(params).close()
            return True
        except Exception:  # not listening yet, or booting (the broker closes the socket)
            return False

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, kill: bool = False, timeout: float = 60.0) -> None:
        """Stop gracefully (`rabbitmqctl -n NAME stop`), or with `kill` by SIGKILL to the VM: a crash."""
        if not self.running():
            self._popen, self.pid = None, None
            return
        assert self._popen is not None
        if kill and self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        else:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.ctl("stop", timeout=timeout)
        try:
            self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # the script outlived the VM, or the VM ignored `stop`
            for pid in (self.pid, self._popen.pid):
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            self._popen.wait(timeout=10)
        self._popen, self.pid = None, None

    def ctl(self, *args: str, tool: str = "rabbitmqctl", timeout: float = 60.0) -> str:
        """Run `rabbitmqctl -n NAME ARGS` (or another CLI tool: rabbitmq-queues, rabbitmq-diagnostics)."""
        result = subprocess.run(
            [str(SBIN / tool), "-n", self.name, "-q", *args], env=self.env(), capture_output=True, text=True,
            timeout=timeout, cwd=self.base,
        )  # fmt: skip
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, [tool, *args], result.stdout, result.stderr)
        return result.stdout

    def tail(self, lines: int = 40) -> str:
        found = []
        for path in (self.base / "log" / "server.out", self.log_file):
            if path.exists():
                found.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(found)


def _cookie_home(root: Path) -> Path:
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16).upper())
    cookie.chmod(0o400)
    return home


def _new_node(short: str, root: Path, home: Path, amqp_port: int | None, config: dict[str, str] | None) -> Node:
    base = root / short
    base.mkdir(parents=True, exist_ok=True)
    return Node(short, base, home, amqp_port or _free_port(), _free_dist_port(), dict(config or {}))


def _unique(name: str) -> str:
    return f"{re.sub(r'[^a-zA-Z0-9_-]', '-', name)}-{secrets.token_hex(3)}"


@contextlib.contextmanager
def private_node(
    name: str, *, amqp_port: int | None = None, config: dict[str, str] | None = None, keep: bool = False
) -> Iterator[Node]:
    """A started private node named `<name>-<random>@localhost`; stopped (SIGKILL if it will not stop) and its
    files removed afterwards, unless `keep` (then its directory is left for reading its log)."""
    reason = available()
    if reason:
        raise RuntimeError(f"cannot start a private RabbitMQ node: {reason}")
    root = Path(tempfile.mkdtemp(prefix=f"rmq-{name}-"))
    node = _new_node(_unique(name), root, _cookie_home(root), amqp_port, config)
    try:
        yield node.start()
    finally:
        _stop_quietly(node)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _stop_quietly(node: Node) -> None:
    try:
        node.stop(timeout=30)
    except Exception:
        node.stop(kill=True)


@dataclass
class Cluster:
    nodes: list[Node]

    @property
    def amqp_url(self) -> str:
        """Every node's URL, comma-separated, as AMQP_URL takes them."""
        return ",".join(n.amqp_url for n in self.nodes)

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.running()]

    def ctl(self, *args: str, tool: str = "rabbitmqctl") -> str:
        """A CLI command on any running node."""
        return self.running()[0].ctl(*args, tool=tool)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def leaders(self, vhost: str = "/") -> dict[str, str]:
        """Each quorum queue's leader node name (`rabbitmqctl list_queues -p VHOST name leader`)."""
        out = self.ctl("list_queues", "-p", vhost, "name", "leader", "--no-table-headers")
        pairs = (line.split("\t") for line in out.splitlines() if "\t" in line)
        return {queue.strip(): leader.strip() for queue, leader in pairs}

    def leader_of(self, queue: str, vhost: str = "/") -> Node:
        return self.node(self.leaders(vhost)[queue])

    def busiest_leader(self, queues: list[str], vhost: str = "/") -> Node:
        """The node that leads most of `queues` (the one whose loss moves the most leaders)."""
        leaders = self.leaders(vhost)
        counts: dict[str, int] = {}
        for queue in queues:
            if queue in leaders:
                counts[leaders[queue]] = counts.get(leaders[queue], 0) + 1
        return self.node(max(counts, key=lambda name: counts[name]))


@contextlib.contextmanager
def private_cluster(
    n: int = 3, *, name: str = "cluster", config: dict[str, str] | None = None, keep: bool = False
) -> Iterator[Cluster]:
    """`n` private nodes sharing one cookie, joined to the first (stop_app, join_cluster, start_app). Quorum
    queues declared on it spread their replicas over all `n` (the default initial group size is every node)."""
    reason = available()
    if reason:
        raise RuntimeError(f"cannot start a private RabbitMQ cluster: {reason}")
    root = Path(tempfile.mkdtemp(prefix=f"rmq-{name}-"))
    home = _cookie_home(root)
    prefix = _unique(name)
    nodes = [_new_node(f"{prefix}-{i + 1}", root, home, None, config) for i in range(n)]
    cluster = Cluster(nodes)
    try:
        for node in nodes:
            node.start()
        first = nodes[0]
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        _wait_for_members(first, n)
        for node in nodes[1:]:
            deadline = time.monotonic() + 30
            while not node.accepts_amqp() and time.monotonic() < deadline:
                time.sleep(0.25)
        yield cluster
    finally:
        for node in reversed(nodes):
            _stop_quietly(node)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _wait_for_members(node: Node, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.SubprocessError):
            out = node.ctl("eval", "length(rabbit_nodes:all_running()).")
            if out.strip() == str(n):
                return
        time.sleep(0.5)
    raise RuntimeError(f"the cluster did not reach {n} running nodes within {timeout} s:\n{node.tail()}")
