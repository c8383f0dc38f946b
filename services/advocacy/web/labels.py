"""Words the page shows for the codes the records hold."""

from __future__ import annotations

import re
from datetime import date, datetime

from flask_babel import gettext as _
from flask_babel import ngettext, pgettext

from services.advocacy.continuity import deadlines
from services.advocacy.web import i18n

TRANSITION_LABELS = {
    "turning_18": "Turning 18",
    "relocation": "Relocation",
    "move_on": "Move-on from NRM support",
    "advocate_handover": "Handover to another advocate",
    "provider_handover": "Handover to another provider",
}
CLOCK_LABELS = {
    "rg_decision": "Reasonable-grounds decision expected",
    "recovery_period": "Minimum recovery period",
    "cg_not_before": "Earliest CG decision",
    "move_on": "Move-on support",
    "exit_period": "Exit-period support",
    "turning_18": "18th birthday",
    "reconsideration_window": "Reconsideration request window",
}
# A clock's state in a word; only a breached deadline is "Overdue".
CLOCK_STATE_LABELS = {
    deadlines.RUNNING: "Running",
    deadlines.DUE_SOON: "Due soon",
    deadlines.BREACHED: "Overdue",
    deadlines.STOPPED: "Done",
    deadlines.REACHED: "Reached",
    deadlines.ENDED: "Ended",
}
CLOCK_STATE_CONTEXT = "clock state"
DECISION_LABELS = {deadlines.POSITIVE: "Positive %(stage)s decision", deadlines.NEGATIVE: "Negative %(stage)s decision"}
CHECKLIST_LABELS = {
    "consent_reobtained": "Consent re-obtained at 18",
    "receiving_agency_informed": "Receiving agency informed",
    "accommodation_confirmed": "Accommodation confirmed",
    "handover_summary_written": "Handover summary written",
}


# Every table's words are English msgids of the Welsh catalogue (translations/cy): looked up, then translated.


def transition_label(kind: str) -> str:
    return _(TRANSITION_LABELS[kind]) if kind in TRANSITION_LABELS else kind.replace("_", " ")


def clock_label(kind: str) -> str:
    return _(CLOCK_LABELS[kind]) if kind in CLOCK_LABELS else kind.replace("_", " ")


def clock_state_label(state: str) -> str:
    # "Reached" is also a contact's outcome, in Welsh another word: the clock's carries a context.
    if state not in CLOCK_STATE_LABELS:
        return state.replace("_", " ")
    return pgettext(CLOCK_STATE_CONTEXT, CLOCK_STATE_LABELS[state])


def decision_label(outcome: str, stage: str) -> str:
    """'Positive RG decision', 'Negative CG decision' (in Welsh the adjective follows: a whole message each)."""
    return _(DECISION_LABELS[outcome]) % {"stage": stage.upper()} if outcome in DECISION_LABELS else words(outcome)


def checklist_label(item: str) -> str:
    return _(CHECKLIST_LABELS[item]) if item in CHECKLIST_LABELS else item


def clock_words(kind: str, nature: str, state: str, due_on: date) -> str:
    """A clock in plain words, by its nature: "Earliest CG decision: from 21 Nov 2026", "Minimum recovery
    period: reached", "Move-on support: ends 3 Feb 2027", "Reasonable-grounds decision expected: by 6 Mar 2026"."""
    label, day = clock_label(kind), i18n.day(due_on)
    if nature == deadlines.MINIMUM:
        if kind == deadlines.CG_NOT_BEFORE:
            return _("%(label)s: from %(day)s", label=label, day=day)
        if state == deadlines.REACHED:
            return _("%(label)s: reached", label=label)
        return _("%(label)s: until %(day)s", label=label, day=day)
    if nature == deadlines.SUPPORT_END:
        if state == deadlines.ENDED:
            return _("%(label)s: ended %(day)s", label=label, day=day)
        return _("%(label)s: ends %(day)s", label=label, day=day)
    return _("%(label)s: by %(day)s", label=label, day=day)


# --- plain words for every other code the page shows (issue 13): no raw key reaches the HTML -------------

REGION_LABELS = {
    "london": "London",
    "south_east": "South East",
    "south_west": "South West",
    "east_of_england": "East of England",
    "east_midlands": "East Midlands",
    "west_midlands": "West Midlands",
    "yorkshire_and_humber": "Yorkshire and the Humber",
    "north_east": "North East",
    "north_west": "North West",
    "wales": "Wales",
    "scotland": "Scotland",
    "northern_ireland": "Northern Ireland",
}
NEED_LABELS = {
    "accommodation": "accommodation",
    "legal": "legal advice",
    "immigration": "immigration advice",
    "health": "health",
    "mental_health": "mental health",
    "finance": "money",
    "education": "education",
    "employment": "work",
    "family": "family",
    "other": "other",
}
EXPLOITATION_LABELS = {
    "labour": "labour",
    "sexual": "sexual",
    "criminal": "criminal",
    "domestic_servitude": "domestic servitude",
    "organ_removal": "organ removal",
    "financial": "financial",
    "other": "other",
    "unknown": "not known",
}
CASE_STATUS_LABELS = {"opening": "Awaiting the referral", "open": "Open", "closed": "Closed"}
TRANSITION_STATUS_LABELS = {
    "planned": "Planned",
    "in_progress": "In progress",
    "completed": "Completed",
    "missed": "Missed",
    "cancelled": "Cancelled",
    "offered": "Offered",
}
OFFER_STATUS_LABELS = {
    "pending": "Waiting",
    "accepted": "Accepted",
    "declined": "Declined",
    "expired": "Expired",
    "withdrawn": "Withdrawn by the referrer",
}
CONTACT_METHOD_LABELS = {
    "phone": "Phone",
    "email": "Email",
    "post": "Post",
    "via_referrer": "Through the referrer",
    "none": "Do not contact directly",
}
CONSENT_PURPOSE_LABELS = {
    "nrm_referral": "Referral to the NRM",
    "advocacy": "Advocacy support",
    "data_sharing": "Sharing information",
}
TIMELINE_LABELS = {
    "offer_received": "Offer received",
    "offer_accepted": "Offer accepted",
    "offer_declined": "Offer declined",
    "offer_withdrawn": "Offer withdrawn",
    "offer_expired": "Offer expired",
    "referral_disclosed": "Referral received",
    "referral_rectified": "Referral corrected",
    "case_opened": "Case opened",
    "referral_withdrawn": "Referral withdrawn",
    "case_closed": "Case closed",
    "nrm_reference_recorded": "NRM reference recorded",
    "nrm_decision_recorded": "NRM decision recorded",
    "reconsideration_requested": "Reconsideration requested",
    "clock_started": "Deadline started",
    "clock_stopped": "Deadline stopped",
    "clock_due_soon": "Deadline due soon",
    "clock_breached": "Deadline missed",
    "transition_planned": "Transition planned",
    "transition_updated": "Transition updated",
    "transition_completed": "Transition completed",
    "transition_missed": "Transition missed",
    "transition_cancelled": "Transition cancelled",
    "transition_not_planned": "Transition not planned",
    "case_handed_over": "Case handed over",
    "case_received": "Case received",
    "handover_offered": "Handover offered",
    "handover_accepted": "Handover accepted",
    "handover_declined": "Handover declined",
    "handover_unanswered": "Handover unanswered",
    "case_relocated": "Case relocated",
    "consent_recorded": "Consent recorded",
    "contact_logged": "Contact logged",
    "contact_overdue": "No contact for too long",
    "note_added": "Note added",
    "risk_raised": "Risk flag raised",
}
CONTACT_HOW_LABELS = {
    "phone": "Phone",
    "in_person": "In person",
    "video": "Video call",
    "text": "Text message",
    "email": "Email",
    "via_third_party": "Through someone else",
}
CONTACT_OUTCOME_LABELS = {
    "reached": "Reached",
    "no_answer": "No answer",
    "unsafe_to_talk": "Unsafe to talk",
    "message_left": "Message left",
    "wrong_number": "Wrong number",
}
RISK_KIND_LABELS = {
    "re_trafficking": "Re-trafficking",
    "missing": "Missing",
    "exploiters_nearby": "Exploiters nearby",
    "self_harm": "Self-harm",
    "detention": "Detention",
    "other": "Other",
}
RISK_LEVEL_LABELS = {"low": "Low", "medium": "Medium", "high": "High"}
POLICY_KEY_LABELS = {  # the keys of nrm_policy.csv
    "rg_decision": "Reasonable-grounds decision",
    "cg_not_before": "Earliest CG decision",
    "recovery_period": "Recovery period",
    "reconsideration_window": "Reconsideration window",
    "move_on": "Move on",
    "exit_period": "Exit period",
    "clock_notice": "Clock notice",
    "turning_18_notice": "Turning 18 notice",
    "no_contact_adult": "No contact adult",
    "no_contact_child": "No contact child",
}
# The platform's own actors on a timeline (the handlers', the scheduler's, the demo's); others are org ids.
ACTOR_LABELS = {
    "scheduler": "the scheduler",
    "auto-accept": "automatic acceptance",
    "handover": "the handover",
    "demo-seed": "the demo data",
}
# Words that stay capitals when a code is turned into words.
ACRONYMS = {"nrm": "NRM", "rg": "RG", "cg": "CG", "uk": "UK"}
# Codes known to carry a label, in any of the tables above (a timeline detail names them in passing).
_WORDS_OF_CODES: dict[str, str] = {}
for _table in (CLOCK_LABELS, TRANSITION_LABELS, CHECKLIST_LABELS, REGION_LABELS, NEED_LABELS, EXPLOITATION_LABELS):
    _WORDS_OF_CODES.update(_table)
_WORDS_OF_CODES.update({k: v.lower() for k, v in {**RISK_KIND_LABELS, **CONTACT_OUTCOME_LABELS}.items()})
CLOCK_NAMED = re.compile(r"\b([a-z0-9_]+) clock\b")  # "recovery_period clock due ...": a clock by its kind

POLICY_VERSION = re.compile(r"(?:policy )?\b([a-z0-9_]+)@([a-z_*]+):(\d{4}-\d{2}-\d{2})(\+config)?")
ISO_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
SNAKE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")


def words(code: str | None) -> str:
    """Any code as words, capitals kept for acronyms: 'nrm_decision_recorded' -> 'NRM decision recorded'."""
    if not code:
        return ""
    parts = [ACRONYMS.get(part, part) for part in code.split("_")]
    text = " ".join(parts)
    return text[:1].upper() + text[1:]


def label(table: dict[str, str], code: str | None) -> str:
    return _(table[code]) if code in table else words(code)


def choices(table: dict[str, str]) -> list[tuple[str, str]]:
    """A form's options: each code with its words."""
    return [(code, _(text)) for code, text in table.items()]


def region_label(code: str | None) -> str:
    return label(REGION_LABELS, code) if code else _("Region not known")


def timeline_label(kind: str) -> str:
    return label(TIMELINE_LABELS, kind)


def day(on: date) -> str:
    return i18n.day(on)


def policy_label(version: str) -> str:
    """'recovery_period@*:2022-12-13' -> 'Recovery period rule from 13 Dec 2022' (for a region: 'Recovery
    period rule for Scotland from 23 Jan 2023'; overridden by this instance's NRM_POLICY: '..., changed here')."""
    found = POLICY_VERSION.fullmatch(version.strip())
    if found is None:
        return words(version)
    key, region, since, local = found.groups()
    name = label(POLICY_KEY_LABELS, key)
    since_day = day(date.fromisoformat(since))
    if region == "*":
        text = _("%(name)s rule from %(day)s", name=name, day=since_day)
    else:
        text = _("%(name)s rule for %(region)s from %(day)s", name=name, region=region_label(region), day=since_day)
    return text + (_(", changed here") if local else "")


def plain(text: str, names: dict[str, str] | None = None) -> str:
    """A timeline detail or a clock's basis in plain words: policy versions as rules, dates as days, an
    advocate's id as their name (another id shortened), codes as words."""
    names = names or {}
    text = POLICY_VERSION.sub(lambda m: policy_label(m.group(0).removeprefix("policy ")), text)
    text = ISO_DATE.sub(lambda m: day(date.fromisoformat(m.group(1))), text)
    text = UUID.sub(lambda m: names.get(m.group(0), m.group(0)[:8]), text)
    text = CLOCK_NAMED.sub(
        lambda m: f"{clock_label(m.group(1))} deadline" if m.group(1) in CLOCK_LABELS else m[0], text
    )
    text = SNAKE.sub(lambda m: _WORDS_OF_CODES.get(m.group(0), words(m.group(0)).lower()), text)
    return text


def actor_label(actor: str, names: dict[str, str]) -> str:
    """Who did it: an advocate by name, the platform's own actors in words, anyone else by their id."""
    if actor.startswith("advocate:"):
        return names.get(actor.split(":", 1)[1], actor)
    return _(ACTOR_LABELS[actor]) if actor in ACTOR_LABELS else plain(actor)


def countdown(deadline: datetime | None, now: datetime) -> str:
    """How long is left to answer, in words: 'answer within 5 hours', 'within 2 days', 'overdue'."""
    if deadline is None:
        return _("no deadline")
    seconds = (deadline - now).total_seconds()
    if seconds <= 0:
        return _("deadline passed")
    minutes = int(seconds // 60)
    if minutes < 60:
        minutes = max(minutes, 1)
        return ngettext("answer within %(num)d minute", "answer within %(num)d minutes", minutes)
    hours = int(seconds // 3600)
    if hours < 48:
        return ngettext("answer within %(num)d hour", "answer within %(num)d hours", hours)
    return _("answer within %(num)d days", num=hours // 24)
