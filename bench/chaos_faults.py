"""The faults `make chaos` injects, one at a time, each recorded with when it began and ended.

`ended` is the moment the fault is over (the broker accepts connections again, the process is restarted, the
proxy to the database listens again, the receiver answers 200 again); `ready_s` is how long every affected
worker then took to be ready again (its queue has a consumer and, where it serves one, /readyz says 200).
A broker fault is marked `broker`: issue 11's rule is that every loop is back within 2 s of it (bench/chaos.py
checks it).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pika

from bench.chaos_stack import QUEUES, SERVICES, ChaosStack, wait_http
from shared.messaging import CONTENT_TYPE, EXCHANGE
from support.rabbit_node import Cluster, Node

POISON_PREFIX = "chaos-poison-"
POISON_BODIES = (b"{this is not json", b'{"specversion": "1.0", "id": "no-type-nor-subject"}')


@dataclass
class Fault:
    name: str
    started: float = 0.0
    ended: float = 0.0
    ready_s: float | None = None
    note: str = ""
    broker: bool = False  # a broker restart or node failure, whose recovery issue 11 bounds


def _vhost(stack: ChaosStack) -> str:
    return unquote(urlsplit(stack.broker_urls()[0]).path[1:]) or "/"


def broker_restart(stack: ChaosStack, fault: Fault, *, kill: bool) -> None:
    """A single node: stopped (rabbitmqctl stop, or SIGKILL) and started again with its data. A cluster: the
    node leading most of the services' queues, while the other two carry on."""
    fault.broker = True
    broker = stack.broker
    if isinstance(broker, Cluster):
        node = broker.busiest_leader(list(QUEUES.values()), _vhost(stack))
        fault.note = f"{node.short} led {_led_by(broker, node, stack)}"
        node.stop(kill=kill)
        fault.ended = time.monotonic()  # the cluster still serves: recovery is the failover
        fault.ready_s = stack.wait_ready()
        after = broker.leaders(_vhost(stack))
        node.start()
        fault.note += f"; leaders then on {sorted({after.get(q, '?').split('@')[0] for q in QUEUES.values()})}"
        return
    assert isinstance(broker, Node)
    broker.stop(kill=kill)
    time.sleep(1.0)
    broker.start()
    fault.ended = time.monotonic()
    fault.ready_s = stack.wait_ready()


def _led_by(cluster: Cluster, node: Node, stack: ChaosStack) -> int:
    leaders = cluster.leaders(_vhost(stack))
    return sum(1 for q in QUEUES.values() if leaders.get(q) == node.name)


def worker_kill(stack: ChaosStack, fault: Fault, service: str) -> None:
    stack.kill(f"{service}-worker", signal.SIGKILL)
    time.sleep(0.5)
    stack.launch(f"{service}-worker")
    fault.ended = time.monotonic()
    fault.ready_s = stack.wait_ready((service,))


def terminate_backends(stack: ChaosStack, fault: Fault) -> None:
    fault.note = f"{stack.terminate_backends()} backends"
    fault.ended = time.monotonic()
    fault.ready_s = stack.wait_ready()


def database_cut(stack: ChaosStack, fault: Fault, service: str, seconds: float) -> None:
    proxy = stack.proxies[service]
    proxy.close()
    time.sleep(seconds)
    proxy.open()
    fault.ended = time.monotonic()
    fault.ready_s = stack.wait_ready((service,))


def intake_api_down(stack: ChaosStack, fault: Fault, seconds: float) -> None:
    stack.kill("intake-api", signal.SIGTERM)
    time.sleep(seconds)
    stack.launch("intake-api")
    fault.ended = time.monotonic()
    fault.ready_s = wait_http(stack.urls["intake"], stack)


def receiver_fails(stack: ChaosStack, fault: Fault, seconds: float) -> None:
    with stack.receiver.changed:
        stack.receiver.failing = True
    time.sleep(seconds)
    with stack.receiver.changed:
        stack.receiver.failing = False
    fault.ended = time.monotonic()
    fault.note = f"{stack.receiver.refused} attempts refused so far"


def poison(stack: ChaosStack, fault: Fault, sent: set[str]) -> None:
    """Messages no handler can take, published as the platform to one key bound to each service's queue."""
    keys = _bound_keys(stack)
    for url in stack.broker_urls():
        try:
            with pika.BlockingConnection(pika.URLParameters(url)) as connection:
                channel = connection.channel()
                channel.confirm_delivery()
                for service in SERVICES:
                    for body in POISON_BODIES:
                        message_id = f"{POISON_PREFIX}{len(sent) + 1}"
                        props = pika.BasicProperties(message_id=message_id, content_type=CONTENT_TYPE, delivery_mode=2)
                        channel.basic_publish(EXCHANGE, keys[service], body, props, mandatory=True)
                        sent.add(message_id)
            break
        except pika.exceptions.AMQPConnectionError:
            continue
    fault.ended = time.monotonic()
    fault.note = f"{len(sent)} published"


def _bound_keys(stack: ChaosStack) -> dict[str, str]:
    out = stack.broker.ctl(
        "list_bindings", "-p", _vhost(stack), "source_name", "destination_name", "routing_key", "--no-table-headers"
    )
    keys: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == EXCHANGE:
            for service, queue in QUEUES.items():
                if parts[1] == queue and "*" not in parts[2] and "#" not in parts[2]:
                    keys.setdefault(service, parts[2])
    missing = set(SERVICES) - set(keys)
    if missing:
        raise RuntimeError(f"no binding found from {EXCHANGE} to the queues of {sorted(missing)}")
    return keys
