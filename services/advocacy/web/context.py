"""What every route of advocacy's web layer stands on: the instance the app serves (built once by
`services.advocacy.bootstrap`, kept on the app), and the check that a caller is its own provider."""

from __future__ import annotations

import functools

from flask import current_app
from flask_smorest import abort
from opentelemetry import trace

from services.advocacy.bootstrap import Advocacy
from shared.auth import current_principal, requires
from shared.telemetry import set_ids

EXTENSION = "advocacy"


def instance() -> Advocacy:
    return current_app.extensions[EXTENSION]


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
