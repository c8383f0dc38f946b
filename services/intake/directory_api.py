"""intake's agency directory and the directories a charity may read (issue 13): register an agency
(`providers:admin`, as a provider is), and list providers and agencies by id and name (`cases:read`), so the
advocate's page chooses a receiving agency or provider instead of typing its id. Thin: JSON in, a use case
called, JSON out."""

from __future__ import annotations

import re

from flask_smorest import abort
from sqlalchemy import select

from contracts.events import ORG_ID_PATTERN
from services.intake import agencies
from services.intake.api import instance
from services.intake.models import Agency, Provider
from services.intake.schemas import (
    AgencyInSchema,
    AgencyOutSchema,
    DirectoryAgencySchema,
    DirectoryProviderSchema,
)
from shared.auth import requires
from shared.web import Blueprint

_ORG_ID = re.compile(ORG_ID_PATTERN)
_ORG_ID_DOC = {"in": "path", "name": "org_id", "schema": {"type": "string", "pattern": ORG_ID_PATTERN}}

agencies_blp = Blueprint("agencies", __name__, url_prefix="/v1/agencies", description="The agency directory")


@agencies_blp.route("/<org_id>", methods=["PUT"], parameters=[_ORG_ID_DOC])
@requires("providers:admin")
@agencies_blp.arguments(AgencyInSchema)
@agencies_blp.response(200, AgencyOutSchema)
@agencies_blp.alt_response(201, schema=AgencyOutSchema, description="Registered a new agency")
def register_agency(body, org_id):
    """Register or update an agency: its org id (the `org` claim of its tokens), name, kind and the local
    authorities (ONS codes) it covers. A child referred in a local authority a `childrens_services` agency
    covers has that agency told of the referral, its allocation, turning 18, lost contact and high risk."""
    if not _ORG_ID.match(org_id):
        abort(422, errors={"path": {"org_id": ["Use 1-100 letters, digits and . _ : - (a letter or digit first)."]}})
    agency, created = agencies.register(instance().use_cases.units, org_id, body)
    return agency, 201 if created else 200


directory_blp = Blueprint(
    "directory", __name__, url_prefix="/v1/directory", description="Who a charity may hand a survivor to"
)


@directory_blp.route("/providers", methods=["GET"])
@requires("cases:read")
@directory_blp.response(200, DirectoryProviderSchema(many=True))
def provider_directory():
    """The advocacy providers, by name: ids and names only (a receiving provider for a handover)."""
    with instance().sessions() as session:
        return session.execute(select(Provider.id, Provider.name).order_by(Provider.name, Provider.id)).all()


@directory_blp.route("/agencies", methods=["GET"])
@requires("cases:read")
@directory_blp.response(200, DirectoryAgencySchema(many=True))
def agency_directory():
    """The agencies, by name: org ids, names and kinds only (a transition's receiving agency)."""
    with instance().sessions() as session:
        statement = select(Agency.org_id, Agency.name, Agency.kind).order_by(Agency.name, Agency.org_id)
        return session.execute(statement).all()
