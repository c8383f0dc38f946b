"""The outbox relay: publishes committed outbox rows, marks each sent only after the broker confirms it.

A crash between confirm and commit re-publishes the row: consumers' inboxes make that harmless. Three parts,
each readable on its own:

- `store`: the SQL. Claim due rows (locked while their confirms are outstanding), mark them sent or give
  them their next attempt, hold back a row the broker refused, prune sent rows.
- `transport`: one broker connection with publisher confirms and `mandatory`, its I/O loop, and the
  producer span of each publish in the trace context stored on its row.
- `loop`: `OutboxRelay`, which wakes on commit (LISTEN/NOTIFY or `wake()`) or by polling, runs a batch
  through store and transport, and reconnects with backoff.

How it keeps up (bench/README.md has the profiles): a batch of rows is published with all their confirms in
flight, and the batch's transaction (which holds the rows' locks) commits once every confirm of the batch
is in (shared.messaging.publisher).
"""

from shared.messaging.relay.loop import OutboxRelay
from shared.messaging.relay.store import RETENTION
from shared.messaging.relay.transport import ACCESS_REFUSED, CONFIRM_TIMEOUT_S

__all__ = ["ACCESS_REFUSED", "CONFIRM_TIMEOUT_S", "RETENTION", "OutboxRelay"]
