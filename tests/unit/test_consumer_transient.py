"""Which handler failures the consumer waits out in place (transient) and which spend the message's attempts
(poison); the backoff it waits with; where a copy on a queue's own paths says it came from. No I/O."""

from __future__ import annotations

import dataclasses

import pytest
import requests
from pika.exceptions import ChannelClosedByBroker, StreamLostError
from sqlalchemy.exc import IntegrityError, OperationalError

from services.advocacy.casework.intake_client import IntakeClient
from shared.messaging import EXCHANGE, REQUEUE_EXCHANGE, RETRY_EXCHANGE
from shared.messaging.catalogue import Refused, envelope
from shared.messaging.consumer import BROKER_CHANNEL, DATABASE, transient_dependency
from shared.messaging.envelope import Event
from shared.messaging.errors import DependencyUnavailable, PermanentError
from shared.messaging.topology import attempts_so_far, origin
from shared.retry import TRANSIENT
from support.kit import KIT, ThingHappened


def database_down() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def test_an_unreachable_database_is_transient():
    assert transient_dependency(database_down()) == DATABASE


def test_another_services_api_briefly_down_is_transient_and_named():
    assert transient_dependency(DependencyUnavailable("intake", "answered 503")) == "intake"


def test_an_error_raised_while_handling_an_unreachable_database_is_transient():
    try:
        try:
            raise database_down()
        except OperationalError as exc:
            raise RuntimeError("could not load the case") from exc
    except RuntimeError as wrapped:
        assert transient_dependency(wrapped) == DATABASE


def test_a_broker_channel_closing_under_the_handler_is_transient():
    assert transient_dependency(StreamLostError("connection reset")) == BROKER_CHANNEL
    assert transient_dependency(ChannelClosedByBroker(406, "delivery acknowledgement timed out")) == BROKER_CHANNEL


def test_a_refused_permission_is_not_waited_out():
    assert transient_dependency(ChannelClosedByBroker(403, "ACCESS_REFUSED")) is None


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("a bug in the handler"),
        KeyError("case"),
        IntegrityError("INSERT", {}, Exception("duplicate key")),
        PermanentError("contradicts the record"),
        requests.HTTPError("404 Not Found"),
    ],
)
def test_ordinary_failures_are_poison_and_spend_attempts(error):
    assert transient_dependency(error) is None


def test_the_transient_backoff_starts_at_a_second_doubles_to_thirty_then_stays():
    assert [TRANSIENT.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert TRANSIENT.delay(10_000) == 30  # a day of retries neither overflows nor grows


class FakeTokens:
    def get(self) -> str:
        return "token"


class FakeHttp:
    """requests.Session's get, answering with a status or raising what a down intake makes requests raise."""

    def __init__(self, outcome):
        self.outcome = outcome

    def get(self, url, headers, timeout):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        response = requests.Response()
        response.status_code = self.outcome
        response._content = b'{"id": "r-1"}'
        return response


def intake_answering(outcome) -> IntakeClient:
    client = IntakeClient("http://intake.invalid", FakeTokens())  # type: ignore[arg-type]
    client._http = FakeHttp(outcome)  # type: ignore[assignment]
    return client


@pytest.mark.parametrize("outcome", [requests.ConnectionError("refused"), requests.ReadTimeout("slow"), 502, 503])
def test_intake_unreachable_slow_or_5xx_is_intake_unavailable(outcome):
    with pytest.raises(DependencyUnavailable) as raised:
        intake_answering(outcome).fetch_referral("r-1")
    assert raised.value.dependency == "intake"
    assert transient_dependency(raised.value) == "intake"


@pytest.mark.parametrize("status", [403, 404])
def test_intake_answering_4xx_is_an_ordinary_failure(status):
    with pytest.raises(requests.HTTPError) as raised:
        intake_answering(status).fetch_referral("r-1")
    assert transient_dependency(raised.value) is None


def test_intake_answering_200_is_the_referral():
    assert intake_answering(200).fetch_referral("r-1") == {"id": "r-1"}


ORIGINAL = {
    "x-original-exchange": "referrals",
    "x-original-routing-key": "offer.accepted",
    "x-original-user-id": "advocacy-charity-a",
}


def test_a_copy_on_the_requeue_path_says_who_first_published_it_and_who_put_it_back():
    found = origin(REQUEUE_EXCHANGE, "intake", "platform-ops", ORIGINAL, "intake")
    assert (found.exchange, found.routing_key, found.user_id) == ("referrals", "offer.accepted", "advocacy-charity-a")
    assert found.relayed_by == "platform-ops"


def test_a_copy_from_the_holding_queue_says_the_same():
    found = origin(RETRY_EXCHANGE, "intake.holding", "guest", ORIGINAL, "intake")
    assert found.user_id == "advocacy-charity-a" and found.relayed_by == "guest"


def test_original_headers_on_the_main_exchange_are_whatever_a_publisher_wrote_and_ignored():
    found = origin(EXCHANGE, "offer.accepted", "advocacy-charity-b", ORIGINAL, "intake")
    assert (found.user_id, found.relayed_by) == ("advocacy-charity-b", None)


def test_a_retried_message_keeps_its_publisher_and_its_first_routing_key():
    death = {"queue": "intake", "exchange": "referrals", "routing-keys": [b"offer.accepted"], "count": 2}
    deaths = {"x-death": [death]}
    found = origin(REQUEUE_EXCHANGE, "intake", "advocacy-charity-a", deaths, "intake")
    assert (found.exchange, found.routing_key, found.user_id, found.relayed_by) == (
        "referrals",
        "offer.accepted",
        "advocacy-charity-a",
        None,
    )


def test_attempts_count_failures_in_the_queue_and_its_holding_queue_not_the_retry_queues_expiries():
    deaths = [
        {"queue": "intake", "reason": "rejected", "count": 2},
        {"queue": "intake.retry", "reason": "expired", "count": 3},
        {"queue": "intake.holding", "reason": "rejected", "count": 1},
    ]
    assert attempts_so_far({"x-death": deaths}, "intake") == 3


def kit_event(**overrides) -> Event:
    event, key = envelope(ThingHappened())
    wire = Event.from_json(event.to_json())
    return dataclasses.replace(wire, **{"publisher": "guest", "routing_key": key, **overrides})


def test_a_copy_the_platform_put_back_is_judged_by_its_original_publisher():
    accepted = KIT.accept(kit_event(relayed_by="guest"), trusted={"guest"})
    assert accepted.type == "thing.happened"
    with pytest.raises(Refused, match="may not publish"):
        KIT.accept(kit_event(publisher="advocacy-b", relayed_by="guest"), trusted={"guest"})


def test_a_copy_put_back_by_anyone_but_the_platform_is_refused():
    with pytest.raises(Refused, match="put back on this queue by 'advocacy-b', not by the platform"):
        KIT.accept(kit_event(relayed_by="advocacy-b"), trusted={"guest"})
    with pytest.raises(Refused, match="not by the platform"):
        KIT.accept(kit_event(relayed_by=""), trusted={"guest"})  # no user_id on the copy
