"""The advocate's page: server-rendered HTML and CSS (no JavaScript), accessible, CSRF-protected forms.

My caseload (overdue first), upcoming transitions, and a case page with its timeline and the forms to record
a decision or plan, tick and complete a transition. URLs carry ids only, never personal data.
"""

from __future__ import annotations

import logging
from datetime import date

from flask import Blueprint, Flask, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.advocacy import domain
from services.advocacy.bootstrap import Continuity
from services.advocacy.continuity import deadlines
from services.advocacy.config import AdvocacyConfig
from services.advocacy.continuity.wall_clock import today
from services.advocacy.models import Advocate, Case
from services.advocacy.web.caseload import caseload, person_label, upcoming_transitions
from services.advocacy.web import auth, labels, records
from shared.config import Settings

log = logging.getLogger(__name__)


def init_page(app: Flask, sessions: sessionmaker, continuity: Continuity, config: AdvocacyConfig, settings: Settings):
    app.secret_key = config.session_secret or _dev_secret(config)
    app.config.update(
        SESSION_COOKIE_NAME="advocacy_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not config.dev_signin,
    )
    app.register_blueprint(make_page_blueprint(sessions, continuity, config, auth.Oidc(settings, config)))


def _dev_secret(config: AdvocacyConfig) -> str:
    import secrets

    if not config.dev_signin:
        log.warning("ADVOCACY_SESSION_SECRET is not set: page sessions last only as long as this process")
    return secrets.token_hex(32)


def make_page_blueprint(sessions: sessionmaker, continuity: Continuity, config: AdvocacyConfig, oidc: auth.Oidc):
    page = Blueprint("page", __name__, template_folder="templates", static_folder="static", static_url_path="/assets")
    provider_id = config.provider_id
    nrm, transitions = continuity.nrm, continuity.transitions

    @page.context_processor
    def helpers():
        return {
            "csrf_token": auth.csrf_token,
            "kind_label": labels.transition_label,
            "clock_label": labels.clock_label,
            "checklist_label": lambda k: labels.CHECKLIST_LABELS.get(k, k),
            "provider_id": provider_id,
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

    def require_advocate(db) -> Advocate:
        advocate = auth.signed_in(db, provider_id)
        if advocate is None:
            abort(redirect(url_for("page.signin")))
        g.advocate = advocate
        return advocate

    def visible_case(db, advocate: Advocate, case_id: str) -> Case:
        case = db.get(Case, case_id)
        mine = case is not None and (advocate.role == domain.ROLE_COORDINATOR or case.advocate_id == advocate.id)
        if case is None or case.provider_id != provider_id or not mine:
            abort(404)  # another advocate's case is "not found", never "forbidden"
        return case

    def actor(advocate: Advocate) -> str:
        return f"advocate:{advocate.id}"

    @page.get("/")
    def home():
        return redirect(url_for("page.my_caseload"))

    @page.get("/signin")
    def signin():
        with sessions.begin() as db:
            advocates = []
            if config.dev_signin:
                advocates = db.scalars(
                    select(Advocate)
                    .where(Advocate.provider_id == provider_id, Advocate.active.is_(True))
                    .order_by(Advocate.name)
                ).all()
            return render_template("signin.html", advocates=advocates, dev=config.dev_signin, oidc=oidc.enabled)

    @page.post("/signin/dev")
    def dev_signin():
        if not config.dev_signin:
            abort(404)
        with sessions.begin() as db:
            advocate = db.get(Advocate, request.form.get("advocate_id", ""))
            if advocate is None or advocate.provider_id != provider_id or not advocate.active:
                flash("Choose one of the advocates listed.", "error")
                return redirect(url_for("page.signin"))
            auth.sign_in(advocate)
        log.info("advocate signed in (dev)", extra={"advocate_id": advocate.id, "provider_id": provider_id})
        return redirect(url_for("page.my_caseload"))

    @page.get("/signin/oidc")
    def oidc_start():
        if not oidc.enabled:
            abort(404)
        return redirect(oidc.authorization_url())

    @page.get("/signin/callback")
    def oidc_callback():
        if not oidc.enabled:
            abort(404)
        with sessions.begin() as db:
            advocate = oidc.advocate_from_callback(db)
            if advocate is None or not advocate.active:
                abort(403, description="You are not an advocate of this provider.")
            auth.sign_in(advocate)
        log.info("advocate signed in (oidc)", extra={"advocate_id": advocate.id, "provider_id": provider_id})
        return redirect(url_for("page.my_caseload"))

    @page.post("/signout")
    def signout():
        auth.sign_out()
        return redirect(url_for("page.signin"))

    @page.get("/caseload")
    def my_caseload():
        with sessions.begin() as db:
            advocate = require_advocate(db)
            day = today(continuity.wall_clock)
            return render_template(
                "caseload.html",
                advocate=advocate,
                rows=caseload(db, advocate, day),
                upcoming=upcoming_transitions(db, advocate, day),
                today=day,
            )

    @page.get("/cases/<case_id>")
    def case_page(case_id: str):
        with sessions.begin() as db:
            advocate = require_advocate(db)
            case = visible_case(db, advocate, case_id)
            day = today(continuity.wall_clock)
            names = {a.id: a.name for a in db.scalars(select(Advocate).where(Advocate.provider_id == provider_id))}
            record = nrm.record(db, case) if case.status == domain.CASE_OPEN else None
            return render_template(
                "case.html",
                advocate=advocate,
                case=case,
                label=person_label(case),
                record=record,
                decisions=nrm.decisions_of(db, case.id),
                clocks=[records.clock_view(c, day) for c in nrm.clocks_of(db, case.id)],
                transitions=transitions.of_case(db, case.id),
                timeline=case.timeline,
                names=names,
                advocates=[a for a in names.items() if a[0] != case.advocate_id],
                stages=deadlines.STAGES,
                kinds=domain.TRANSITION_KINDS,
                today=day,
            )

    def act(case_id: str, do, done: str):
        """Run one form's use case; a refused rule comes back as a message on the case page."""
        try:
            with sessions.begin() as db:
                advocate = require_advocate(db)
                do(db, visible_case(db, advocate, case_id), actor(advocate))
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
        return act(
            case_id,
            lambda db, case, who: nrm.record_decision(
                db, case, stage=stage, outcome=outcome, decided_on=decided_on, actor=who
            ),
            f"{outcome.capitalize()} {stage.upper()} decision recorded.",
        )

    @page.post("/cases/<case_id>/transitions")
    def plan_transition(case_id: str):
        kind, planned_for = request.form.get("kind", ""), _date(request.form.get("planned_for"))
        if kind not in domain.TRANSITION_KINDS or planned_for is None:
            flash("Choose the kind of transition and its planned date.", "error")
            return redirect(url_for("page.case_page", case_id=case_id))

        def given(name: str) -> str | None:
            return (request.form.get(name) or "").strip() or None

        def plan(db, case, who):
            return transitions.plan(
                db,
                case,
                kind=kind,
                planned_for=planned_for,
                actor=who,
                receiving_agency=given("receiving_agency"),
                receiving_provider_id=given("receiving_provider_id"),
                to_advocate_id=given("to_advocate_id"),
            )

        return act(
            case_id,
            plan,
            f"{labels.transition_label(kind)} planned.",
        )

    @page.post("/cases/<case_id>/transitions/<transition_id>/checklist")
    def tick_checklist(case_id: str, transition_id: str):
        ticked = set(request.form.getlist("done"))

        def do(db, case, who):
            current = transitions.get(db, case, transition_id)
            ticks = {item: item in ticked for item in current.checklist}
            transitions.update(db, case, transition_id, actor=who, ticks=ticks)

        return act(case_id, do, "Checklist saved.")

    @page.post("/cases/<case_id>/transitions/<transition_id>/completion")
    def complete_transition(case_id: str, transition_id: str):
        return act(
            case_id,
            lambda db, case, who: transitions.complete(db, case, transition_id, actor=who),
            "Transition completed.",
        )

    return page


def _date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw or "")
    except ValueError:
        return None
