"""What every route of advocacy's web layer stands on: the instance the app serves (built once by
`services.advocacy.bootstrap`, kept on the app), the check that a caller is its own provider, and a route's
unit of work on one of its cases."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from flask_smorest import abort
from opentelemetry import trace

from services.advocacy.bootstrap import Advocacy
from services.advocacy.models import Case
from services.advocacy.uow import SqlAdvocacyUnitOfWork
from shared.auth import current_principal, requires
from shared.telemetry import set_ids

EXTENSION = "advocacy"


def instance() -> Advocacy:
    return current_app.extensions[EXTENSION]


@contextmanager
def on_case(case_id: str) -> Iterator[tuple[Advocacy, SqlAdvocacyUnitOfWork, Case]]:
    """The instance, a unit of work, and this provider's case `case_id` in it (CaseNotFound, a 404, if it has
    none): what a route about one case acts on, in one transaction."""
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        yield advocacy, uow, advocacy.continuity.casework.case(uow, case_id)


def own(*scopes: str, any_of: bool = False):
    """A view's decorator: the scopes, and a token of this instance's own provider."""

    def decorate(view):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            provider_id = instance().provider_id
            principal = current_principal()
            if principal.org != provider_id:
                abort(403, message=f"this instance serves provider {provider_id}")
            set_ids(trace.get_current_span(), provider=provider_id, org=principal.org)
            return view(*args, **kwargs)

        return requires(*scopes, any_of=any_of)(checked)

    return decorate
