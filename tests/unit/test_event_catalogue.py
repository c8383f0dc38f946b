"""The event catalogue: every schema is free of free text and personal data, and `accept` refuses each way a
message can break its contract before any handler sees it."""

from __future__ import annotations

import msgspec
import pytest

from contracts.events import ADVOCACY, CATALOGUE, INTAKE_SERVICE, NOTIFICATIONS, PROVIDER_USER_PREFIX, VOICES
from shared.messaging.catalogue import Catalogue, EventData, Refused, Subscriptions, may_publish
from support.events import arriving, payload

pytestmark = pytest.mark.unit

# A field whose name says it could hold a person's identity, contact, story or a staff identity (any word of it).
PERSONAL_WORDS = {
    "name", "names", "alias", "aliases", "birth", "birthday", "dob", "email", "phone", "telephone", "mobile",
    "address", "postcode", "contact", "narrative", "note", "notes", "text", "comment", "comments",
    "description", "story", "officer", "staff", "sub", "author", "actor", "nrm_reference",
}  # fmt: skip


def personal(field: str) -> bool:
    words = field.lower().split("_")
    return bool(PERSONAL_WORDS & {*words, field.lower()})


# The one exception by design: the referrer is shown the allocated advocate's work name and email.
ALLOWED = {("offer.accepted", "advocate.name"), ("offer.accepted", "advocate.email")}


def _fields(schema: dict, components: dict, path: str = ""):
    """(path, schema) of every leaf of a JSON Schema, following $refs and arrays and unions."""
    if "$ref" in schema:
        yield from _fields(components[schema["$ref"].rsplit("/", 1)[1]], components, path)
    elif "anyOf" in schema:
        for option in schema["anyOf"]:
            yield from _fields(option, components, path)
    elif schema.get("type") == "object":
        for name, sub in schema.get("properties", {}).items():
            yield from _fields(sub, components, f"{path}.{name}" if path else name)
    elif schema.get("type") == "array":
        yield from _fields(schema["items"], components, path)
    else:
        yield path, schema


def _every_field():
    types = list(CATALOGUE)
    schemas, components = msgspec.json.schema_components([t.data for t in types])
    for entry, schema in zip(types, schemas, strict=True):
        for path, leaf in _fields(schema, components):
            yield entry.name, path, leaf


def test_every_string_in_every_event_is_an_id_a_code_a_date_or_bound_by_a_pattern():
    loose = [
        f"{name}: {path}"
        for name, path, leaf in _every_field()
        if leaf.get("type") == "string" and not ({"format", "enum", "pattern", "const"} & leaf.keys())
    ]
    assert loose == []


def test_no_event_has_a_field_that_could_hold_personal_data_or_a_staff_identity():
    found = {(name, path) for name, path, _ in _every_field() if personal(path.rsplit(".", 1)[-1])}
    assert found == ALLOWED


def test_the_walk_would_catch_a_name_and_free_text():
    # The two tests above are only as good as the walk: a made-up event with a name and a note fails both.
    catalogue = Catalogue(VOICES)

    @catalogue.define("person.described", publisher="intake", consumers=["notifications"], description="bad")
    class Described(EventData, frozen=True):
        referral_id: str
        first_name: str

    (schema,), components = msgspec.json.schema_components([Described])
    leaves = dict(_fields(schema, components))
    assert "format" not in leaves["first_name"] and "pattern" not in leaves["first_name"]
    assert personal("first_name") and personal("nrm_reference") and not personal("local_authority")


def test_a_handover_carries_no_birth_date_nor_anything_measured_from_one():
    fields = {path for name, path, _ in _every_field() if name == "case.handover"}
    assert not {f for f in fields if "birth" in f or "reference" in f}
    # Clocks and transitions measured from a birthday (turning 18) are recomputed by the receiver from the
    # referral it fetches: the schema has no room for them.
    (schema,), components = msgspec.json.schema_components([CATALOGUE["case.handover"].data])
    for part in ("HandedOverClock", "HandedOverTransition"):
        assert "turning_18" not in components[part]["properties"]["kind"]["enum"]


def test_every_provider_event_says_which_provider_it_speaks_for_and_each_addressed_event_whom():
    for entry in CATALOGUE:
        assert (entry.publisher == "provider") == (entry.speaks_for is not None), entry.name
        assert entry.consumers, entry.name
        if entry.addressed_by:
            assert entry.binding("charity-a") == f"{entry.name}.charity-a"


# --- the publisher rule -------------------------------------------------------------------------------


def test_only_a_providers_own_broker_user_or_a_trusted_one_may_speak_for_it():
    trusted, prefix = {"platform"}, PROVIDER_USER_PREFIX
    assert may_publish("advocacy-charity-a", "charity-a", trusted, prefix)
    assert may_publish("platform", "charity-a", trusted, prefix)
    assert not may_publish("advocacy-charity-b", "charity-a", trusted, prefix)
    assert not may_publish(None, "charity-a", trusted, prefix)
    # intake's events (speaking for no provider) only from a trusted user
    assert may_publish("platform", None, trusted)
    assert not may_publish("advocacy-charity-a", None, trusted)


def test_an_event_type_names_one_of_its_catalogues_voices_and_a_partys_says_whom_it_speaks_for():
    catalogue = Catalogue(VOICES)
    with pytest.raises(ValueError, match="none of the catalogue's voices"):

        @catalogue.define("thing.said", publisher="billing", consumers=[NOTIFICATIONS], description="bad")
        class Said(EventData, frozen=True):
            referral_id: str

    with pytest.raises(ValueError, match="says whom it speaks for"):

        @catalogue.define("thing.told", publisher="provider", consumers=[NOTIFICATIONS], description="bad")
        class Told(EventData, frozen=True):
            referral_id: str


# --- accept: each way to break the contract -------------------------------------------------------------

BREACHED = payload(
    "clock.breached",
    referral_id="r-1",
    case_id="c-1",
    provider_id="charity-a",
    clock_id="k-1",
    kind="recovery_period",
    status="breached",
    due_on="2026-03-01",
    notice_on="2026-02-22",
)
OFFERED = payload(
    "referral.offered",
    referral_id="r-1",
    offer_id="o-1",
    provider_id="charity-a",
    org_id="force-1",
    offered_at="2026-03-01T09:00:00+00:00",
    respond_by="2026-03-02T09:00:00+00:00",
    summary={"is_child": False, "pathway": "nrm", "region": "london"},
)
TRUSTED = {"intake-user"}


def test_a_message_that_keeps_its_contract_is_accepted_with_its_payload_typed():
    accepted = CATALOGUE.accept(arriving(BREACHED, publisher="advocacy-charity-a"), trusted=TRUSTED)
    assert accepted.data == BREACHED
    offered = CATALOGUE.accept(arriving(OFFERED, publisher="intake-user"), trusted=TRUSTED, address="charity-a")
    assert offered.data.summary.region == "london"


@pytest.mark.parametrize(
    ("event", "address", "reason"),
    [
        # a charity's user publishing about another charity's case (the fourth forgery)
        (arriving(BREACHED, publisher="advocacy-charity-b"), None, "may not publish clock.breached"),
        # intake's event from a charity's user, under a key its permissions allow
        (
            arriving(OFFERED, publisher="advocacy-charity-a", routing_key="case.handover.charity-a"),
            "charity-a",
            "routing key does not match",
        ),
        (arriving(OFFERED, publisher="advocacy-charity-a"), "charity-a", "may not publish referral.offered"),
        # the body's type is not the routing key's
        (arriving(BREACHED, publisher="advocacy-charity-a", type="referral.withdrawn"), None, "routing key"),
        (arriving(BREACHED, publisher="advocacy-charity-a", type="referral.nonsense"), None, "not an event type"),
        # addressed to another charity
        (arriving(OFFERED, publisher="intake-user"), "charity-b", "addressed to another"),
        (
            arriving(OFFERED, publisher="intake-user", routing_key="referral.offered.charity-b"),
            "charity-b",
            "routing key does not match",
        ),
        (arriving(BREACHED, publisher="advocacy-charity-a", subject="r-2"), None, "subject"),
        (arriving(BREACHED, publisher="advocacy-charity-a", source="/intake"), None, "source"),
        (arriving(BREACHED, publisher=None), None, "may not publish"),
    ],
)
def test_a_message_that_breaks_its_contract_is_refused_with_the_reason(event, address, reason):
    with pytest.raises(Refused, match=reason):
        CATALOGUE.accept(event, trusted=TRUSTED, address=address)


def test_a_payload_that_does_not_match_its_schema_is_refused_without_quoting_what_it_held():
    event = arriving(BREACHED, publisher="advocacy-charity-a")
    for change in ({"kind": "Jane Doe"}, {"note": "Jane Doe"}, {"due_on": "Jane Doe"}, {"case_id": None},
                   {"Jane Doe": 1}):  # fmt: skip
        forged = type(event)(**{**event.__dict__, "data": {**event.data, **change}})
        with pytest.raises(Refused, match="does not match its schema") as refused:
            CATALOGUE.accept(forged, trusted=TRUSTED)
        assert "Jane" not in str(refused.value)


# --- subscriptions: bindings come from handlers ---------------------------------------------------------


def test_bindings_are_derived_from_handlers_and_a_charitys_end_in_its_own_id():
    subs = Subscriptions(CATALOGUE, ADVOCACY, address="charity-a")
    for entry in CATALOGUE.consumed_by(ADVOCACY):
        subs.on(entry.data, lambda session, event: None)
    assert subs.complete() is subs
    assert subs.bindings and all(key.endswith(".charity-a") for key in subs.bindings)
    assert sorted(subs.bindings) == sorted(CATALOGUE.bindings(ADVOCACY, "charity-a"))  # what permissions allow


def test_a_consumer_without_a_handler_for_an_event_sent_to_it_or_with_one_it_is_not_sent_does_not_start():
    subs = Subscriptions(CATALOGUE, NOTIFICATIONS)
    with pytest.raises(ValueError, match="no handler for"):
        subs.complete()
    with pytest.raises(ValueError, match="not list notifications as a consumer"):
        subs.on(CATALOGUE["offer.accepted"].data, lambda session, event: None)
    with pytest.raises(ValueError, match="needs its own address"):
        Subscriptions(CATALOGUE, ADVOCACY).on(CATALOGUE["referral.offered"].data, lambda s, e: None).bindings  # noqa: B018
    assert {e.name for e in CATALOGUE.consumed_by(INTAKE_SERVICE)} >= {"offer.accepted", "case.handed_over"}


# --- data-subject rights: one request type for each kind of recipient, one confirmation from two voices ---

ERASURE = payload(
    "referral.erasure_requested",
    referral_id="r-1",
    erasure_id="e-1",
    recipient="provider.charity-a",
    requested_at="2026-12-01T09:00:00+00:00",
)


def test_an_erasure_request_is_addressed_to_a_charity_as_provider_id_and_to_notifications_by_name():
    entry = CATALOGUE["referral.erasure_requested"]
    assert entry.binding("charity-a", ADVOCACY) == "referral.erasure_requested.provider.charity-a"
    assert entry.binding(None, NOTIFICATIONS) == "referral.erasure_requested.notifications"
    accepted = CATALOGUE.accept(arriving(ERASURE, publisher="intake-user"), trusted=TRUSTED, address="charity-a",
                                consumer=ADVOCACY)  # fmt: skip
    assert accepted.data.recipient == "provider.charity-a"
    with pytest.raises(Refused, match="addressed to another"):
        CATALOGUE.accept(arriving(ERASURE, publisher="intake-user"), trusted=TRUSTED, address="charity-b",
                         consumer=ADVOCACY)  # fmt: skip
    to_notifications = msgspec.structs.replace(ERASURE, recipient="notifications")
    with pytest.raises(Refused, match="addressed to another"):  # notifications' request is not a charity's
        CATALOGUE.accept(arriving(to_notifications, publisher="intake-user"), trusted=TRUSTED, address="charity-a",
                         consumer=ADVOCACY)  # fmt: skip
    assert CATALOGUE.accept(arriving(to_notifications, publisher="intake-user"), trusted=TRUSTED,
                            consumer=NOTIFICATIONS).data.recipient == "notifications"  # fmt: skip


def test_an_erasure_is_confirmed_by_a_charity_in_its_own_voice_or_by_notifications_as_the_platform():
    done = {"referral_id": "r-1", "erasure_id": "e-1", "erased_at": "2026-12-01T09:01:00+00:00"}
    charity = payload("erasure.completed", recipient="provider.charity-a", provider_id="charity-a", **done)
    notifications = payload("erasure.completed", recipient="notifications", **done)
    assert CATALOGUE.accept(arriving(charity, publisher="advocacy-charity-a"), trusted=TRUSTED).source == (
        "/advocacy/charity-a"
    )
    assert CATALOGUE.accept(arriving(notifications, publisher="intake-user"), trusted=TRUSTED).source == (
        "/notifications"
    )
    with pytest.raises(Refused, match="may not publish erasure.completed for notifications"):
        CATALOGUE.accept(arriving(notifications, publisher="advocacy-charity-a"), trusted=TRUSTED)  # not a charity's
    with pytest.raises(Refused, match="source"):
        CATALOGUE.accept(arriving(notifications, publisher="intake-user", source="/advocacy"), trusted=TRUSTED)
    with pytest.raises(Refused, match="may not publish"):
        CATALOGUE.accept(arriving(charity, publisher="advocacy-charity-b"), trusted=TRUSTED)
    assert [e.name for e in CATALOGUE.published_by("notifications")] == ["erasure.completed"]
