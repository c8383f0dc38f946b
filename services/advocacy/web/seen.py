"""The "Who has seen this record" panel of the case page in plain words (issue 15 item 2): each access log row
(shared.access_log) as who read the case, what of it, and how; the codes stay in the log and the API."""

from __future__ import annotations

from flask_babel import gettext as _

from services.advocacy.web import labels

# `what` of a read of a case, as context.what_of_route and the page name them.
WHAT_LABELS = {
    "case": "the case",
    "case.page": "the case page",
    "case.summary": "the case in a list",
    "case.contacts": "the contact log",
    "case.notes": "the notes",
    "case.risks": "the risk flags",
    "case.consent": "the consent records",
    "case.nrm": "the NRM record",
    "case.transitions": "the transitions",
    "case.access-log": "who has seen the case",
}
PAGE_PREFIX = "page."  # the page's endpoints; any other purpose is a route of the API


def what(code: str) -> str:
    return _(WHAT_LABELS[code]) if code in WHAT_LABELS else labels.words(code.replace(".", "_").replace("-", "_"))


def how(purpose: str) -> str:
    return _("on this page") if purpose.startswith(PAGE_PREFIX) else _("through the API")


def who(sub: str, org: str, names: dict[str, str]) -> str:
    """An advocate of this charity by name; anyone else by their organisation (the sub stays in the log)."""
    if sub.startswith("advocate:") and sub.split(":", 1)[1] in names:
        return names[sub.split(":", 1)[1]]
    return _("%(org)s (a system)", org=org)
