"""A party's broker permissions on a topic exchange, generated from an event catalogue, so an event added to
the catalogue is allowed by construction and nothing else is: the routing keys the party may publish (write)
and those it may bind (read), as regular expressions for `rabbitmqctl set_topic_permissions`. The platform's
command that prints a charity's is `python -m contracts.permissions` (deploy/rabbitmq/add-provider.sh).
"""

from __future__ import annotations

import re

from shared.messaging.catalogue import Catalogue

PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")  # as add-provider.sh and contracts.events.ProviderId
ANY_PROVIDER = "[a-z0-9][a-z0-9-]{1,62}"


def _literal(key: str) -> str:
    return key.replace(".", r"\.")  # event names and provider ids hold only [a-z0-9_.-]


def _alternatives(keys: list[str]) -> str:
    return "^(" + "|".join(keys) + ")$"


def publish_pattern(catalogue: Catalogue, voice: str) -> str:
    """Every event in the party's `voice`: its name, or for one addressed to a party (e.g. a handover to
    another provider), its name and any party id. Which party an event speaks for is the consumers' check
    (the publisher rule)."""
    keys = [_literal(e.name) + (rf"\.{ANY_PROVIDER}" if e.addressed_by else "") for e in catalogue.published_by(voice)]
    return _alternatives(sorted(keys))


def bind_pattern(catalogue: Catalogue, provider_id: str, consumer: str) -> str:
    """What a party's queue may bind: the events addressed to it alone (and any sent to every such party)."""
    keys = [_literal(key) for key in catalogue.bindings(consumer, provider_id)]
    return _alternatives(sorted(keys))
