"""The page in English and Welsh (issue 13 item 7): Flask-Babel with the gettext catalogue under
translations/cy/LC_MESSAGES (the .po and its compiled .mo are both committed; a test checks they agree).

`?lang=cy` or `?lang=en` on any page switches and is remembered in a cookie of its own (the session is
cleared at sign-in and sign-out, a language choice is not); without a choice, Accept-Language decides.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from babel.dates import format_date
from flask import Flask, Response, request
from flask_babel import Babel, get_locale
from markupsafe import Markup

ENGLISH, WELSH = "en", "cy"
LANGUAGES = (ENGLISH, WELSH)
COOKIE = "advocacy_lang"
COOKIE_AGE = 365 * 24 * 3600
TRANSLATIONS = Path(__file__).parent / "translations"


def init_i18n(app: Flask, *, secure: bool) -> None:
    Babel(
        app,
        locale_selector=select_locale,
        default_locale=ENGLISH,
        default_translation_directories=str(TRANSLATIONS),
    )

    @app.after_request
    def remember_language(response: Response) -> Response:
        asked = request.args.get("lang")
        if asked in LANGUAGES and request.cookies.get(COOKIE) != asked:
            response.set_cookie(COOKIE, asked, max_age=COOKIE_AGE, httponly=True, samesite="Lax", secure=secure)
        return response


def select_locale() -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    kept = request.cookies.get(COOKIE)
    if kept in LANGUAGES:
        return kept
    return request.accept_languages.best_match(LANGUAGES, default=ENGLISH)


def language() -> str:
    """The page's language now: 'cy' or 'en' (English outside a request)."""
    locale = get_locale()
    return WELSH if locale is not None and locale.language == WELSH else ENGLISH


def html_lang() -> str:
    return "cy" if language() == WELSH else "en-GB"


def day(on: date, *, long: bool = False) -> str:
    """A day for the reader: '3 Feb 2027' / '3 February 2027'; in Welsh '3 Chwef 2027' / '3 Chwefror 2027'."""
    if language() == WELSH:
        return format_date(on, "d MMMM y" if long else "d MMM y", locale=WELSH)
    return on.strftime("%-d %B %Y" if long else "%-d %b %Y")


def moment(at: datetime) -> str:
    """A day and a time (UTC, as the page says): '3 Feb 2027 14:05'."""
    return f"{day(at.date())} {at.strftime('%H:%M')}"


def free_text_lang() -> Markup:
    """` lang="en"` on a Welsh page's element holding English the records store as text (a timeline detail, a
    clock's basis), so a screen reader reads it as English; nothing on an English page."""
    return Markup(' lang="en"') if language() == WELSH else Markup("")
