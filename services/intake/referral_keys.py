"""The keyed hashes that let intake recognise a referral again without keeping what would link it to a person.

A replayed POST is told from a different referral under the same reference by the hash of its body; a referral
recorded anonymously (an adult without NRM consent: the Duty to Notify pathway) keeps its external reference
only as a hash. Both are HMAC-SHA256 under a per-deployment secret (`DTN_HMAC_KEY`), never a plain SHA-256: a
plain hash of an identifying body, or of a force's case reference, is recomputed by anyone holding the body or
the reference, which would link the record back to the person; without the key it cannot be.

The body's hash is the HMAC of its SHA-256 digest (referrals.request_hash), so rows stored before the key
existed were converted in place (migration 0008_keyed_hashes).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

DEV_KEY = "dev-dtn-hmac-key-not-for-production"
MIN_KEY_LENGTH = 32


@dataclass(frozen=True)
class ReferralKeys:
    secret: str = DEV_KEY

    def request_hash(self, digest: str) -> str:
        """The stored hash of a body, from its SHA-256 `digest` (hex, 64 characters like the column)."""
        return self._mac("request", digest)

    def reference(self, org_id: str, external_reference: str) -> str:
        """What an anonymous referral keeps of its external reference: enough to answer a retry, no more."""
        return self._mac("reference", org_id, external_reference)

    def _mac(self, purpose: str, *parts: str) -> str:
        message = "\x00".join((purpose, *parts)).encode()
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
