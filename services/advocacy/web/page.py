"""The advocate's page: server-rendered HTML and CSS (no JavaScript), accessible, CSRF-protected forms.

My caseload (overdue first), upcoming transitions, and a case page with its timeline and the forms to record
a decision or plan, tick and complete a transition. URLs carry ids only, never personal data. Each route is a
top-level function of the blueprint `page`; `init_page` registers it on the app with its session settings.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import date

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.events import REGIONS
from services.advocacy import domain
from services.advocacy.continuity import deadlines
from services.advocacy.continuity.wall_clock import today
from services.advocacy.models import Advocate, Case, Offer
from services.advocacy.uow import AdvocacyUnitOfWork
from services.advocacy.web import auth, labels, records
from services.advocacy.web.caseload import caseload, person_label, upcoming_transitions
from services.advocacy.web.context import EXTENSION, instance

log = logging.getLogger(__name__)
OIDC = "advocacy.oidc"  # the app's extension holding its auth.Oidc

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
    app.extensions[OIDC] = auth.Oidc(advocacy.settings, config)
    app.register_blueprint(page)


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
        "checklist_label": lambda k: labels.CHECKLIST_LABELS.get(k, k),
        "provider_id": instance().provider_id,
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
            flash("Choose one of the advocates listed.", "error")
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
        return render_template(
            "caseload.html",
            advocate=advocate,
            rows=caseload(uow.session, advocate, day),
            upcoming=upcoming_transitions(uow.session, advocate, day),
            today=day,
        )


@page.get("/cases/<case_id>")
def case_page(case_id: str):
    advocacy = instance()
    nrm = advocacy.continuity.nrm
    with advocacy.unit_of_work() as uow:
        advocate = _require_advocate(uow)
        case = _visible_case(uow, advocate, case_id)
        day = today(advocacy.continuity.wall_clock)
        names = {a.id: a.name for a in uow.advocates.all()}
        record = nrm.record(uow, case) if case.status == domain.CASE_OPEN else None
        return render_template(
            "case.html",
            advocate=advocate,
            case=case,
            label=person_label(case),
            record=record,
            decisions=uow.nrm.decisions_of(case.id),
            clocks=[records.clock_view(c, day) for c in uow.clocks.of_case(case.id)],
            transitions=uow.transitions.of_case(case.id),
            timeline=uow.timeline.of_offer(case.offer_id),
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
        flash(str(exc), "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    flash(done, "success")
    return redirect(url_for("page.case_page", case_id=case_id))


@page.post("/cases/<case_id>/decisions")
def record_decision(case_id: str):
    stage, outcome = request.form.get("stage", ""), request.form.get("outcome", "")
    decided_on = _date(request.form.get("decided_on"))
    if stage not in deadlines.STAGES or outcome not in deadlines.OUTCOMES or decided_on is None:
        flash("Choose the decision, its outcome and the date it was made.", "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    nrm = instance().continuity.nrm
    return _act(
        case_id,
        lambda uow, case, who: nrm.record_decision(
            uow, case, stage=stage, outcome=outcome, decided_on=decided_on, actor=who
        ),
        f"{outcome.capitalize()} {stage.upper()} decision recorded.",
    )


@page.post("/cases/<case_id>/transitions")
def plan_transition(case_id: str):
    kind, planned_for = request.form.get("kind", ""), _date(request.form.get("planned_for"))
    if kind not in domain.TRANSITION_KINDS or planned_for is None:
        flash("Choose the kind of transition and its planned date.", "error")
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

    return _act(case_id, plan, f"{labels.transition_label(kind)} planned.")


@page.post("/cases/<case_id>/transitions/<transition_id>/checklist")
def tick_checklist(case_id: str, transition_id: str):
    ticked = set(request.form.getlist("done"))
    transitions = instance().continuity.transitions

    def tick(uow: AdvocacyUnitOfWork, case: Case, who: str):
        current = transitions.get(uow, case, transition_id)
        ticks = {item: item in ticked for item in current.checklist}
        return transitions.update(uow, case, transition_id, actor=who, ticks=ticks)

    return _act(case_id, tick, "Checklist saved.")


@page.post("/cases/<case_id>/transitions/<transition_id>/completion")
def complete_transition(case_id: str, transition_id: str):
    # turning_18 is completed with the young person's decision (casework.consent), one button each.
    consent = instance().continuity.consent
    decision = request.form.get("decision") or None
    return _act(
        case_id,
        lambda uow, case, who: consent.complete_transition(uow, case, transition_id, actor=who, decision=decision),
        "Transition completed.",
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
    return {"closure_outcomes": [(code, CLOSURE_LABELS.get(code, code)) for code in domain.CLOSURE_OUTCOMES]}


@page.post("/cases/<case_id>/closure")
def close_case(case_id: str):
    outcome, note = request.form.get("outcome", ""), (request.form.get("note") or "").strip() or None
    if outcome not in domain.CLOSURE_OUTCOMES or (note is not None and len(note) > CLOSURE_NOTE_LENGTH):
        flash(f"Choose how the case ended; a note has at most {CLOSURE_NOTE_LENGTH} characters.", "error")
        return redirect(url_for("page.case_page", case_id=case_id))
    closure = instance().continuity.closure
    return _act(
        case_id,
        lambda uow, case, who: closure.close(uow, case, outcome=outcome, note=note, actor=who),
        "Case closed.",
    )


CLOSURE_NOTE_LENGTH = 400  # as the API's (web.schemas.ClosureSchema)


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
            {"id": a.id, "name": a.name, "caseload": loads.get(a.id, 0), "max_caseload": a.max_caseload}
            for a in uow.advocates.all()
            if a.active
        ]
        return render_template(
            "offers.html",
            advocate=advocate,
            offers=_pending_offers(uow.session, uow.provider_id),
            handovers=uow.handovers.of_status(domain.HANDOVER_PENDING),
            advocates=advocates,
            decline_reasons=[(code, DECLINE_LABELS.get(code, code)) for code in domain.DECLINE_REASONS],
        )


@page.post("/offers/<offer_id>/accept")
def accept_offer(offer_id: str):
    casework = instance().continuity.casework
    chosen = (request.form.get("advocate_id") or "").strip() or None
    return _answer(
        lambda uow, who: casework.accept_offer(uow, offer_id, actor=who, advocate_id=chosen), "Offer accepted."
    )


@page.post("/offers/<offer_id>/decline")
def decline_offer(offer_id: str):
    casework = instance().continuity.casework
    reason, note = _decline_form()
    if reason is None:
        return redirect(url_for("page.inbox"))
    return _answer(
        lambda uow, who: casework.decline_offer(uow, offer_id, actor=who, reason=reason, note=note), "Offer declined."
    )


@page.post("/handovers/<handover_id>/accept")
def accept_handover(handover_id: str):
    handover = instance().continuity.handover
    chosen = (request.form.get("advocate_id") or "").strip() or None
    return _answer(
        lambda uow, who: handover.accept(uow, handover_id, actor=who, advocate_id=chosen), "Handover accepted."
    )


@page.post("/handovers/<handover_id>/decline")
def decline_handover(handover_id: str):
    handover = instance().continuity.handover
    reason, note = _decline_form()
    if reason is None:
        return redirect(url_for("page.inbox"))
    return _answer(
        lambda uow, who: handover.decline(uow, handover_id, actor=who, reason=reason, note=note), "Handover declined."
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
        flash(f"Choose a reason; a note has at most {DECLINE_NOTE_LENGTH} characters.", "error")
        return None, None
    return reason, note


DECLINE_NOTE_LENGTH = 2000  # as the API's (web.schemas.DeclineOfferSchema)


def _answer(do: Callable[[AdvocacyUnitOfWork, str], object], done: str):
    """Run one inbox answer; a refused rule (already answered, nobody with room) comes back as a message."""
    try:
        with instance().unit_of_work() as uow:
            do(uow, _actor(_require_coordinator(uow)))
    except domain.CaseworkError as exc:
        flash(str(exc), "error")
        return redirect(url_for("page.inbox"))
    flash(done, "success")
    return redirect(url_for("page.inbox"))


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw or "")
    except ValueError:
        return None
