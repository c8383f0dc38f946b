"""intake's HTTP routes: JSON in, a use case called, JSON out."""

from __future__ import annotations

import re

from flask import request, url_for
from flask.views import MethodView
from flask_smorest import abort
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.intake import referrals
from services.intake.domain import ReferralRejected
from services.intake.models import Provider, Referral
from services.intake.schemas import (
    PROVIDER_ID,
    ProviderInSchema,
    ProviderOutSchema,
    ReferralDetailSchema,
    ReferralInSchema,
    ReferralQuerySchema,
    ReferralSummarySchema,
)
from shared.auth import current_principal, requires
from shared.outbox import utcnow
from shared.web import Blueprint

_PROVIDER_ID = re.compile(PROVIDER_ID)


def referral_view(referral: Referral, *, detail: bool) -> dict:
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
    if detail:
        view.update({k: v for k, v in referral.body.items() if k != "external_reference"})
        view["referred_at"] = referral.referred_at
    return view


def referrals_blueprint(sessions: sessionmaker) -> Blueprint:
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
            try:
                referral, created = referrals.submit(
                    sessions, current_principal().org, body, request.get_json(silent=True)
                )
            except ReferralRejected as exc:
                abort(422, errors={"json": {exc.field: [exc.message]}})
            except referrals.ReferralConflict:
                abort(409, message="external_reference was already used for a different referral.")
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
                pagination_parameters.item_count = session.scalar(select(func.count()).where(*where))
                rows = session.scalars(
                    select(Referral)
                    .where(*where)
                    .order_by(Referral.received_at.desc(), Referral.id)
                    .offset(pagination_parameters.first_item)
                    .limit(pagination_parameters.page_size)
                ).all()
            return [referral_view(r, detail=False) for r in rows]

    @blp.route("/<referral_id>")
    class ReferralById(MethodView):
        @requires("referrals:read")
        @blp.response(200, ReferralDetailSchema)
        def get(self, referral_id):
            """Read a referral: its own org, or the provider it is allocated to (a logged disclosure)."""
            try:
                return referral_view(referrals.read(sessions, current_principal(), referral_id), detail=True)
            except referrals.NotFound:
                abort(404, message="No such referral.")

    @blp.route("/<referral_id>/withdrawal")
    class Withdrawal(MethodView):
        @requires("referrals:write")
        @blp.response(200, ReferralSummarySchema)
        def post(self, referral_id):
            """Withdraw a referral: a pending offer is cancelled and the provider told."""
            try:
                return referral_view(referrals.withdraw(sessions, current_principal(), referral_id), detail=False)
            except referrals.NotFound:
                abort(404, message="No such referral.")
            except referrals.InvalidState as exc:
                abort(409, message=str(exc))

    return blp


def providers_blueprint(sessions: sessionmaker) -> Blueprint:
    blp = Blueprint("providers", __name__, url_prefix="/v1/providers", description="The provider directory")

    @blp.route("")
    class Providers(MethodView):
        @requires("providers:admin")
        @blp.response(200, ProviderOutSchema(many=True))
        def get(self):
            """List the advocacy providers in the directory."""
            with sessions() as session:
                return session.scalars(select(Provider).order_by(Provider.id)).all()

    @blp.route("/<provider_id>")
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
            with sessions.begin() as session:
                provider = session.get(Provider, provider_id)
                created = provider is None
                if created:
                    provider = Provider(id=provider_id)
                    session.add(provider)
                for key, value in body.items():
                    setattr(provider, key, value)
                provider.updated_at = utcnow()
            return provider, 201 if created else 200

    return blp
