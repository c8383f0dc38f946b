"""Publisher-confirm bookkeeping (shared.messaging.publisher.ConfirmTracker), without a broker."""

from __future__ import annotations

from shared.messaging.publisher import ConfirmTracker, Outcome


def test_each_ack_settles_the_message_its_delivery_tag_stands_for():
    tracker = ConfirmTracker()
    tags = [tracker.published(f"m{i}", f"row{i}") for i in range(3)]
    assert tags == [1, 2, 3]
    assert tracker.confirmed(2, multiple=False, ack=True) == [("row1", Outcome.SENT)]
    assert tracker.in_flight == 2


def test_a_multiple_ack_settles_every_message_up_to_its_tag_and_no_further():
    tracker = ConfirmTracker()
    for i in range(5):
        tracker.published(f"m{i}", f"row{i}")
    settled = tracker.confirmed(3, multiple=True, ack=True)
    assert settled == [("row0", Outcome.SENT), ("row1", Outcome.SENT), ("row2", Outcome.SENT)]
    assert tracker.in_flight == 2


def test_a_returned_message_is_unroutable_even_though_the_broker_acks_it():
    tracker = ConfirmTracker()
    for i in range(3):
        tracker.published(f"m{i}", f"row{i}")
    tracker.returned("m1")  # basic.return comes before the basic.ack of the same message
    settled = tracker.confirmed(3, multiple=True, ack=True)
    assert settled == [("row0", Outcome.SENT), ("row1", Outcome.UNROUTABLE), ("row2", Outcome.SENT)]


def test_a_nack_means_not_sent():
    tracker = ConfirmTracker()
    tracker.published("m0", "row0")
    tracker.published("m1", "row1")
    assert tracker.confirmed(2, multiple=True, ack=False) == [("row0", Outcome.NACKED), ("row1", Outcome.NACKED)]


def test_a_confirm_for_an_unknown_or_settled_tag_settles_nothing():
    tracker = ConfirmTracker()
    tracker.published("m0", "row0")
    tracker.confirmed(1, multiple=False, ack=True)
    assert tracker.confirmed(1, multiple=False, ack=True) == []
    assert tracker.confirmed(7, multiple=True, ack=True) == []


def test_messages_without_a_confirm_when_the_channel_goes_are_abandoned_not_settled():
    tracker = ConfirmTracker()
    tracker.published("m0", "row0")
    tracker.published("m1", "row1")
    tracker.returned("m1")
    assert tracker.abandon() == ["row0", "row1"]
    assert tracker.in_flight == 0
    tracker.published("m1", "row1-again")  # a later publish of the same message is judged afresh
    assert tracker.confirmed(3, multiple=False, ack=True) == [("row1-again", Outcome.SENT)]
