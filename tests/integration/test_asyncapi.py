"""Each service's API serves its AsyncAPI 3.0.0 document at /asyncapi.json, generated from the event catalogue,
and it validates against the AsyncAPI project's own JSON Schema (@asyncapi/specs, pinned in tests/contracts/
and installed by `make test`). The schema's $refs resolve from the bundle itself: nothing is fetched."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from contracts.events import CATALOGUE
from shared.config import Settings
from shared.messaging.asyncapi import document

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests/contracts/node_modules/@asyncapi/specs/schemas/3.0.0.json"
INSTALL = "npm ci --prefix tests/contracts --no-audit --no-fund"
# The spec's rule for component keys; its JSON Schema lets other keys through (patternProperties only).
KEY = re.compile(r"^[a-zA-Z0-9\.\-_]+$")
SERVICES = ["intake", "advocacy", "notifications"]


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    if not SPEC.exists():
        pytest.fail(f"{SPEC.relative_to(ROOT)} is missing: run `make test`, or `{INSTALL}`")
    spec = json.loads(SPEC.read_text())
    # Every subschema sits under `definitions` with its own $id: crawling registers them under those ids, and
    # a registry without a `retrieve` function raises on any other URI rather than fetching it.
    registry = (Resource.from_contents(spec) @ Registry()).crawl()
    return Draft7Validator(spec, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def problems(validator: Draft7Validator, doc: dict[str, Any]) -> list[str]:
    """What the AsyncAPI schema refuses, plus the spec's rules it cannot express: component keys, references
    that resolve inside the document, and channel parameters that appear in their channel's address."""
    # best_match descends into oneOf's alternatives: "'publish' is not one of ['send', 'receive']", not the object.
    found = [f"{e.json_path}: {e.message[:200]}" for e in map(best_match, ([e] for e in validator.iter_errors(doc)))]
    found += [f"{kind} key {key!r}" for kind, part in doc["components"].items() for key in part if not KEY.match(key)]
    for ref in refs(doc):
        try:
            resolve(doc, ref)
        except (KeyError, IndexError, TypeError):
            found.append(f"$ref {ref} does not resolve")
    for name, channel in doc["channels"].items():
        unused = [p for p in channel.get("parameters", {}) if f"{{{p}}}" not in channel["address"]]
        found += [f"channel {name}: parameter {p} is not in its address" for p in unused]
    return found


@pytest.fixture
def intake_app(intake):
    return intake[0]


# The document touches no table: these two need a database to be built on, not a migrated one.
@pytest.fixture
def advocacy_app(fresh_database, dev_keys):
    from services.advocacy.app import create_app

    env = {
        "ADVOCACY_DATABASE_URL": fresh_database("advocacy"),
        "PROVIDER_ID": "demo-charity",
        "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1]),
    }
    app = create_app(Settings.from_env("advocacy", env=env))
    yield app
    app.extensions["advocacy"].engine.dispose()


@pytest.fixture
def notifications_app(fresh_database, dev_keys):
    from services.notifications.app import create_app

    env = {"NOTIFICATIONS_DATABASE_URL": fresh_database("notifications"), "AUTH_PUBLIC_KEY_FILE": str(dev_keys[1])}
    return create_app(Settings.from_env("notifications", env=env))


@pytest.fixture
def served(request):
    def get(service: str) -> dict[str, Any]:
        response = request.getfixturevalue(f"{service}_app").test_client().get("/asyncapi.json")  # no token
        assert response.status_code == 200 and response.mimetype == "application/json"
        return response.get_json()

    return get


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(action, event type) -> the operation's channel."""
    found = {}
    for operation in doc["operations"].values():
        channel = resolve(doc, operation["channel"]["$ref"])
        for ref in operation["messages"]:
            message = resolve(doc, resolve(doc, ref["$ref"])["$ref"])  # via the channel's own message
            found[operation["action"], message["name"]] = channel
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_serves_an_asyncapi_document_that_validates(service, served, validator):
    doc = served(service)
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"] == f"{service} events"
    assert doc["defaultContentType"] == "application/cloudevents+json"
    assert problems(validator, doc) == []


def broken(change):
    doc = json.loads(json.dumps(document(CATALOGUE, "intake", title="intake events", version="1.0.0")))
    change(doc)
    return doc


def first(mapping: dict[str, Any]) -> Any:
    return next(iter(mapping.values()))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: first(d["operations"]).update(action="publish"), id="AsyncAPI 2's action"),
        pytest.param(lambda d: first(d["channels"])["bindings"]["amqp"].update({"is": "exchange!"}), id="bad binding"),
        pytest.param(lambda d: first(d["components"]["schemas"]).update(type="objekt"), id="bad payload schema"),
        pytest.param(lambda d: d["components"]["schemas"].update({"Referral Offered": {}}), id="bad component key"),
        pytest.param(lambda d: first(d["operations"])["channel"].update({"$ref": "#/channels/x"}), id="dangling ref"),
        pytest.param(lambda d: d["channels"]["referral.offered"].update(address="offered"), id="unused parameter"),
    ],
)
def test_a_broken_document_is_refused_by_the_same_checks(change, validator):
    assert problems(validator, broken(lambda d: None)) == []  # the unbroken original passes
    assert problems(validator, broken(change)) != []


def test_intake_sends_offers_addressed_to_a_provider_and_receives_acceptances(served):
    doc = served("intake")
    offered = operations(doc)["send", "referral.offered"]
    assert offered["address"] == "referral.offered.{provider_id}" and list(offered["parameters"]) == ["provider_id"]
    assert operations(doc)["receive", "offer.accepted"]["address"] == "offer.accepted"


def test_advocacy_receives_handovers_and_sends_acceptances(served):
    found = operations(served("advocacy"))
    assert found["receive", "case.handover"]["address"] == "case.handover.{to_provider_id}"
    assert ("send", "case.handover") in found  # the handing-over charity's side of the same channel
    assert found["send", "offer.accepted"]["address"] == "offer.accepted"


def test_notifications_receives_clock_breaches_and_sends_only_its_erasure_confirmations(served):
    found = operations(served("notifications"))
    assert ("receive", "clock.breached") in found and ("receive", "referral.erasure_requested") in found
    assert {name for action, name in found if action == "send"} == {"erasure.completed"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_channel_states_its_publisher_rule_and_consumers(service, served):
    for name, channel in served(service)["channels"].items():
        entry, text = CATALOGUE[name], channel["description"]
        assert entry.description in text and "Publisher rule:" in text
        if entry.publisher == "intake":
            assert "only intake publishes it" in text
        else:
            assert f"`advocacy-<{entry.speaks_for}>`" in text and "trusted platform user" in text
        if entry.addressed_by:
            assert f"`{entry.addressed_by}`" in text and "binds it" in text
        assert f"Consumed by: {', '.join(entry.consumers)}." in text


@pytest.mark.parametrize("service", SERVICES)
def test_every_payload_schema_is_a_valid_json_schema(service, served):
    doc = served(service)
    schemas = doc["components"]["schemas"]
    for message in doc["components"]["messages"].values():
        assert resolve(doc, message["payload"]["properties"]["data"]["$ref"]) in schemas.values()
    for schema in schemas.values():
        Draft7Validator.check_schema(schema)
