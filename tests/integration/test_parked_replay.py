"""Parked messages keep what a replay needs, on the real broker with the restricted users add-provider.sh makes:
`referrals-parked replay` puts them back through the consumer's requeue path, where the publisher rule is held
to the original user_id (so a charity's forgery stays refused) and the inbox lets a replay take effect once;
and no charity can use that path to pass off a message as the platform's."""

from __future__ import annotations

import json
import re
import shutil
import uuid

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker
from sqlalchemy import func, select

from contracts.events import CATALOGUE, INTAKE_SERVICE, OfferAccepted
from shared.db import make_engine, make_session_factory
from shared.inbox import EventHandlers
from shared.messaging import CONTENT_TYPE, REQUEUE_EXCHANGE
from shared.messaging.catalogue import Subscriptions
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import Event
from shared.messaging.parked import main as parked
from shared.messaging.topology import QueueSpec, declare_queue
from support.amqp import drain, publish, running, wait_for_consumers
from support.events import answer, arriving
from support.kit import KIT, Base, Inbox, KitUnitOfWork, ThingHappened, thing
from support.waiting import wait_until

pytestmark = pytest.mark.skipif(not shutil.which("rabbitmqctl"), reason="needs rabbitmqctl for restricted users")

QUEUE = "intake"


@pytest.fixture
def sessions(fresh_database):
    engine = make_engine(fresh_database("kit"))
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def depth(url: str, queue: str) -> int:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        return connection.channel().queue_declare(queue, passive=True).method.message_count


def inbox_rows(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Inbox))


def test_a_parked_answer_replayed_passes_the_publisher_rule_as_its_charity_and_takes_effect_once(
    amqp_url, providers, sessions, monkeypatch, capsys
):
    (a_id, a_url), (b_id, b_url) = providers["a"], providers["b"]
    broken = {"now": True}
    effects: list[str] = []

    def record(uow, event: Event) -> None:
        if broken["now"]:
            raise RuntimeError("a bug, fixed later")
        effects.append(event.data.offer_id)

    accepted = Subscriptions(CATALOGUE, INTAKE_SERVICE).on(OfferAccepted, record)
    handlers = EventHandlers(QUEUE, lambda: KitUnitOfWork(sessions), accepted, trusted={"guest"})
    spec = QueueSpec(QUEUE, accepted.bindings, retry_delay_ms=100)
    consumer = Consumer(amqp_url, spec, handlers, max_attempts=3)
    offer_id = str(uuid.uuid4())
    good = answer("offer.accepted", str(uuid.uuid4()), offer_id, a_id)
    forged = answer("offer.accepted", str(uuid.uuid4()), str(uuid.uuid4()), a_id, publisher=f"advocacy-{b_id}")
    monkeypatch.setenv("AMQP_URL", amqp_url)
    with running(consumer.run):
        wait_for_consumers(amqp_url, QUEUE, timeout=10)
        publish(a_url, good)
        publish(a_url, good)  # delivered twice (a relay's retry): both park, both are replayed
        publish(b_url, forged)  # B answering for A: parked at once
        wait_until(lambda: depth(amqp_url, spec.parking_queue) == 3, timeout=30)

        [(properties, _)] = _peek(amqp_url, spec.parking_queue, good.id)
        headers = properties.headers
        assert headers["x-original-exchange"] == "referrals"
        assert headers["x-original-routing-key"] == "offer.accepted"
        assert headers["x-original-user-id"] == f"advocacy-{a_id}"
        assert headers["x-parked-reason"] == "failed 3 times: RuntimeError"
        assert headers["x-parked-attempts"] == 3
        assert headers["x-parked-at"].endswith("+00:00")

        assert parked(["list", QUEUE]) == 0
        listing = capsys.readouterr().out
        assert good.id in listing and forged.id in listing and "failed 3 times" in listing
        header, *rows = listing.splitlines()
        assert header.split("\t") == ["message_id", "type", "ids", "reason", "attempts", "parked_at", "age"]
        good_row = next(row.split("\t") for row in rows if row.startswith(good.id))
        assert f"offer_id={offer_id}" in good_row[2].split(",")  # what it is about, by id
        assert re.fullmatch(r"\d+[smhd](\d+[mh])?", good_row[6])  # its age, e.g. 12s
        assert "Advocate Synthetic" not in listing and "advocate@" not in listing  # never the body
        assert parked(["show", QUEUE, good.id]) == 0
        shown = capsys.readouterr().out
        assert f"data.offer_id: {offer_id}" in shown and "data.advocate: <dict>" in shown
        assert "Advocate Synthetic" not in shown

        broken["now"] = False
        assert parked(["replay", QUEUE, "--all"]) == 0
        assert capsys.readouterr().out.count("replayed") == 3
        wait_until(lambda: effects, timeout=20)
        reparked = drain(amqp_url, spec.parking_queue, expect=1, timeout=20)
    assert effects == [offer_id]  # two replays of one answer: one effect (the inbox)
    assert inbox_rows(sessions) == 1
    [(properties, _)] = reparked  # the forgery is still judged as charity B's, not as the replaying platform's
    assert properties.message_id == forged.id
    assert properties.headers["x-parked-reason"].startswith(f"rejected: publisher 'advocacy-{b_id}' may not publish")
    assert properties.headers["x-original-user-id"] == f"advocacy-{b_id}"

    # The operator gives up on the forgery: discarded, and who did it and why is recorded.
    _put_back(amqp_url, spec.parking_queue, reparked)
    assert parked(["discard", QUEUE, forged.id]) == 2
    assert "discard needs a reason" in capsys.readouterr().err
    assert parked(["discard", QUEUE, forged.id, "--reason", "forged answer from charity B, reported to B"]) == 0
    out, err = capsys.readouterr()
    assert f"discarded {forged.id} from {QUEUE}.parking: forged answer from charity B" in out
    record = json.loads(err.strip().splitlines()[-1])
    assert record["message"] == "parked message discarded" and record["message_id"] == forged.id
    assert (record["queue"], record["user"], record["type"]) == (f"{QUEUE}.parking", "guest", "offer.accepted")
    assert record["reason"] == "forged answer from charity B, reported to B" and record["time"].endswith("+00:00")
    assert depth(amqp_url, spec.parking_queue) == 0


def _put_back(url: str, queue: str, messages: list[tuple[pika.BasicProperties, bytes]]) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for p, body in messages:  # as parked (without user_id, which the broker holds to this connection's user)
            kept = pika.BasicProperties(
                message_id=p.message_id, type=p.type, content_type=p.content_type, headers=p.headers
            )
            channel.basic_publish("", queue, body, kept, mandatory=True)


def _peek(url: str, queue: str, message_id: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """The parked copies of `message_id`, left in the parking lot."""
    found = []
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        while (got := channel.basic_get(queue))[0] is not None:
            if got[1].message_id == message_id and not found:
                found.append((got[1], got[2]))
        # closing the connection returns every message taken
    return found


def _publish_to_requeue(url: str, routing_key: str, event: Event, headers: dict) -> None:
    user = pika.URLParameters(url).credentials.username
    with pika.BlockingConnection(pika.URLParameters(url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(
            message_id=event.id, type=event.type, content_type=CONTENT_TYPE, delivery_mode=2, user_id=user,
            headers=headers,
        )  # fmt: skip
        channel.basic_publish(REQUEUE_EXCHANGE, routing_key, event.to_json(), properties, mandatory=True)


PASSED_OFF = {"x-original-exchange": "referrals", "x-original-routing-key": "thing.happened"}


def test_a_charity_cannot_pass_a_message_off_as_the_platforms_through_a_requeue_path(amqp_url, providers, sessions):
    b_id, b_url = providers["b"]
    # Another queue's requeue route (intake's): the broker refuses it outright (topic permissions).
    with pytest.raises(ChannelClosedByBroker) as refused:
        _publish_to_requeue(b_url, QUEUE, arriving(thing()), {**PASSED_OFF, "x-original-user-id": "guest"})
    assert refused.value.reply_code == 403

    # Its own queue's route, which it may write: the consumer refuses the claim, since only the platform's
    # users may put a message back with its original publisher in the headers.
    effects: list[str] = []
    queue = f"advocacy.{b_id}"
    handled = Subscriptions(KIT, "kit").on(ThingHappened, lambda uow, e: effects.append(e.id))
    handlers = EventHandlers("kit", lambda: KitUnitOfWork(sessions), handled, trusted={"guest"})
    spec = QueueSpec(queue, ("thing.happened",), retry_delay_ms=100)
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        declare_queue(connection.channel(), spec)
    consumer = Consumer(amqp_url, spec, handlers, max_attempts=3)
    claim = arriving(thing())
    with running(consumer.run):
        wait_for_consumers(amqp_url, queue, timeout=10)
        _publish_to_requeue(b_url, queue, claim, {**PASSED_OFF, "x-original-user-id": "guest"})
        [(properties, _)] = drain(amqp_url, spec.parking_queue, expect=1, timeout=20)
    assert effects == []
    assert properties.message_id == claim.id
    reason = properties.headers["x-parked-reason"]
    assert reason == f"rejected: thing.happened was put back on this queue by 'advocacy-{b_id}', not by the platform"


def test_the_command_says_what_is_wrong_and_the_fix(amqp_url, monkeypatch, capsys):
    monkeypatch.delenv("AMQP_URL", raising=False)
    assert parked([]) == 2
    assert "usage: referrals-parked" in capsys.readouterr().err
    assert parked(["peek", QUEUE]) == 2
    assert "unknown command 'peek'. Fix: use one of list, show, replay, discard" in capsys.readouterr().err
    assert parked(["replay", QUEUE]) == 2
    assert "needs a message id or --all" in capsys.readouterr().err
    assert parked(["list", QUEUE]) == 2
    assert "AMQP_URL is not set. Fix: export AMQP_URL=" in capsys.readouterr().err
    monkeypatch.setenv("AMQP_URL", amqp_url)
    assert parked(["list", "no-such-queue"]) == 2
    assert "no queue no-such-queue.parking" in capsys.readouterr().err
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        declare_queue(connection.channel(), QueueSpec("kit.empty", ("thing.happened",)))
    assert parked(["discard", "kit.empty", str(uuid.uuid4()), "--reason=gone"]) == 1
    assert "no parked message" in capsys.readouterr().err
