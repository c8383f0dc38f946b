"""The webhook dispatcher's lanes join in as there is work: a commit's wake rouses one idle lane, not every lane
(each woken lane runs a claim, and one Event set per commit sent all of them to find nothing)."""

from __future__ import annotations

import threading
import time

from sqlalchemy.orm import sessionmaker

from services.notifications import dispatcher as module
from services.notifications.config import WebhookSettings
from services.notifications.dispatcher import WebhookDispatcher
from support.waiting import wait_until


def test_a_wake_before_a_lane_idles_is_not_lost(monkeypatch):
    monkeypatch.setattr(module, "IDLE_WAIT_SECONDS", 30)  # a lost wake would wait out the poll: 30 s
    dispatcher = WebhookDispatcher(sessionmaker(), WebhookSettings())
    dispatcher.wake()  # every lane busy: the wake waits for the first lane to go idle
    idled = threading.Thread(target=dispatcher._idle, daemon=True)
    idled.start()
    idled.join(timeout=5)
    assert not idled.is_alive()


def test_one_wake_rouses_one_of_the_idle_lanes(monkeypatch):
    monkeypatch.setattr(module, "IDLE_WAIT_SECONDS", 30)
    dispatcher = WebhookDispatcher(sessionmaker(), WebhookSettings())
    roused: list[int] = []
    lanes = [threading.Thread(target=lambda n=n: (dispatcher._idle(), roused.append(n)), daemon=True) for n in range(4)]
    for lane in lanes:
        lane.start()
    time.sleep(0.3)  # all four waiting
    assert roused == []
    dispatcher.wake()
    wait_until(lambda: roused, timeout=5)
    time.sleep(0.3)  # room for a second lane to wake, were the wake broadcast
    assert len(roused) == 1
    for _ in range(3):  # the rest, one wake each
        dispatcher.wake()
        time.sleep(0.05)
    for lane in lanes:
        lane.join(timeout=5)
    assert sorted(roused) == [0, 1, 2, 3]
