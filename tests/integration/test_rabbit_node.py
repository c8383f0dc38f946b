"""A private RabbitMQ node (tests/support/rabbit_node.py) is a broker of its own: it takes messages, keeps
persistent ones in quorum queues across a graceful restart and a SIGKILL, honours its own config, and leaves
the shared node on 5672 alone."""

from __future__ import annotations

import pika
import pytest

from support.infra import private_vhost
from support.rabbit_node import available, private_node

pytestmark = pytest.mark.skipif(available() is not None, reason=f"no private RabbitMQ node: {available()}")


def _publish(url: str, queue: str, bodies: list[bytes]) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True)


def _take(url: str, queue: str) -> list[bytes]:
    taken = []
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
            taken.append(message[2])
    return taken


def test_a_private_node_keeps_its_messages_across_a_restart_and_a_crash():
    with private_node("itest", config={"consumer_timeout": "5000"}) as node:
        assert node.amqp_port != 5672 and node.pid
        assert node.ctl("eval", "application:get_env(rabbit, consumer_timeout).").strip() == "{ok,5000}"

        _publish(node.amqp_url, "kept", [b"one", b"two"])
        assert _take(node.amqp_url, "kept") == [b"one", b"two"]

        _publish(node.amqp_url, "kept", [b"before-restart"])
        node.stop()
        assert not node.accepts_amqp()
        node.start()
        _publish(node.amqp_url, "kept", [b"before-crash"])
        first_pid = node.pid
        node.stop(kill=True)
        node.start()
        assert node.pid != first_pid
        assert _take(node.amqp_url, "kept") == [b"before-restart", b"before-crash"]

        with private_vhost(node.amqp_url, node) as vhost_url:
            assert vhost_url.endswith("/test-" + vhost_url.rsplit("/test-", 1)[1])
            _publish(vhost_url, "in-vhost", [b"x"])
            assert "in-vhost" not in node.ctl("list_queues", "name")  # only in the private vhost
            assert _take(vhost_url, "in-vhost") == [b"x"]
        assert "test-" not in node.ctl("list_vhosts")
    assert not node.running()
