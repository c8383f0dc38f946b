"""intake's HTTP routes: JSON in, a use case called, JSON out."""

from __future__ import annotations

import re

from flask import g, url_for
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.intake import directory, errors, referrals
from services.intake.bootstrap import Intake
from services.intake.domain import Pathway, offer_summary
from services.intake.models import Escalation, Offer, Provider, Referral
from services.intake.schemas import (
    PROVIDER_ID,
    EscalationSchema,
    OfferByHandSchema,
    OfferHistorySchema,
    ProviderInSchema,
    ProviderOutSchema,
    ReferralDetailSchema,
    ReferralInSchema,
    ReferralQuerySchema,
    ReferralSummarySchema,
)
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
    view = {
        "id": referral.id,
        "external_reference": referral.external_reference,
        "status": referral.status,
        "pathway": referral.pathway,
        "is_child": referral.is_child,
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


def referrals_blueprint(intake: Intake) -> Blueprint:
    units, offering, sessions = intake.use_cases.units, intake.use_cases.offering, intake.sessions
    blp = Blueprint("referrals", __name__, url_prefix="/v1/referrals", description="Referrals from agencies")

    @blp.route("")
    class Referrals(MethodView):
        @requires("referrals:write")
        @blp.arguments(ReferralInSchema)
        @blp.response(201, ReferralSummarySchema)
        @blp.alt_response(200, schema=ReferralSummarySchema, description="A replay of an earlier identical POST")
        @blp.alt_response(409, description="The external_reference was used before with a different body")
        def post(self, body):
            """Submit a referral (idempotent by external_reference)."""
            # The hash of the JSON as sent, which the web guard parsed once (shared.web): tells a replay from a
            # different referral under the same reference.
            submission = referrals.Submission(current_principal().org, body, referrals.request_hash(g.json_body))
            referral, created = referrals.submit(units, offering, submission)
            location = url_for("referrals.ReferralById", referral_id=referral.id)
            return referral_view(referral, detail=False), (201 if created else 200), {"Location": location}

        @requires("referrals:read")
        @blp.arguments(ReferralQuerySchema, location="query")
        @blp.response(200, ReferralSummarySchema(many=True))
        @blp.paginate()
        def get(self, query, pagination_parameters):
            """List your organisation's referrals, newest first."""
            where = [Referral.org_id == current_principal().org]
            if "status" in query:
                where.append(Referral.status == query["status"])
            with sessions() as session:
                statement = select(Referral).where(*where).order_by(Referral.received_at.desc(), Referral.id)
                rows = page(session, statement, pagination_parameters)
            return [referral_view(r, detail=False) for r in rows]

    @blp.route("/<referral_id>")
    class ReferralById(MethodView):
        @requires("referrals:read")
        @blp.response(200, ReferralDetailSchema)
        def get(self, referral_id):
            """Read a referral and its offer history. Its body only for its own org, or the provider it is
            allocated to (a logged disclosure); a coordinator sees its progress."""
            referral, offers, show_body = referrals.read(units, current_principal(), referral_id)
            return referral_view(referral, detail=show_body, offers=offers)

    @blp.route("/<referral_id>/withdrawal")
    class Withdrawal(MethodView):
        @requires("referrals:write")
        @blp.response(200, ReferralSummarySchema)
        def post(self, referral_id):
            """Withdraw a referral: a pending offer is cancelled and the provider told."""
            return referral_view(referrals.withdraw(units, current_principal(), referral_id), detail=False)

    @blp.route("/<referral_id>/offers")
    class OfferByHand(MethodView):
        @requires("referrals:write")
        @blp.arguments(OfferByHandSchema)
        @blp.response(201, OfferHistorySchema)
        def post(self, body, referral_id):
            """A coordinator offers a referral to a provider they chose (e.g. after an escalation)."""
            _coordinator_only()
            principal = current_principal()
            offer = referrals.offer_by_hand(units, offering, principal, referral_id, body["provider_id"])
            return offer_view(offer)

    errors.register(blp)
    return blp


def escalations_blueprint(sessions: sessionmaker) -> Blueprint:
    blp = Blueprint("escalations", __name__, url_prefix="/v1/escalations", description="A coordinator's queue")

    @blp.route("")
    class Escalations(MethodView):
        @requires("referrals:read")
        @blp.response(200, EscalationSchema(many=True))
        def get(self):
            """Open escalations, oldest first: referrals nobody could take, and people in immediate danger."""
            _coordinator_only()
            with sessions() as session:
                rows = session.execute(
                    select(Escalation, Referral)
                    .join(Referral, Referral.id == Escalation.referral_id)
                    .where(Escalation.resolved_at.is_(None), Referral.status.not_in(("withdrawn", "allocated")))
                    .order_by(Escalation.raised_at, Escalation.id)
                ).all()
                offers: dict[str, list[Offer]] = {}
                for offer in session.scalars(
                    select(Offer).where(Offer.referral_id.in_({r.id for _, r in rows})).order_by(Offer.offered_at)
                ):
                    offers.setdefault(offer.referral_id, []).append(offer)
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

    return blp


def _coordinator_only() -> None:
    if current_principal().org_kind != "coordinator":
        abort(403, message="Only a coordinator (org_kind coordinator) may do this.")


def providers_blueprint(intake: Intake) -> Blueprint:
    units, sessions = intake.use_cases.units, intake.sessions
    blp = Blueprint("providers", __name__, url_prefix="/v1/providers", description="The provider directory")

    @blp.route("")
    class Providers(MethodView):
        @requires("providers:admin")
        @blp.response(200, ProviderOutSchema(many=True))
        def get(self):
            """List the advocacy providers in the directory."""
            with sessions() as session:
                return session.scalars(select(Provider).order_by(Provider.id)).all()

    provider_id_doc = {"in": "path", "name": "provider_id", "schema": {"type": "string", "pattern": PROVIDER_ID}}

    @blp.route("/<provider_id>", parameters=[provider_id_doc])
    class ProviderById(MethodView):
        @requires("providers:admin")
        @blp.arguments(ProviderInSchema)
        @blp.response(200, ProviderOutSchema)
        @blp.alt_response(201, schema=ProviderOutSchema, description="Registered a new provider")
        def put(self, body, provider_id):
            """Register or update a provider."""
            if not _PROVIDER_ID.match(provider_id):
                abort(
                    422,
                    errors={"path": {"provider_id": ["Use 2-63 lower-case letters, digits and hyphens."]}},
                )
            provider, created = directory.register(units, provider_id, body)
            return provider, 201 if created else 200

    return blp
