"""advocacy's one error table: each casework rule that can refuse, the status it means over HTTP, and the body it
answers with. Both API blueprints answer a refused rule with `refused`."""

from __future__ import annotations

from collections.abc import Mapping

from services.advocacy import domain
from services.advocacy.casework.consent import ConsentInvalid
from services.advocacy.casework.contacts import CareInvalid
from shared.web import error_body

STATUS_OF: dict[type[domain.CaseworkError], int] = {
    domain.OfferNotFound: 404,
    domain.AdvocateNotFound: 404,
    domain.CaseNotFound: 404,
    domain.TransitionNotFound: 404,
    domain.TransitionInvalid: 422,
    domain.DecisionUndatable: 422,
    domain.DecisionNotOfCase: 422,
    domain.DecisionAlreadyRecorded: 409,
    domain.OfferNotPending: 409,
    domain.AdvocateUnavailable: 409,
    domain.NoAdvocateAvailable: 409,
    domain.AdvocateEmailTaken: 409,
    domain.AdvocateHasLiveCases: 409,
    domain.CaseNotOpen: 409,
    domain.TransitionClosed: 409,
    domain.ChecklistIncomplete: 409,
    domain.HandoverNotFound: 404,
    domain.HandoverNotPending: 409,
    domain.HandoverAwaitingAnswer: 409,
    domain.RegionNotServed: 422,
    domain.RegionUnknown: 422,
    ConsentInvalid: 422,
    CareInvalid: 422,
}
# Where a body names it (a transition's advocate to hand over to), an unknown advocate is bad input.
NAMED_IN_A_BODY: dict[type[domain.CaseworkError], int] = {domain.AdvocateNotFound: 422}


def refused(error: domain.CaseworkError, overrides: Mapping[type[domain.CaseworkError], int] | None = None):
    """The response for a refused casework rule: its status, and the field when the rule names one."""
    code = {**STATUS_OF, **(overrides or {})}.get(type(error), 409)
    return error_body(code, str(error), getattr(error, "field", None))
