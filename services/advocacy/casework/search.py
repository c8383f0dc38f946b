"""Search a charity's cases by name or reference over a blind index, never over the names themselves.

A name is cut into tokens (casefolded, accents stripped by Unicode NFKD, split on anything not a letter) and
each token is stored only as its keyed HMAC-SHA256 (`SEARCH_INDEX_KEY`), one row per case and token in
`case_search_tokens`. A search hashes the words typed the same way and finds the cases holding every one of
them, so it keeps working when the protection issue encrypts the referral's names, and the table alone tells
nobody a name (a dictionary attack needs the key). A reference (the referrer's external reference, the NRM
reference) is one token of its own kind, matched exactly as typed (trimmed, casefolded).

Written when a case opens, and when a case handed over to us arrives with its referral (Casework._open).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from typing import Any

from services.advocacy.models import Case
from services.advocacy.uow import AdvocacyUnitOfWork

NAME, REFERENCE = "name", "reference"
_NOT_LETTERS = re.compile(r"[\W\d_]+")  # whatever is not a letter, in any script
MAX_TERMS = 10  # words of one search; more is not a name
DEV_KEY = "dev-search-index-key-not-for-production"


def name_tokens(text: str) -> list[str]:
    """'Ana-María  O’Neil' -> ['ana', 'maria', 'o', 'neil']: casefolded, accents stripped, split on non-letters."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return [token for token in _NOT_LETTERS.split(plain) if token]


def _reference(text: str) -> str:
    return text.strip().casefold()


class SearchIndex:
    def __init__(self, key: str = DEV_KEY):
        self._key = key.encode()

    def digest(self, kind: str, token: str) -> str:
        return hmac.new(self._key, f"{kind}:{token}".encode(), hashlib.sha256).hexdigest()

    def digests_of(self, referral: dict[str, Any]) -> set[str]:
        """The blind tokens of a disclosed referral: the subject's names and aliases, its external reference."""
        subject = referral.get("subject") or {}
        names = [subject.get("given_name"), subject.get("family_name"), *(subject.get("aliases") or [])]
        digests = {self.digest(NAME, t) for name in names if isinstance(name, str) for t in name_tokens(name)}
        reference = referral.get("external_reference")
        if isinstance(reference, str) and reference.strip():
            digests.add(self.digest(REFERENCE, _reference(reference)))
        return digests

    def write(self, uow: AdvocacyUnitOfWork, case: Case, referral: dict[str, Any]) -> None:
        uow.search.replace(case.id, self.digests_of(referral))

    def find(self, uow: AdvocacyUnitOfWork, text: str) -> list[str]:
        """Ids of the cases whose names hold every word of `text`, or whose reference (external or NRM) is
        `text` exactly. Empty for nothing searchable."""
        found = set(uow.search.holding_all([self.digest(NAME, t) for t in name_tokens(text)[:MAX_TERMS]]))
        if text.strip():
            found.update(uow.search.holding_all([self.digest(REFERENCE, _reference(text))]))
            found.update(uow.search.with_nrm_reference(text.strip()))
        return sorted(found)
