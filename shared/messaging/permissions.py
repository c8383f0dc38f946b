"""A charity's broker permissions on the `referrals` topic exchange, generated from the event catalogue, so a
provider event added to the catalogue is allowed by construction and nothing else is.

    python -m shared.messaging.permissions <provider-id>

prints two regular expressions, one per line, for `rabbitmqctl set_topic_permissions` (deploy/rabbitmq/
add-provider.sh): the routing keys the provider may publish (write), then those it may bind (read).
"""

from __future__ import annotations

import re
import sys

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


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not PROVIDER_ID.match(argv[0]):
        print("usage: python -m shared.messaging.permissions <provider-id> (2-63 of a-z, 0-9, -)", file=sys.stderr)
        return 2
    from contracts.events import ADVOCACY, CATALOGUE, PROVIDER

    print(publish_pattern(CATALOGUE, PROVIDER))
    print(bind_pattern(CATALOGUE, argv[0], ADVOCACY))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
