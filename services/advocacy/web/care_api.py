"""HTTP routes for an advocate's day on a case (casework.contacts, notes, risks): the contact log, notes and
safeguarding risk flags. Thin: JSON in, a call in a unit of work, JSON out. A token of this provider only, as
every case route; a closed case is read-only (409).

Notes and the notes of contacts and flags are special-category: they are answered here to the charity's own
callers and never logged (the log lines below carry ids and codes only)."""

from __future__ import annotations

import logging

from services.advocacy import domain, errors
from services.advocacy.models import CaseContact, CaseNote, RiskFlag
from services.advocacy.web.context import on_case, own
from services.advocacy.web.schemas import (
    ContactCreateSchema,
    ContactSchema,
    NoteCreateSchema,
    NoteSchema,
    RiskCreateSchema,
    RiskSchema,
)
from shared.auth import current_principal
from shared.web import Blueprint

log = logging.getLogger(__name__)

blp = Blueprint("care", __name__, url_prefix="/v1", description="A case's contact log, notes and risk flags.")
blp.errorhandler(domain.CaseworkError)(errors.refused)

NOT_FOUND = "No such case of this provider"
CLOSED = "The case is closed (read-only)"


@blp.route("/cases/<case_id>/contacts", methods=["POST"])
@own("cases:write")
@blp.arguments(ContactCreateSchema)
@blp.response(201, ContactSchema)
@blp.alt_response(404, description=NOT_FOUND)
@blp.alt_response(409, description=CLOSED)
@blp.alt_response(422, description="A bad field, named: `at` in the future, a method or outcome not in the list")
def log_contact(body, case_id: str):
    """Log an attempt to reach the person. A `reached` contact restarts the no-contact rule's count (and ends
    an episode announced as `case.contact_overdue`); the timeline shows the method and outcome, never the note."""
    with on_case(case_id) as (advocacy, uow, case):
        contact = advocacy.continuity.contacts.log(uow, case, actor=current_principal().sub, **body)
        view = _contact_view(contact)
    log.info("contact logged", extra={"case_id": case_id, "method": body["method"], "outcome": body["outcome"]})
    return view


@blp.route("/cases/<case_id>/contacts", methods=["GET"])
@own("cases:read")
@blp.response(200, ContactSchema(many=True))
@blp.alt_response(404, description=NOT_FOUND)
def list_contacts(case_id: str):
    """The case's contact log, newest first."""
    with on_case(case_id) as (advocacy, uow, case):
        return [_contact_view(c) for c in uow.contacts.of_case(case.id)]


@blp.route("/cases/<case_id>/notes", methods=["POST"])
@own("cases:write")
@blp.arguments(NoteCreateSchema)
@blp.response(201, NoteSchema)
@blp.alt_response(404, description=NOT_FOUND)
@blp.alt_response(409, description=CLOSED)
@blp.alt_response(422, description="`text` missing, blank or over 10,000 characters")
def add_note(body, case_id: str):
    """Add a note (special-category: stored only here, never in an event or a log). The timeline says a note
    was added and by whom, without its text."""
    with on_case(case_id) as (advocacy, uow, case):
        note = advocacy.continuity.notes.add(uow, case, text=body["text"], actor=current_principal().sub)
        view = _note_view(note)
    log.info("note added", extra={"case_id": case_id})
    return view


@blp.route("/cases/<case_id>/notes", methods=["GET"])
@own("cases:read")
@blp.response(200, NoteSchema(many=True))
@blp.alt_response(404, description=NOT_FOUND)
def list_notes(case_id: str):
    """The case's notes, newest first."""
    with on_case(case_id) as (advocacy, uow, case):
        return [_note_view(n) for n in uow.notes.of_case(case.id)]


@blp.route("/cases/<case_id>/risks", methods=["POST"])
@own("cases:write")
@blp.arguments(RiskCreateSchema)
@blp.response(201, RiskSchema)
@blp.alt_response(404, description=NOT_FOUND)
@blp.alt_response(409, description=CLOSED)
@blp.alt_response(422, description="A bad field, named: a kind or level not in the list, `review_on` in the past")
def raise_risk(body, case_id: str):
    """Raise a safeguarding risk flag. A `high` one publishes `case.risk_raised` (ids, kind and level) in the
    same transaction, to the referrer's webhooks; the note stays here."""
    with on_case(case_id) as (advocacy, uow, case):
        flag = advocacy.continuity.risks.raise_flag(uow, case, actor=current_principal().sub, **body)
        view = _risk_view(flag)
    log.info("risk flag raised", extra={"case_id": case_id, "kind": body["kind"], "level": body["level"]})
    return view


@blp.route("/cases/<case_id>/risks", methods=["GET"])
@own("cases:read")
@blp.response(200, RiskSchema(many=True))
@blp.alt_response(404, description=NOT_FOUND)
def list_risks(case_id: str):
    """The case's risk flags, newest first."""
    with on_case(case_id) as (advocacy, uow, case):
        return [_risk_view(r) for r in uow.risks.of_case(case.id)]


def _contact_view(contact: CaseContact) -> dict:
    return {
        "id": contact.id,
        "case_id": contact.case_id,
        "at": contact.at,
        "method": contact.method,
        "outcome": contact.outcome,
        "interpreter_used": contact.interpreter_used,
        "note": contact.note,
        "recorded_by": contact.recorded_by,
        "recorded_at": contact.recorded_at,
    }


def _note_view(note: CaseNote) -> dict:
    return {
        "id": note.id,
        "case_id": note.case_id,
        "text": note.text,
        "written_by": note.written_by,
        "written_at": note.written_at,
    }


def _risk_view(flag: RiskFlag) -> dict:
    return {
        "id": flag.id,
        "case_id": flag.case_id,
        "kind": flag.kind,
        "level": flag.level,
        "review_on": flag.review_on,
        "note": flag.note,
        "raised_by": flag.raised_by,
        "raised_at": flag.raised_at,
    }
