"""intake's one error table: each refusal of its use cases, the status it means over HTTP and what the caller is
told. The referrals blueprint registers it once, instead of a try/except in each route."""

from __future__ import annotations

from collections.abc import Callable

from flask_smorest import Blueprint

from services.intake import referrals
from services.intake.domain import CannotOffer, InvalidState, ReferralErased, ReferralRejected
from services.intake.offering import UnknownProvider
from shared.web import error_body

# exception -> (status, the message, or None for the exception's own text; the field the error is about)
REFUSALS: dict[type[Exception], tuple[int, str | None, str | None]] = {
    referrals.NotFound: (404, "No such referral.", None),
    referrals.ReferralConflict: (409, "external_reference was already used for a different referral.", None),
    InvalidState: (409, None, None),
    CannotOffer: (409, None, None),
    ReferralErased: (410, "The referral was erased: its personal data is gone.", "referral_id"),
    UnknownProvider: (422, "No such provider in the directory.", "provider_id"),
}


def _handler(code: int, message: str | None, field: str | None) -> Callable[[Exception], tuple[dict, int]]:
    return lambda error: error_body(code, message or str(error), field)


def register(blp: Blueprint) -> None:
    for exception, (code, message, field) in REFUSALS.items():
        blp.errorhandler(exception)(_handler(code, message, field))
    # A rule the schema alone cannot see names its own field (e.g. subject.date_of_birth).
    blp.errorhandler(ReferralRejected)(lambda error: error_body(422, error.message, error.field))
