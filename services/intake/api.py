"""intake's HTTP routes: JSON in, a use case called, JSON out (eShop's OrdersApi: each blueprint is a table of
top-level functions). A route finds the Intake it serves on the app (`instance()`); create_app registers the
blueprints."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import current_app, g, url_for
from flask_smorest import abort
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.intake import directory, errors, rectification, referrals
from services.intake.bootstrap import Intake
from services.intake.domain import Pathway, offer_summary
from services.intake.models import AccessLog, Agency, Escalation, Offer, Provider, Referral, in_coordinators_queue
from services.intake.schemas import (
    PROVIDER_ID,
    EscalationSchema,
    OfferByHandSchema,
    OfferHistorySchema,
    ProviderInSchema,
    ProviderOutSchema,
    RectificationSchema,
    ReferralDetailSchema,
    ReferralInSchema,
    ReferralQuerySchema,
    ReferralReadQuerySchema,
    ReferralSummarySchema,
)
from shared import access_log
from shared.auth import current_principal, requires
from shared.web import Blueprint, page

_PROVIDER_ID = re.compile(PROVIDER_ID)


def offer_view(offer: Offer) -> dict:
    return {
        "provider_id": offer.provider_id,
        "status": offer.status,
        "decline_reason": offer.decline_reason,
        "offered_at": offer.offered_at,
        "respond_by": offer.respond_by,
        "responded_at": offer.responded_at,
        "offered_by": "routing" if offer.offered_by == "routing" else "coordinator",
    }


def referral_view(referral: Referral, *, detail: bool, offers: list[Offer] | None = None) -> dict:
    view: dict[str, Any] = {
        "id": referral.id,
        "external_reference": referral.reference_for_referrer,  # null when only its keyed hash is kept
        "status": referral.status,
        "pathway": referral.pathway,
        "duty_to_notify_recorded": referral.duty_to_notify_recorded,
        "duty_to_notify_rule": referral.duty_to_notify_rule,
        "is_child": referral.is_child,
        "local_authority_org_id": referral.local_authority_org_id,
        "received_at": referral.received_at,
        "updated_at": referral.updated_at,
        "allocation": None,
    }
    if referral.status == "allocated" or referral.accepted_at:
        view["allocation"] = {
            "provider_id": referral.provider_id,
            "case_id": referral.case_id,
            "advocate": referral.advocate,
            "accepted_at": referral.accepted_at,
        }
    if offers is not None:
        view["offers"] = [offer_view(o) for o in offers]
    if detail:
        view.update({k: v for k, v in referral.body.items() if k != "external_reference"})
        view["referred_at"] = referral.referred_at
    return view


EXTENSION = "intake"  # where create_app keeps the Intake it bootstrapped


def instance() -> Intake:
    """The Intake this app serves: built once by create_app (services.intake.bootstrap), kept on the app."""
    return current_app.extensions[EXTENSION]


def read(ids: Iterable[str], what: str, *, session: Session | None = None, purpose: str | None = None) -> None:
    """Record that the caller read these referrals (shared.access_log): in `session`'s transaction, or in one of
    its own before the route answers (fail closed: no row, no answer). The purpose defaults to the route."""
    if session is not None:
        access_log.record(session, AccessLog, "referral", ids, what, purpose=purpose)
        return
    with instance().sessions.begin() as own:
        access_log.record(own, AccessLog, "referral", ids, what, purpose=purpose)


def _coordinator_only() -> None:
    if current_principal().org_kind != "coordinator":
        abort(403, message="Only a coordinator (org_kind coordinator) may do this.")


referrals_blp = Blueprint("referrals", __name__, url_prefix="/v1/referrals", description="Referrals from agencies")
errors.register(referrals_blp)


@referrals_blp.route("", methods=["GET"])
@requires("referrals:read")
@referrals_blp.arguments(ReferralQuerySchema, location="query")
@referrals_blp.response(200, ReferralSummarySchema(many=True))
@referrals_blp.paginate()
def list_referrals(query, pagination_parameters):
    """List your organisation's referrals, newest first."""
    where = [Referral.org_id == current_principal().org]
    if "status" in query:
        where.append(Referral.status == query["status"])
    with instance().sessions.begin() as session:
        statement = select(Referral).where(*where).order_by(Referral.received_at.desc(), Referral.id)
        rows = page(session, statement, pagination_parameters)
        read([r.id for r in rows], "referral.summary", session=session)  # one row per referral listed
        return [referral_view(r, detail=False) for r in rows]


@referrals_blp.route("", methods=["POST"])
@requires("referrals:write")
@referrals_blp.arguments(ReferralInSchema)
@referrals_blp.response(201, ReferralSummarySchema)
@referrals_blp.alt_response(200, schema=ReferralSummarySchema, description="A replay of an earlier identical POST")
@referrals_blp.alt_response(409, description="The external_reference was used before with a different body")
def submit_referral(body):
    """Submit a referral (idempotent by external_reference)."""
    use_cases = instance().use_cases
    # The hash of the JSON as sent, which the web guard parsed once (shared.web): tells a replay from a
    # different referral under the same reference.
    principal = current_principal()
    digest = referrals.request_hash(g.json_body)
    keys = instance().config.keys
    submission = referrals.Submission(principal.org, body, digest, principal.org_kind, keys)
    referral, created = referrals.submit(use_cases.units, use_cases.offering, submission)
    location = url_for("referrals.read_referral", referral_id=referral.id)
    # Echoed as sent, also for an anonymous referral that keeps only its hash: the referrer pairs it with the id.
    view = referral_view(referral, detail=False) | {"external_reference": body["external_reference"]}
    return view, (201 if created else 200), {"Location": location}


@referrals_blp.route("/<referral_id>", methods=["GET"])
@requires("referrals:read")
@referrals_blp.arguments(ReferralReadQuerySchema, location="query", as_kwargs=True)
@referrals_blp.response(200, ReferralDetailSchema)
@referrals_blp.alt_response(410, description="The referral was erased (to its own org and the charity that held it)")
def read_referral(referral_id, purpose=None):
    """Read a referral and its offer history. Its body only for its own org, or the provider it is
    allocated to (a logged disclosure, with its purpose); a coordinator sees its progress."""
    principal = current_principal()
    referral, offers, show_body = referrals.read(instance().use_cases.units, principal, referral_id, purpose=purpose)
    view = referral_view(referral, detail=show_body, offers=offers)
    if referral.local_authority_org_id is not None:
        with instance().sessions() as session:
            agency = session.get(Agency, referral.local_authority_org_id)
        view["local_authority_name"] = agency.name if agency is not None else None
    read([referral.id], "referral" if show_body else "referral.progress", purpose=purpose)  # stated, else the route
    return view


@referrals_blp.route("/<referral_id>", methods=["PATCH"])
@requires("referrals:write")
@referrals_blp.arguments(RectificationSchema, content_type="application/merge-patch+json")
@referrals_blp.response(200, ReferralDetailSchema)
@referrals_blp.alt_response(410, description="The referral was erased: nothing is left to correct")
def rectify_referral(patch, referral_id):
    """Correct a referral (UK GDPR Art. 16): a JSON Merge Patch (RFC 7396, `application/merge-patch+json`;
    `application/json` is accepted too) of its subject, referrer, needs and risk, by the referring
    organisation. The merged referral must pass the rules of a new referral (422 naming the field), or nothing
    changes. Its pathway, routing and Duty to Notify record stand; a correction that would make the person a
    child or an adult where they were not is refused. The charity holding its case is told to fetch it again
    (referral.rectified). Idempotent by nature: the same patch again changes nothing and tells nobody (no
    Idempotency-Key needed). Answers the referral as GET does."""
    referral, offers = rectification.rectify(instance().use_cases.units, current_principal(), referral_id, patch)
    return referral_view(referral, detail=True, offers=offers)


@referrals_blp.route("/<referral_id>/withdrawal", methods=["POST"])
@requires("referrals:write")
@referrals_blp.response(200, ReferralSummarySchema)
@referrals_blp.alt_response(410, description="The referral was erased")
def withdraw_referral(referral_id):
    """Withdraw a referral: a pending offer is cancelled and the provider told."""
    withdrawn = referrals.withdraw(instance().use_cases.units, current_principal(), referral_id)
    return referral_view(withdrawn, detail=False)


@referrals_blp.route("/<referral_id>/offers", methods=["POST"])
@requires("referrals:write")
@referrals_blp.arguments(OfferByHandSchema)
@referrals_blp.response(201, OfferHistorySchema)
def offer_by_hand(body, referral_id):
    """A coordinator offers a referral to a provider they chose (e.g. after an escalation)."""
    _coordinator_only()
    use_cases = instance().use_cases
    offer = referrals.offer_by_hand(
        use_cases.units, use_cases.offering, current_principal(), referral_id, body["provider_id"]
    )
    return offer_view(offer)


escalations_blp = Blueprint("escalations", __name__, url_prefix="/v1/escalations", description="A coordinator's queue")


@escalations_blp.route("", methods=["GET"])
@requires("referrals:read")
@escalations_blp.response(200, EscalationSchema(many=True))
def list_escalations() -> list[dict]:
    """Open escalations, oldest first: referrals nobody could take, and people in immediate danger."""
    _coordinator_only()
    with instance().sessions() as session:
        rows = session.execute(
            select(Escalation, Referral)
            .join(Referral, Referral.id == Escalation.referral_id)
            .where(in_coordinators_queue())
            .order_by(Escalation.raised_at, Escalation.id)
        ).all()
        offers: dict[str, list[Offer]] = {}
        for offer in session.scalars(
            select(Offer).where(Offer.referral_id.in_({r.id for _, r in rows})).order_by(Offer.offered_at)
        ):
            offers.setdefault(offer.referral_id, []).append(offer)
    read([referral.id for _, referral in rows], "referral.summary")  # the coordinator's queue shows summaries
    return [
        {
            "referral_id": referral.id,
            "status": referral.status,
            "reason": escalation.reason,
            "raised_at": escalation.raised_at,
            "org_id": referral.org_id,
            "summary": offer_summary(referral.body, Pathway(referral.pathway, referral.is_child, True)),
            "offers": [offer_view(o) for o in offers.get(referral.id, [])],
        }
        for escalation, referral in rows
    ]


providers_blp = Blueprint("providers", __name__, url_prefix="/v1/providers", description="The provider directory")
_PROVIDER_ID_DOC = {"in": "path", "name": "provider_id", "schema": {"type": "string", "pattern": PROVIDER_ID}}


@providers_blp.route("", methods=["GET"])
@requires("providers:admin")
@providers_blp.response(200, ProviderOutSchema(many=True))
def list_providers():
    """List the advocacy providers in the directory."""
    with instance().sessions() as session:
        return session.scalars(select(Provider).order_by(Provider.id)).all()


@providers_blp.route("/<provider_id>", methods=["PUT"], parameters=[_PROVIDER_ID_DOC])
@requires("providers:admin")
@providers_blp.arguments(ProviderInSchema)
@providers_blp.response(200, ProviderOutSchema)
@providers_blp.alt_response(201, schema=ProviderOutSchema, description="Registered a new provider")
def register_provider(body, provider_id):
    """Register or update a provider."""
    if not _PROVIDER_ID.match(provider_id):
        abort(422, errors={"path": {"provider_id": ["Use 2-63 lower-case letters, digits and hyphens."]}})
    provider, created = directory.register(instance().use_cases.units, provider_id, body)
    return provider, 201 if created else 200
