"""Canaries: a distinct, searchable synthetic value in every personal field of a referral and of the casework
a charity records about it, and the places to look for them (every table of a database, a file's bytes)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect, text

from shared.testing import referral_body

# The agency's own case number is not among them: intake keeps it (a reference reused is a 409) and the
# referring agency's webhooks carry it back to it; a Duty to Notify's reference, which must not link, is
# tested apart (test_dtn_unlinkable). REFERENCE is a canary for the erasure test, which erases it too.
REFERENCE = "ZQREFCANARY-0001"
CANARIES = {
    "given": "Zqgivencanary",
    "family": "Synthetic-Zqfamilycanary",
    "alias": "Zqaliascanary",
    "birth": "1961-07-29",
    "referrer": "Officer Zqreferrercanary",
    "email": "zqemailcanary@example.org",
    "phone": "+44 20 7946 0731",
    "safe_contact": "zqsafecontactcanary@example.org",
    "narrative": "Zqnarrativecanary",
    "risk": "Zqriskcanary",
    "decline_note": "Zqdeclinenotecanary",
    "contact_note": "Zqcontactnotecanary",
    "note": "Zqnotecanary",
    "risk_note": "Zqrisknotecanary",
}


def canary_referral(reference: str = REFERENCE) -> dict:
    """A referral body with a canary in every personal field."""
    body = referral_body(seed=62, external_reference=reference,
                         narrative=f"Synthetic narrative {CANARIES['narrative']} for testing only.")  # fmt: skip
    body["subject"] |= {
        "given_name": CANARIES["given"],
        "family_name": CANARIES["family"],
        "aliases": [CANARIES["alias"]],
        "date_of_birth": CANARIES["birth"],
        "safe_contact": {"method": "email", "value": CANARIES["safe_contact"], "safe_to_leave_message": True},
    }
    body["referrer"] |= {"name": CANARIES["referrer"], "email": CANARIES["email"], "phone": CANARIES["phone"]}
    body["risk"]["notes"] = f"Synthetic {CANARIES['risk']}."
    return body


def casework() -> list[tuple[str, dict]]:
    """What a charity records on a case, each with a canary: (path under /v1/cases/{id}/, body)."""
    return [
        ("contacts", {"at": datetime.now(UTC).isoformat(), "method": "phone", "outcome": "reached",
                      "interpreter_used": False, "note": CANARIES["contact_note"]}),
        ("notes", {"text": f"Synthetic note {CANARIES['note']}."}),
        ("risks", {"kind": "exploiters_nearby", "level": "medium", "review_on": "2099-01-01",
                   "note": CANARIES["risk_note"]}),
    ]  # fmt: skip


def canaries_in(blob: str | bytes, canaries: dict[str, str] = CANARIES) -> set[str]:
    """The names of the `canaries` found in `blob` (case-insensitive; bytes as UTF-8)."""
    if isinstance(blob, bytes):
        blob = blob.decode("utf-8", errors="replace")
    lowered = blob.lower()
    return {name for name, canary in canaries.items() if canary.lower() in lowered}


def canaries_left(engine, canaries: dict[str, str] = CANARIES) -> dict[str, list[str]]:
    """Each of `canaries` found in any row of any table of `engine`'s database, with the tables holding it."""
    found: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            if engine.dialect.name == "sqlite":  # every column as stored (text, or bytes read as UTF-8)
                rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()  # noqa: S608 - names from the database's own catalogue
                blob = "\n".join(
                    "|".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
                    for row in rows
                )
            else:
                query = f'SELECT CAST(t AS text) FROM "{table}" AS t'  # noqa: S608 - as above
                blob = "\n".join(connection.execute(text(query)).scalars().all())
            for name in canaries_in(blob, canaries):
                found.setdefault(name, []).append(table)
    return found


def canaries_in_files(directory: Path, pattern: str = "*.db*") -> dict[str, set[str]]:
    """Each file under `directory` matching `pattern` (a SQLite database, its -wal and -shm) whose raw bytes
    hold a canary, with the canaries it holds."""
    return {p.name: found for p in sorted(directory.glob(pattern)) if (found := canaries_in(p.read_bytes()))}
