"""A charity's broker permissions on the `referrals` topic exchange, from the platform's event catalogue:

    python -m contracts.permissions <provider-id>

prints two regular expressions, one per line, for `rabbitmqctl set_topic_permissions` (deploy/rabbitmq/
add-provider.sh): the routing keys the provider may publish (write), then those it may bind (read).
"""

from __future__ import annotations

import sys

from contracts.events import ADVOCACY, CATALOGUE, PROVIDER
from shared.messaging.permissions import PROVIDER_ID, bind_pattern, publish_pattern


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not PROVIDER_ID.match(argv[0]):
        print("usage: python -m contracts.permissions <provider-id> (2-63 of a-z, 0-9, -)", file=sys.stderr)
        return 2
    print(publish_pattern(CATALOGUE, PROVIDER))
    print(bind_pattern(CATALOGUE, argv[0], ADVOCACY))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
