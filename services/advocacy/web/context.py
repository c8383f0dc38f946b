"""What every route of advocacy's web layer stands on: the instance the app serves (built once by
`services.advocacy.bootstrap`, kept on the app), the check that a caller is its own provider, a route's
unit of work on one of its cases, and the access log row every read of a case leaves (shared.access_log)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from flask import current_app, request
from flask_smorest import abort
from opentelemetry import trace
from sqlalchemy.orm import Session

from services.advocacy.bootstrap import Advocacy
from services.advocacy.models import AccessLog, Case
from services.advocacy.uow import SqlAdvocacyUnitOfWork
from shared import access_log
from shared.access_log import Reader
from shared.auth import current_principal, requires
from shared.telemetry import set_ids

EXTENSION = "advocacy"


def instance() -> Advocacy:
    return current_app.extensions[EXTENSION]


@contextmanager
def on_case(case_id: str) -> Iterator[tuple[Advocacy, SqlAdvocacyUnitOfWork, Case]]:
    """The instance, a unit of work, and this provider's case `case_id` in it (CaseNotFound, a 404, if it has
    none): what a route about one case acts on, in one transaction. A GET is a read of the case: its access
    log row is written in the same transaction, `what` named after the route (`case`, `case.notes`)."""
    advocacy = instance()
    with advocacy.unit_of_work() as uow:
        case = advocacy.continuity.casework.case(uow, case_id)
        if request.method == "GET":
            read(uow.session, [case.id], what_of_route())
        yield advocacy, uow, case


def read(session: Session, ids: Iterable[str], what: str, *, kind: str = "case", reader: Reader | None = None) -> None:
    """Record that these cases (or offers) were read, in `session`'s transaction: by the token's caller, or the
    page's `reader`."""
    access_log.record(session, AccessLog, kind, ids, what, reader=reader)


def what_of_route() -> str:
    """`/v1/cases/<case_id>/nrm` -> `case.nrm`: a short fixed name of what the route shows."""
    rule = request.url_rule.rule if request.url_rule is not None else ""
    parts = [p for p in rule.split("/") if p and not p.startswith("<") and p not in ("v1", "cases")]
    return ".".join(["case", *parts])


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
