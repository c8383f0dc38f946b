"""The Idempotency-Key logic (shared.idempotency) over a fake store: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.idempotency import (
    IN_FLIGHT,
    TTL,
    Claimed,
    MalformedKey,
    Refused,
    Stored,
    StoredResponse,
    claim,
    fingerprint,
    parse_key,
    scoped_id,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CREATED = StoredResponse(201, {"Location": "/v1/referrals/r-1"}, b'{"id": "r-1"}')


class FakeKeyStore:
    """The KeyStore protocol over a dict, with the same conditions as the SQL one."""

    def __init__(self):
        self.rows: dict[str, Stored] = {}

    def insert(self, id, key, fingerprint, now):
        if id in self.rows:
            return False
        self.rows[id] = Stored(fingerprint, now, None)
        return True

    def find(self, id):
        return self.rows.get(id)

    def retake(self, id, fingerprint, now):
        row = self.rows.get(id)
        stale = row is not None and (
            row.created_at <= now - TTL or (row.response is None and row.created_at <= now - IN_FLIGHT)
        )
        if stale:
            self.rows[id] = Stored(fingerprint, now, None)
        return stale

    def complete(self, id, response):
        row = self.rows[id]
        if row.response is None:
            self.rows[id] = Stored(row.fingerprint, row.created_at, response)

    def release(self, id):
        if id in self.rows and self.rows[id].response is None:
            del self.rows[id]

    def prune(self, now):
        self.rows = {k: v for k, v in self.rows.items() if v.created_at > now - TTL}


BODY = fingerprint(b'{"a": 1, "b": [1, 2]}')


def test_the_first_request_claims_the_key_and_a_retry_with_the_same_body_gets_its_response_back():
    store = FakeKeyStore()
    assert claim(store, "k", "key-1", BODY, NOW) == Claimed("k")
    store.complete("k", CREATED)
    assert claim(store, "k", "key-1", BODY, NOW + timedelta(hours=23)) == CREATED


def test_the_same_key_with_another_body_is_422():
    store = FakeKeyStore()
    claim(store, "k", "key-1", BODY, NOW)
    store.complete("k", CREATED)
    refused = claim(store, "k", "key-1", fingerprint(b'{"a": 2}'), NOW)
    assert isinstance(refused, Refused) and refused.status == 422
    assert "different request body" in refused.message


def test_a_key_whose_first_request_is_in_flight_is_409_until_it_is_abandoned():
    store = FakeKeyStore()
    claim(store, "k", "key-1", BODY, NOW)
    in_flight = claim(store, "k", "key-1", BODY, NOW + timedelta(seconds=1))
    assert isinstance(in_flight, Refused) and in_flight.status == 409 and "still being processed" in in_flight.message
    assert claim(store, "k", "key-1", BODY, NOW + IN_FLIGHT) == Claimed("k")  # its process died with it


def test_a_released_key_runs_again_as_new():
    store = FakeKeyStore()
    claim(store, "k", "key-1", BODY, NOW)
    store.release("k")  # the first request was refused (4xx): nothing was done
    assert claim(store, "k", "key-1", fingerprint(b'{"a": 3}'), NOW) == Claimed("k")


def test_a_key_older_than_24_hours_behaves_as_new_even_with_another_body_and_pruning_drops_it():
    store = FakeKeyStore()
    claim(store, "k", "key-1", BODY, NOW)
    store.complete("k", CREATED)
    later = NOW + TTL
    assert claim(store, "k", "key-1", fingerprint(b"other"), later) == Claimed("k")
    store.prune(later + TTL)
    assert store.rows == {}


def test_the_fingerprint_is_over_canonical_json_or_else_the_raw_bytes():
    assert fingerprint(b'{"b": [1, 2], "a": 1}') == fingerprint(b'{\n  "a": 1,\n  "b": [1,2]\n}') == BODY
    assert fingerprint(b'{"a": 1, "b": [2, 1]}') != BODY
    assert fingerprint(b"outcome=positive&stage=rg") != fingerprint(b"stage=rg&outcome=positive")
    assert fingerprint(b"") == fingerprint(b"")


def test_keys_are_scoped_to_the_caller_method_and_path():
    one = scoped_id("met-police\nclient-1", "POST", "/v1/referrals", "key-1")
    assert one != scoped_id("west-yorkshire\nclient-1", "POST", "/v1/referrals", "key-1")
    assert one != scoped_id("met-police\nclient-1", "POST", "/v1/referrals/r-1/withdrawal", "key-1")
    assert one == scoped_id("met-police\nclient-1", "POST", "/v1/referrals", "key-1")


def test_a_key_is_a_structured_string_or_a_bare_token():
    assert parse_key('"8e03978e-40d5-43e8-bc93-6894a57f9324"') == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert parse_key("retry-1") == "retry-1"
    assert parse_key("x" * 255) == "x" * 255


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "empty"),
        ('""', "empty"),
        ("   ", "empty"),
        ("x" * 256, "at most 255"),
        ("key\x01", "control"),
        ("key\x7f", "control"),
        ("clé", "ASCII"),
    ],
)
def test_a_malformed_key_says_what_is_wrong(raw, says):
    with pytest.raises(MalformedKey, match=says):
        parse_key(raw)
