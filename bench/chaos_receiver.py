"""The agency's webhook endpoint in `make chaos`: records every webhook it is sent, and can be made to fail.

While failing it answers 503, as an agency's endpoint does during its own outage. Each webhook is recorded with
its `webhook-id` (Standard Webhooks: the same id when a message is retried), so the report can tell a resend
of one webhook (at-least-once, expected after a fault) from a second webhook about the same fact (a
duplicate effect).
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from support.receivers import LocalServer


@dataclass(frozen=True)
class Hook:
    webhook_id: str
    type: str
    referral_id: str
    at: float


class Receiver(LocalServer):
    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self.refused = 0
        self.failing = False
        super().__init__(self._on_post, keep_alive=True)

    @staticmethod
    def _on_post(owner: Receiver, path, headers, body: bytes) -> tuple[int, bytes]:
        at = time.monotonic()
        with owner.changed:
            if owner.failing:
                owner.refused += 1
                return 503, b""
            event = json.loads(body)
            referral_id = str((event.get("data") or {}).get("referral_id"))
            lowered = {k.lower(): v for k, v in headers.items()}
            owner.hooks.append(Hook(lowered.get("webhook-id", ""), event.get("type", ""), referral_id, at))
        return 200, b""

    def first_arrival(self, event_type: str) -> dict[str, float]:
        """When each referral's first `event_type` webhook arrived."""
        found: dict[str, float] = {}
        with self.changed:
            for hook in self.hooks:
                if hook.type == event_type:
                    found.setdefault(hook.referral_id, hook.at)
        return found

    def resends(self) -> int:
        """Webhooks received again with a webhook-id already received (the same webhook, retried)."""
        with self.changed:
            counts = Counter(h.webhook_id for h in self.hooks)
        return sum(n - 1 for n in counts.values())

    def duplicate_effects(self) -> int:
        """(referral, event type) pairs told more than once under different webhook-ids: two webhooks about one
        fact, which an agency deduplicating by webhook-id would act on twice."""
        ids: dict[tuple[str, str], set[str]] = defaultdict(set)
        with self.changed:
            for hook in self.hooks:
                ids[(hook.referral_id, hook.type)].add(hook.webhook_id)
        return sum(1 for found in ids.values() if len(found) > 1)
