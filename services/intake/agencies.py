"""The agency directory (issue 13): registering an agency, and finding the children's services that lead for
a child where they were found.

A child is referred without needing consent, and the local authority's children's services lead for them
(Children Act 1989 s17 and s47; the Modern Slavery Act 2015 statutory guidance, England and Wales, on
children): intake resolves the referral's `location.local_authority` (an ONS code) to the agency of kind
childrens_services that covers it, and every later event about the child names that organisation, so
notifications tells it too (ids and codes only, as every webhook).
"""

from __future__ import annotations

from typing import Any

from services.intake.models import Agency
from services.intake.uow import IntakeUnitOfWork, IntakeUnits
from shared.clock import utcnow

CHILDRENS_SERVICES = "childrens_services"


def register(units: IntakeUnits, org_id: str, entry: dict[str, Any]) -> tuple[Agency, bool]:
    """Returns (the agency as now registered, whether it is new). Its codes are kept once each, in order."""
    with units() as uow:
        agency = uow.agencies.get(org_id)
        created = agency is None
        if agency is None:
            agency = Agency(org_id=org_id)
            uow.agencies.add(agency)
        agency.name, agency.kind = entry["name"], entry["kind"]
        agency.local_authority_codes = list(dict.fromkeys(entry["local_authority_codes"]))
        agency.updated_at = utcnow()
        return agency, created


def childrens_services_for(uow: IntakeUnitOfWork, is_child: bool, location: dict[str, Any]) -> str | None:
    """The org id of the children's services covering a child's local authority; None for an adult, a child
    with no local authority code, or a code no children's services agency covers. Two covering one code (a
    directory mistake) resolve to the first by org id, the same every time."""
    code = location.get("local_authority")
    if not is_child or not code:
        return None
    covering = uow.agencies.covering(code, kind=CHILDRENS_SERVICES)
    return covering[0].org_id if covering else None
