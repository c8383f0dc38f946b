"""A referral accepted while RabbitMQ is unreachable is still 201; its events go out once the broker is back."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select

from services.intake.models import Outbox
from shared.messaging.relay import OutboxRelay
from shared.testing import referral_body
from support.amqp import declare_tap, drain, running
from support.tcp_proxy import TcpProxy

POLICE = ("met-police", "police", "referrals:write referrals:read")


def test_a_referral_accepted_while_the_broker_is_unreachable_goes_out_when_it_is_back(intake, auth_header, amqp_url):
    app, sessions = intake
    declare_tap(amqp_url, "agency.tap", "referral.received")
    parts = urlsplit(amqp_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5672)  # closed: the broker cannot be reached through it
    unreachable = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"))
    relay = OutboxRelay(unreachable, sessions, Outbox, name="intake", poll_interval=0.02)

    with running(relay.run):
        response = app.test_client().post("/v1/referrals", json=referral_body(), headers=auth_header(*POLICE))
        assert response.status_code == 201
        assert drain(amqp_url, "agency.tap", expect=1, timeout=1.5) == []
        with sessions() as session:
            assert session.scalars(select(Outbox.sent_at)).all() == [None, None]  # received + escalated

        proxy.open()  # the broker is back
        got = drain(amqp_url, "agency.tap", expect=1, timeout=30)
        proxy.close()

    assert len(got) == 1
    assert json.loads(got[0][1])["data"]["referral_id"] == response.get_json()["id"]
    assert got[0][0].message_id == json.loads(got[0][1])["id"]
