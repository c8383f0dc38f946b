"""The advocate's page's Welsh catalogue (issue 13 item 7): extract every message the page can show, update
services/advocacy/web/translations/cy/LC_MESSAGES/messages.po (translations kept) and compile messages.mo.

    .venv/bin/python scripts/advocacy_messages.py          # update the .po and compile the .mo
    .venv/bin/python scripts/advocacy_messages.py --check  # fail if a message is missing or the .mo is stale

Messages come from the templates and web/*.py (`_`, `gettext`, `ngettext`) and from the label tables of
web/labels.py and web/page.py, whose words are looked up and then translated at render time.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "services" / "advocacy" / "web"
PO = WEB / "translations" / "cy" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
METHODS = [("templates/**.html", "jinja2"), ("*.py", "python"), ("**/__pycache__/**", "ignore")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}


Key = tuple[str | None, str | tuple[str, str]]  # (context, msgid or a plural's (singular, plural))


def label_tables() -> list[tuple[str | None, dict[str, str]]]:
    """Each label table of web/labels.py and web/page.py with its gettext context (None for most)."""
    sys.path.insert(0, str(ROOT))
    from services.advocacy.web import labels, page

    contexts = {"CLOCK_STATE_LABELS": labels.CLOCK_STATE_CONTEXT}
    return [
        (contexts.get(name), value)
        for module in (labels, page)
        for name, value in vars(module).items()
        if name.endswith("_LABELS") and isinstance(value, dict)
    ]


def messages() -> dict[Key, list[str]]:
    """Every message with the files it comes from."""
    found: dict[Key, list[str]] = {}
    for filename, _lineno, message, _comments, context in extract_from_dir(
        str(WEB), METHODS, keywords=KEYWORDS, options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    ):
        msgid = message if isinstance(message, str) else (message[0], message[1])
        found.setdefault((context, msgid), []).append(f"services/advocacy/web/{filename}")
    for context, table in label_tables():
        for text in table.values():
            found.setdefault((context, text), []).append("services/advocacy/web/labels.py")
    return found


def singular(msgid: str | Sequence[str]) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def load_po() -> Catalog:
    with PO.open("rb") as f:
        return read_po(f, locale="cy")


def updated() -> Catalog:
    """The catalogue with every current message, existing translations kept, gone ones dropped."""
    old = load_po() if PO.exists() else Catalog(locale="cy")
    new = Catalog(
        locale="cy",
        project="referrals-platform advocate page",
        version="1",
        msgid_bugs_address="",
        header_comment="# The advocate's page in Welsh (Cymraeg). Update with scripts/advocacy_messages.py.",
        creation_date=old.creation_date,
        revision_date=old.revision_date,
        last_translator="referrals-platform",
        language_team="Cymraeg",
        fuzzy=False,
    )
    for (context, msgid), where in sorted(messages().items(), key=lambda kv: (str(kv[0][1]), kv[0][0] or "")):
        previous = old.get(singular(msgid), context=context)
        blank = ("",) * new.num_plurals if isinstance(msgid, tuple) else ""
        string = previous.string if previous is not None else blank
        new.add(msgid, string, locations=[(path, 0) for path in sorted(set(where))], context=context)
    return new


def mo_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def main(argv: list[str]) -> int:
    if "--check" in argv:
        have = {(m.context, singular(m.id)) for m in load_po() if m.id}
        missing = {(context, singular(msgid)) for context, msgid in messages()} - have
        stale = not MO.exists() or MO.read_bytes() != mo_bytes(load_po())
        for context, text in sorted(missing, key=str):
            print(f"not in the catalogue: {text}" + (f" (context {context})" if context else ""))
        if stale:
            print("messages.mo is not compiled from messages.po: run scripts/advocacy_messages.py")
        return 1 if missing or stale else 0
    catalog = updated()
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as f:
        write_po(f, catalog, width=120, sort_output=True, include_lineno=False)
    MO.write_bytes(mo_bytes(load_po()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
