"""The advocate's page: server-rendered HTML and CSS (no JavaScript), accessible, CSRF-protected forms.

My caseload (overdue first), upcoming transitions, and a case page with its timeline and the forms to record
a decision or plan, tick and complete a transition. URLs carry ids only, never personal data. Each route is a
top-level function of the blueprint `page`; `init_page` registers it on the app with its session settings.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.events import REGIONS
from services.advocacy import domain
from services.advocacy.casework.intake_client import IntakeClient
from services.advocacy.config import AdvocacyConfig
from services.advocacy.continuity import deadlines
from services.advocacy.continuity.wall_clock import today
from services.advocacy.models import AccessLog, Advocate, Case, Offer, RiskFlag
from services.advocacy.uow import AdvocacyUnitOfWork, SqlAdvocacyUnitOfWork
from services.advocacy.web import auth, i18n, labels, records, seen
from services.advocacy.web.attention import needs_attention
from services.advocacy.web.caseload import CaseRow, caseload, person_details, person_label, upcoming_transitions
from services.advocacy.web.context import EXTENSION, instance, read
from services.advocacy.web.directory import Directory, Fetch
from shared.access_log import Reader, of_subject
from shared.auth.tokens import ServiceTokens
from shared.config import ConfigError, Settings

log = logging.getLogger(__name__)
OIDC = "advocacy.oidc"  # the app's extension holding its auth.Oidc
DIRECTORY = "advocacy.directory"  # the app's extension holding its web.directory.Directory

page = Blueprint("page", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")


def init_page(app: Flask) -> None:
    """The page on `app`, which already holds its instance (services.advocacy.web.context)."""
    advocacy = app.extensions[EXTENSION]
    config = advocacy.config
    app.secret_key = config.session_secret or _dev_secret(config.dev_signin)
    app.config.update(
        SESSION_COOKIE_NAME="advocacy_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not config.dev_signin,
    )
    i18n.init_i18n(app, secure=not config.dev_signin)
    app.extensions[OIDC] = auth.Oidc(advocacy.settings, config)
    app.extensions[DIRECTORY] = Directory(_directory_fetch(advocacy.settings, config))
    app.register_blueprint(page)


def _directory_fetch(settings: Settings, config: AdvocacyConfig) -> Fetch | None:
    """intake's directories through the intake client, with this provider's token; None without a token."""
    try:
        tokens = ServiceTokens(settings, org=config.provider_id, org_kind="provider", scopes=["cases:read"])
    except ConfigError:
        return None
    return IntakeClient(config.intake_url, tokens).directory


def _dev_secret(dev_signin: bool) -> str:
    if not dev_signin:
        log.warning("ADVOCACY_SESSION_SECRET is not set: page sessions last only as long as this process")
    return secrets.token_hex(32)


def _oidc() -> auth.Oidc:
    return current_app.extensions[OIDC]


@page.context_processor
def helpers():
    return {
        "csrf_token": auth.csrf_token,
        "kind_label": labels.transition_label,
        "clock_label": labels.clock_label,
        "clock_words": labels.clock_words,
        "clock_state_label": labels.clock_state_label,
        "checklist_label": labels.checklist_label,
        "provider_id": instance().provider_id,
        "region_label": labels.region_label,
        "timeline_label": labels.timeline_label,
        "policy_label": labels.policy_label,
        "plain": labels.plain,
        "words": labels.words,
        "day": labels.day,
        "long_day": lambda on: i18n.day(on, long=True),
        "html_lang": i18n.html_lang,
        "moment": i18n.moment,
        "decision_label": labels.decision_label,
        "actor_label": labels.actor_label,
        "seen_what": seen.what,
        "seen_how": seen.how,
        "seen_who": seen.who,
        "free_text_lang": i18n.free_text_lang,
        "language": i18n.language,
        "need_labels": lambda codes: [labels.label(labels.NEED_LABELS, c) for c in codes or []],
        "exploitation_labels": lambda codes: [labels.label(labels.EXPLOITATION_LABELS, c) for c in codes or []],
        "case_status_label": lambda c: labels.label(labels.CASE_STATUS_LABELS, c),
        "transition_status_label": lambda c: labels.label(labels.TRANSITION_STATUS_LABELS, c),
        "offer_status_label": lambda c: labels.label(labels.OFFER_STATUS_LABELS, c),
        "contact_method_label": lambda c: labels.label(labels.CONTACT_METHOD_LABELS, c),
        "consent_purpose_label": lambda c: labels.label(labels.CONSENT_PURPOSE_LABELS, c),
        "decline_label": lambda c: labels.label(DECLINE_LABELS, c),
        "closure_label": lambda c: labels.label(CLOSURE_LABELS, c),
        "contact_how_label": lambda c: labels.label(labels.CONTACT_HOW_LABELS, c),
        "contact_outcome_label": lambda c: labels.label(labels.CONTACT_OUTCOME_LABELS, c),
        "risk_kind_label": lambda c: labels.label(labels.RISK_KIND_LABELS, c),
        "risk_level_label": lambda c: labels.label(labels.RISK_LEVEL_LABELS, c),
    }


@page.before_request
def posts_carry_the_csrf_token():
    if request.method == "POST":
        auth.check_csrf()


@page.after_request
def no_caching(response):
    # Pages hold special-category data: never keep them in a shared or back-button cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; form-action 'self'; frame-ancestors 'none'"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _require_advocate(uow: AdvocacyUnitOfWork) -> Advocate:
    advocate = auth.signed_in(uow.advocates)
    if advocate is None:
        abort(redirect(url_for("page.signin")))
    g.advocate = advocate
    return advocate


def _visible_case(uow: AdvocacyUnitOfWork, advocate: Advocate, case_id: str) -> Case:
    case = uow.cases.get(case_id)
    mine = case is not None and (advocate.role == domain.ROLE_COORDINATOR or case.advocate_id == advocate.id)
    if case is None or not mine:
        abort(404)  # another advocate's case is "not found", never "forbidden"
    return case


def _actor(advocate: Advocate) -> str:
    return f"advocate:{advocate.id}"


def _seen(uow: SqlAdvocacyUnitOfWork, advocate: Advocate, ids: list[str], what: str, *, kind: str = "case") -> None:
    """A page view is a read by the signed-in advocate: its access log rows, in the view's transaction."""
    read(uow.session, ids, what, kind=kind, reader=Reader(_actor(advocate), uow.provider_id))


SEEN_SHOWN = 20  # the latest reads of a case in its "Who has seen this record" panel


@page.get("/")
def home():
    return redirect(url_for("page.my_caseload"))


@page.get("/signin")
def signin():
    advocacy = instance()
    dev = advocacy.config.dev_signin
    with advocacy.unit_of_work() as uow:
        advocates = sorted((a for a in uow.advocates.all() if a.active), key=lambda a: a.name) if dev else []
        return render_template("signin.html", advocates=advocates, dev=dev, oidc=_oidc().enabled)


@page.post("/signin/dev")
def dev_signin():
    advocacy = instance()
    if not advocacy.config.dev_signin:
        abort(404)
    with advocacy.unit_of_work() as uow:
        advocate = uow.advocates.get(request.form.get("advocate_id", ""))
        if advocate is None or not advocate.active:
            flash(_("Choose one of the advocates listed."), "error")
            return redirect(url_for("page.signin"))
        auth.sign_in(advocate)
    log.info("advocate signed in (dev)", extra={"advocate_id": advocate.id, "provider_id": advocacy.provider_id})
    return redirect(url_for("page.my_caseload"))


@page.get("/signin/oidc")
def oidc_start():
    if not _oidc().enabled:
        abort(404)
    return redirect(_oidc().authorization_url())


@page.get("/signin/callback")
def oidc_callback():
    oidc = _oidc()
    if not oidc.enabled:
        abort(404)
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        advocate = oidc.advocate_from_callback(uow.advocates)
        if advocate is None or not advocate.active:
            abort(403, description="You are not an advocate of this provider.")
        auth.sign_in(advocate)
    log.info("advocate signed in (oidc)", extra={"advocate_id": advocate.id, "provider_id": advocacy.provider_id})
    return redirect(url_for("page.my_caseload"))


@page.post("/signout")
def signout():
    auth.sign_out()
    return redirect(url_for("page.signin"))


@page.get("/caseload")
def my_caseload():
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        advocate = _require_advocate(uow)
        day = today(advocacy.continuity.wall_clock)
        status = 200
        try:
            filters = Filters.from_query(request.args, coordinator=advocate.role == domain.ROLE_COORDINATOR)
        except ValueError as exc:  # a bad parameter: say which, and show the caseload unfiltered
            flash(str(exc), "error")
            filters, status = Filters(), 400
        flagged = _flagged(uow.session, uow.provider_id, filters.risk) if filters.risk else set()
        rows = filters.apply(caseload(uow.session, advocate, day), day, flagged)
        shown = rows[(filters.page - 1) * PAGE_SIZE : filters.page * PAGE_SIZE]
        upcoming, attention = upcoming_transitions(uow.session, advocate, day), needs_attention(uow.session, advocate)
        listed = [r.case.id for r in shown] + [t["case"].id for t in upcoming] + [a.case.id for a in attention]
        _seen(uow, advocate, listed, "case.summary")  # one row per case named on the page
        return render_template(
            "caseload.html",
            advocate=advocate,
            rows=shown,
            total=len(rows),
            filters=filters,
            pages=max(1, -(-len(rows) // PAGE_SIZE)),
            advocates=sorted((a for a in uow.advocates.all() if a.active), key=lambda a: a.name),
            within_choices=WITHIN_DAYS,
            risk_levels=labels.choices(labels.RISK_LEVEL_LABELS),
            upcoming=upcoming,
            attention=attention,  # lost contact and high risks (issue 13): the coordinator's to act on
            today=day,
        ), status


PAGE_SIZE = 25
WITHIN_DAYS = (7, 14, 30, 90)


@dataclass(frozen=True)
class Filters:
    """The caseload's filters and page, from query parameters of ids and numbers only (never a name)."""

    advocate_id: str = ""
    within: int | None = None  # next deadline within this many days (overdue included)
    page: int = 1
    risk: str = ""  # a risk level: cases with a flag at that level

    @classmethod
    def from_query(cls, args, *, coordinator: bool) -> Filters:
        advocate_id = (args.get("advocate") or "").strip() if coordinator else ""
        if len(advocate_id) > 36:
            raise ValueError("Filter advocate: choose one of this provider's advocates.")
        within = _whole(args.get("within"), "within", 1, 366)
        risk = args.get("risk") or ""
        if risk and risk not in labels.RISK_LEVEL_LABELS:
            raise ValueError(f"Filter risk: one of {', '.join(labels.RISK_LEVEL_LABELS)}.")
        return cls(advocate_id, within, _whole(args.get("page"), "page", 1, 10_000) or 1, risk)

    def apply(self, rows: list[CaseRow], day: date, flagged: set[str]) -> list[CaseRow]:
        """`flagged`: the cases with a risk flag at the level asked for."""
        if self.risk:
            rows = [r for r in rows if r.case.id in flagged]
        if self.advocate_id:
            rows = [r for r in rows if r.case.advocate_id == self.advocate_id]
        if self.within is not None:
            until = day + timedelta(days=self.within)
            rows = [r for r in rows if r.next is not None and r.next.on <= until]
        return rows

    def query(self, **changes) -> dict[str, str | int]:
        """The query parameters of these filters with `changes`, for a link (empty ones left out)."""
        values = {"advocate": self.advocate_id, "within": self.within, "risk": self.risk, "page": self.page, **changes}
        return {k: v for k, v in values.items() if v and not (k == "page" and v == 1)}


def _flagged(session: Session, provider_id: str, level: str) -> set[str]:
    query = select(RiskFlag.case_id).where(RiskFlag.provider_id == provider_id, RiskFlag.level == level)
    return set(session.scalars(query))


def _whole(raw: str | None, name: str, low: int, high: int) -> int | None:
    if raw in (None, ""):
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"Filter {name}: a whole number from {low} to {high}.")
    return int(raw)


# --- search by name or reference: POST only, so the words never sit in a URL, a log line or the history ------

SEARCH_LENGTH = 200


@page.get("/search")
def search_form():
    """The form only: a query in the URL is ignored (names never travel in URLs)."""
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        return render_template("search.html", advocate=_require_advocate(uow), results=None, searched=False)


@page.post("/search")
def search():
    text = (request.form.get("q") or "").strip()
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        advocate = _require_advocate(uow)
        if not text or len(text) > SEARCH_LENGTH:
            flash(_("Type a name or a reference (at most %(num)d characters).", num=SEARCH_LENGTH), "error")
            return render_template("search.html", advocate=advocate, results=None, searched=False), 400
        found = uow.cases.by_ids(advocacy.continuity.casework.index.find(uow, text))
        coordinator = advocate.role == domain.ROLE_COORDINATOR
        mine = [c for c in found.values() if coordinator or c.advocate_id == advocate.id]
        results = sorted(((person_label(c), c) for c in mine), key=lambda r: (r[0], r[1].id))
        _seen(uow, advocate, [c.id for _, c in results], "case.summary")
        return render_template("search.html", advocate=advocate, results=results, searched=True)


@page.get("/cases/<case_id>")
def case_page(case_id: str):
    advocacy = instance()
    nrm = advocacy.continuity.nrm
    with advocacy.unit_of_work() as uow:
        advocate = _require_advocate(uow)
        case = _visible_case(uow, advocate, case_id)
        _seen(uow, advocate, [case.id], "case.page")
        coordinator = advocate.role == domain.ROLE_COORDINATOR
        seen = (
            list(uow.session.scalars(of_subject(AccessLog, "case", case.id).limit(SEEN_SHOWN))) if coordinator else None
        )
        day = today(advocacy.continuity.wall_clock)
        names = {a.id: a.name for a in uow.advocates.all()}
        record = nrm.record(uow, case) if case.status == domain.CASE_OPEN else None
        directory: Directory = current_app.extensions[DIRECTORY]
        live = case.status == domain.CASE_OPEN  # only an open case plans a transition
        agencies, providers = (directory.agencies(), directory.providers()) if live else (None, None)
        return render_template(
            "case.html",
            advocate=advocate,
            case=case,
            label=person_label(case),
            person=person_details(case, day),
            record=record,
            decisions=uow.nrm.decisions_of(case.id),
            reconsiderations=uow.nrm.reconsiderations_of(case.id),
            consents=uow.consents.of_case(case.id),
            purposes=labels.choices(labels.CONSENT_PURPOSE_LABELS),
            contacts=uow.contacts.of_case(case.id),
            notes=uow.notes.of_case(case.id),
            risks=uow.risks.of_case(case.id),
            contact_methods=labels.choices(labels.CONTACT_HOW_LABELS),
            contact_outcomes=labels.choices(labels.CONTACT_OUTCOME_LABELS),
            risk_kinds=labels.choices(labels.RISK_KIND_LABELS),
            risk_levels=labels.choices(labels.RISK_LEVEL_LABELS),
            agencies=agencies,
            providers=None if providers is None else [p for p in providers if p[0] != case.provider_id],
            directory_names=dict((agencies or []) + (providers or [])),
            clocks=[records.clock_view(c, day) for c in uow.clocks.of_case(case.id)],
            transitions=uow.transitions.of_case(case.id),
            timeline=uow.timeline.of_offer(case.offer_id),
            seen=seen,
            names=names,
            advocates=[a for a in names.items() if a[0] != case.advocate_id],
            stages=deadlines.STAGES,
            kinds=domain.TRANSITION_KINDS,
            regions=REGIONS,
            today=day,
        )


UseCase = Callable[[AdvocacyUnitOfWork, Case, str], object]


def _act(case_id: str, do: UseCase, done: str):
    """Run one form's use case; a refused rule comes back as a message on the case page."""
    try:
        with instance().unit_of_work() as uow:
            advocate = _require_advocate(uow)
            do(uow, _visible_case(uow, advocate, case_id), _actor(advocate))
    except domain.CaseworkError as exc:  # rolled back: nothing of the refused change stays
        flash(_refusal(exc), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    flash(done, "success")
    return redirect(url_for("page.case_page", case_id=case_id))


@page.post("/cases/<case_id>/decisions")
def record_decision(case_id: str):
    stage, outcome = request.form.get("stage", ""), request.form.get("outcome", "")
    decided_on = _date(request.form.get("decided_on"))
    if stage not in deadlines.STAGES or outcome not in deadlines.OUTCOMES or decided_on is None:
        flash(_("Choose the decision, its outcome and the date it was made."), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    nrm = instance().continuity.nrm
    return _act(
        case_id,
        lambda uow, case, who: nrm.record_decision(
            uow, case, stage=stage, outcome=outcome, decided_on=decided_on, actor=who
        ),
        _("%(decision)s recorded.", decision=labels.decision_label(outcome, stage)),
    )


@page.post("/cases/<case_id>/transitions")
def plan_transition(case_id: str):
    kind, planned_for = request.form.get("kind", ""), _date(request.form.get("planned_for"))
    if kind not in domain.TRANSITION_KINDS or planned_for is None:
        flash(_("Choose the kind of transition and its planned date."), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    transitions = instance().continuity.transitions

    def given(name: str) -> str | None:
        return (request.form.get(name) or "").strip() or None

    def plan(uow: AdvocacyUnitOfWork, case: Case, who: str):
        return transitions.plan(
            uow,
            case,
            kind=kind,
            planned_for=planned_for,
            actor=who,
            receiving_agency=given("receiving_agency"),
            receiving_provider_id=given("receiving_provider_id"),
            to_advocate_id=given("to_advocate_id"),
            new_region=given("new_region"),
        )

    return _act(case_id, plan, _("%(transition)s planned.", transition=labels.transition_label(kind)))


@page.post("/cases/<case_id>/transitions/<transition_id>/checklist")
def tick_checklist(case_id: str, transition_id: str):
    ticked = set(request.form.getlist("done"))
    transitions = instance().continuity.transitions

    def tick(uow: AdvocacyUnitOfWork, case: Case, who: str):
        current = transitions.get(uow, case, transition_id)
        ticks = {item: item in ticked for item in current.checklist}
        return transitions.update(uow, case, transition_id, actor=who, ticks=ticks)

    return _act(case_id, tick, _("Checklist saved."))


@page.post("/cases/<case_id>/transitions/<transition_id>/completion")
def complete_transition(case_id: str, transition_id: str):
    # turning_18 is completed with the young person's decision (casework.consent), one button each.
    consent = instance().continuity.consent
    decision = request.form.get("decision") or None
    return _act(
        case_id,
        lambda uow, case, who: consent.complete_transition(uow, case, transition_id, actor=who, decision=decision),
        _("Transition completed."),
    )


# How each closure outcome reads on the form (the codes are contracts.events.ClosureOutcome).
CLOSURE_LABELS = {
    "moved_on": "Moved on from support",
    "negative_cg_exit": "Left after a negative conclusive grounds decision",
    "declined_support": "Declined support",
    "declined_adult_support_at_18": "Declined adult support at 18",
    "consent_withdrawn": "Withdrew consent",
    "no_contact": "No contact",
    "returned_home": "Returned home",
    "transferred": "Transferred to another service",
    "died": "Died",
    "other": "Other (say why in the note)",
}


@page.context_processor
def closure_choices():
    return {"closure_outcomes": [(code, labels.label(CLOSURE_LABELS, code)) for code in domain.CLOSURE_OUTCOMES]}


@page.post("/cases/<case_id>/closure")
def close_case(case_id: str):
    outcome, note = request.form.get("outcome", ""), (request.form.get("note") or "").strip() or None
    if outcome not in domain.CLOSURE_OUTCOMES or (note is not None and len(note) > CLOSURE_NOTE_LENGTH):
        flash(_("Choose how the case ended; a note has at most %(num)d characters.", num=CLOSURE_NOTE_LENGTH), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    closure = instance().continuity.closure
    return _act(
        case_id,
        lambda uow, case, who: closure.close(uow, case, outcome=outcome, note=note, actor=who),
        _("Case closed."),
    )


CLOSURE_NOTE_LENGTH = 400  # as the API's (web.schemas.ClosureSchema)
NRM_REFERENCE_LENGTH = 64  # as the API's (web.schemas.NrmUpdateSchema)


@page.post("/cases/<case_id>/nrm-reference")
def set_nrm_reference(case_id: str):
    reference = (request.form.get("nrm_reference") or "").strip()
    if len(reference) > NRM_REFERENCE_LENGTH:
        flash(_("An NRM reference has at most %(num)d characters.", num=NRM_REFERENCE_LENGTH), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    nrm = instance().continuity.nrm
    return _act(
        case_id,
        lambda uow, case, who: nrm.set_reference(uow, case, reference or None, actor=who),
        _("NRM reference saved.") if reference else _("NRM reference removed."),
    )


@page.post("/cases/<case_id>/reconsiderations")
def request_reconsideration(case_id: str):
    decision_id, requested_on = request.form.get("decision_id", ""), _date(request.form.get("requested_on"))
    if not decision_id or len(decision_id) > 64 or requested_on is None:
        flash(_("Choose the decision to reconsider and the date it was requested."), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    nrm = instance().continuity.nrm
    return _act(
        case_id,
        lambda uow, case, who: nrm.request_reconsideration(
            uow, case, decision_id=decision_id, requested_on=requested_on, actor=who
        ),
        _("Reconsideration request recorded."),
    )


CONSENT_RECIPIENTS = 50  # as the API's (web.schemas.ConsentCreateSchema)
CARE_TEXT_LENGTH = 10_000  # a contact's note, a note, a risk's note: as the API's (web.schemas)


def _text(name: str) -> str | None:
    return (request.form.get(name) or "").strip() or None


@page.post("/cases/<case_id>/contacts")
def log_contact(case_id: str):
    at, note = _datetime(request.form.get("at")), _text("note")
    method, outcome = request.form.get("method", ""), request.form.get("outcome", "")
    if (
        at is None
        or method not in labels.CONTACT_HOW_LABELS
        or outcome not in labels.CONTACT_OUTCOME_LABELS
        or (note is not None and len(note) > CARE_TEXT_LENGTH)
    ):
        flash(_("Say when, how and with what outcome you tried to reach the person."), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    contacts = instance().continuity.contacts
    return _act(
        case_id,
        lambda uow, case, who: contacts.log(
            uow,
            case,
            at=at,
            method=method,
            outcome=outcome,
            actor=who,
            interpreter_used=request.form.get("interpreter_used") == "yes",
            note=note,
        ),
        _("Contact logged."),
    )


@page.post("/cases/<case_id>/notes")
def add_note(case_id: str):
    text = _text("text")
    if text is None or len(text) > CARE_TEXT_LENGTH:
        flash(_("Write the note (at most %(num)d characters).", num=CARE_TEXT_LENGTH), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    notes = instance().continuity.notes
    return _act(case_id, lambda uow, case, who: notes.add(uow, case, text=text, actor=who), _("Note added."))


@page.post("/cases/<case_id>/risks")
def raise_risk(case_id: str):
    kind, level = request.form.get("kind", ""), request.form.get("level", "")
    review_on, note = _date(request.form.get("review_on")), _text("note")
    if (
        kind not in labels.RISK_KIND_LABELS
        or level not in labels.RISK_LEVEL_LABELS
        or review_on is None
        or (note is not None and len(note) > CARE_TEXT_LENGTH)
    ):
        flash(_("Choose the kind of risk, its level and the date to review it by."), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    risks = instance().continuity.risks
    return _act(
        case_id,
        lambda uow, case, who: risks.raise_flag(
            uow, case, kind=kind, level=level, review_on=review_on, actor=who, note=note
        ),
        _("Risk flag raised."),
    )


@page.post("/cases/<case_id>/consent")
def record_consent(case_id: str):
    purpose, given = request.form.get("purpose", ""), request.form.get("given", "")
    obtained_at = _datetime(request.form.get("obtained_at"))
    recipients = [r for r in (request.form.get("recipients") or "").replace(",", " ").split() if r]
    if (
        purpose not in labels.CONSENT_PURPOSE_LABELS
        or given not in ("yes", "no")
        or obtained_at is None
        or len(recipients) > CONSENT_RECIPIENTS
        or any(len(r) > 100 for r in recipients)
    ):
        flash(_("Choose what the consent is for, whether it was given and when it was obtained."), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    consent = instance().continuity.consent
    return _act(
        case_id,
        lambda uow, case, who: consent.record(
            uow,
            case,
            purpose=purpose,
            given=given == "yes",
            obtained_at=obtained_at,
            actor=who,
            interpreter_used=request.form.get("interpreter_used") == "yes",
            recipients=recipients,
        ),
        _("Consent recorded."),
    )


# --- the inbox: offers and provider handovers to answer (a coordinator's) ----------------------------------

DECLINE_LABELS = {
    "no_capacity": "No capacity",
    "eligibility": "Not eligible for this service",
    "complex_needs": "Needs we cannot meet",
    "no_single_sex_place": "No single-sex place",
    "safety_conflict": "Safety conflict (links to the exploiters)",
    "already_supported": "Already supported elsewhere",
    "not_contactable": "Not contactable",
    "other": "Other (say why in the note)",
}


@page.get("/offers")
def inbox():
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        advocate = _require_coordinator(uow)
        loads = uow.cases.caseloads()
        advocates = [
            {
                "id": a.id,
                "name": a.name,
                "caseload": loads.get(a.id, 0),
                "max_caseload": a.max_caseload,
                "languages": a.languages or [],
                "full": loads.get(a.id, 0) >= a.max_caseload,
            }
            for a in sorted(uow.advocates.all(), key=lambda a: a.name)
            if a.active
        ]
        offers, answered = _pending_offers(uow.session, uow.provider_id), _answered_offers(uow.session, uow.provider_id)
        handovers = uow.handovers.of_status(domain.HANDOVER_PENDING)
        _seen(uow, advocate, [o.id for o in offers + answered], "offer.summary", kind="offer")
        _seen(uow, advocate, [h.id for h in handovers], "handover.summary", kind="handover")
        return render_template(
            "offers.html",
            advocate=advocate,
            offers=offers,
            answered=answered,
            handovers=handovers,
            advocates=advocates,
            decline_reasons=[(code, labels.label(DECLINE_LABELS, code)) for code in domain.DECLINE_REASONS],
            countdown=lambda deadline: labels.countdown(deadline, datetime.now(UTC)),
        )


ANSWERED_SHOWN = 50


def _answered_offers(session: Session, provider_id: str) -> list[Offer]:
    """Offers answered, expired or withdrawn, latest first (a handover's offer row is not an offer we had)."""
    query = select(Offer).where(
        Offer.provider_id == provider_id,
        Offer.status != domain.OFFER_PENDING,
        Offer.id.not_like(f"{domain.HANDOVER_OFFER_PREFIX}%"),
    )
    return list(session.scalars(query.order_by(Offer.updated_at.desc(), Offer.id).limit(ANSWERED_SHOWN)))


@page.post("/offers/<offer_id>/accept")
def accept_offer(offer_id: str):
    casework = instance().continuity.casework
    chosen = (request.form.get("advocate_id") or "").strip() or None
    return _answer(
        lambda uow, who: casework.accept_offer(uow, offer_id, actor=who, advocate_id=chosen), _("Offer accepted.")
    )


@page.post("/offers/<offer_id>/decline")
def decline_offer(offer_id: str):
    casework = instance().continuity.casework
    reason, note = _decline_form()
    if reason is None:
        return redirect(url_for("page.inbox"))
    return _answer(
        lambda uow, who: casework.decline_offer(uow, offer_id, actor=who, reason=reason, note=note),
        _("Offer declined."),
    )


@page.post("/handovers/<handover_id>/accept")
def accept_handover(handover_id: str):
    handover = instance().continuity.handover
    chosen = (request.form.get("advocate_id") or "").strip() or None
    return _answer(
        lambda uow, who: handover.accept(uow, handover_id, actor=who, advocate_id=chosen), _("Handover accepted.")
    )


@page.post("/handovers/<handover_id>/decline")
def decline_handover(handover_id: str):
    handover = instance().continuity.handover
    reason, note = _decline_form()
    if reason is None:
        return redirect(url_for("page.inbox"))
    return _answer(
        lambda uow, who: handover.decline(uow, handover_id, actor=who, reason=reason, note=note),
        _("Handover declined."),
    )


def _require_coordinator(uow: AdvocacyUnitOfWork) -> Advocate:
    advocate = _require_advocate(uow)
    if advocate.role != domain.ROLE_COORDINATOR:
        abort(403)  # a coordinator allocates new work
    return advocate


def _pending_offers(session: Session, provider_id: str) -> list[Offer]:
    query = select(Offer).where(Offer.provider_id == provider_id, Offer.status == domain.OFFER_PENDING)
    return list(session.scalars(query.order_by(Offer.respond_by, Offer.id)))


def _decline_form() -> tuple[str | None, str | None]:
    reason, note = request.form.get("reason", ""), (request.form.get("note") or "").strip() or None
    if reason not in domain.DECLINE_REASONS or (note is not None and len(note) > DECLINE_NOTE_LENGTH):
        flash(_("Choose a reason; a note has at most %(num)d characters.", num=DECLINE_NOTE_LENGTH), "error")
        return None, None
    return reason, note


DECLINE_NOTE_LENGTH = 2000  # as the API's (web.schemas.DeclineOfferSchema)


def _answer(do: Callable[[AdvocacyUnitOfWork, str], object], done: str):
    """Run one inbox answer; a refused rule (already answered, nobody with room) comes back as a message."""
    try:
        with instance().unit_of_work() as uow:
            do(uow, _actor(_require_coordinator(uow)))
    except domain.CaseworkError as exc:
        flash(_refusal(exc), "error")
        return redirect(url_for("page.inbox"))
    flash(done, "success")
    return redirect(url_for("page.inbox"))


# A refused rule on a Welsh page, by its kind (the English page shows the rule's own message, as the API does).
REFUSAL_LABELS = {
    domain.OfferNotPending: "This offer can no longer be answered.",
    domain.HandoverNotPending: "This handover can no longer be answered.",
    domain.NoAdvocateAvailable: "No active advocate has room for another case.",
    domain.AdvocateUnavailable: "That advocate is inactive or has a full caseload.",
    domain.AdvocateNotFound: "Choose one of this provider's advocates.",
    domain.CaseNotOpen: "The case is not open: it can no longer change.",
    domain.TransitionClosed: "A completed or missed transition cannot change.",
    domain.ChecklistIncomplete: "Finish the checklist before completing the transition.",
    domain.TransitionInvalid: "The transition lacks what its kind needs: a receiving provider or a new advocate.",
    domain.RegionNotServed: "A relocation to a region this provider does not serve needs the receiving provider.",
    domain.HandoverAwaitingAnswer: "The handover completes when the receiving provider accepts it.",
    domain.DecisionAlreadyRecorded: "The case has a decision of this stage already.",
    domain.DecisionUndatable: "No NRM rule covers that date.",
    domain.DecisionNotOfCase: "Choose one of this case's decisions.",
}


def _refusal(exc: domain.CaseworkError) -> str:
    if i18n.language() == i18n.ENGLISH:
        return str(exc)
    known = next((text for kind, text in REFUSAL_LABELS.items() if isinstance(exc, kind)), None)
    return _(known) if known else _("The change was refused: check the form and try again.")


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw or "")
    except ValueError:
        return None


def _datetime(raw: str | None) -> datetime | None:
    """A form's `datetime-local` value, read as UTC (the page's times are UTC)."""
    try:
        at = datetime.fromisoformat(raw or "")
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
