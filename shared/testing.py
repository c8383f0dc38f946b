"""Test helpers: synthetic people and valid request bodies. Never real names.

Names are built from invented syllables so no fixture can be a real person; every generator takes a seed
so a failing test is reproducible.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

_SYLLABLES = ["ka", "lo", "mi", "zu", "ve", "ra", "to", "ni", "sa", "qe", "xo", "ly", "du", "fe", "jo", "wi"]


def synthetic_name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize() + "x"


def synthetic_person(seed: int | None = None) -> dict:
    rng = random.Random(seed)
    given, family = synthetic_name(rng), synthetic_name(rng)
    return {"given_name": given, "family_name": f"Synthetic-{family}", "alias": synthetic_name(rng)}


def date_of_birth_for_age(years: int, months: int = 0, today: date | None = None) -> str:
    today = today or datetime.now(UTC).date()
    born = today - timedelta(days=int(years * 365.25 + months * 30.44))
    return born.isoformat()


def referral_body(*, child: bool = False, consent: dict | None = None, seed: int | None = None, **overrides) -> dict:
    """A valid `POST /v1/referrals` body for a synthetic person. Override any top-level field."""
    person = synthetic_person(seed)
    body = {
        "external_reference": f"REF-{uuid.uuid4().hex[:12]}",
        "referrer": {
            "name": "Officer Synthetic-Tester",
            "role": "detective constable",
            "email": "referrer@example.org",
            "phone": "+44 20 7946 0000",
        },
        "subject": {
            "given_name": person["given_name"],
            "family_name": person["family_name"],
            "aliases": [person["alias"]],
            "date_of_birth": date_of_birth_for_age(16 if child else 29),
            "sex": "female",
            "nationality": "AL",
            "languages": ["sq", "en"],
            "interpreter_needed": True,
            "safe_contact": {"method": "via_referrer", "safe_to_leave_message": False},
        },
        "exploitation": [{"type": "labour", "location": "uk", "as_child": child, "county_lines": False}],
        "location": {"region": "london", "local_authority": "E09000033"},
        "risk": {"immediate_danger": False, "re_trafficking_risk": "medium", "notes": "Synthetic risk note."},
        "needs": ["accommodation", "legal"],
        "narrative": f"Synthetic narrative about {person['given_name']} for testing only.",
        "difficult_circumstances": False,
    }
    if not child:
        body["consent"] = consent or {
            "nrm_referral": True,
            "advocacy": True,
            "data_sharing": True,
            "obtained_at": datetime.now(UTC).isoformat(),
            "interpreter_used": True,
        }
    body.update(overrides)
    return body
