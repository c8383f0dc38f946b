"""Erasure at a charity (issue 14, UK GDPR Art. 17): everything this provider holds about a referral, erased in
one unit of work, and what it keeps without personal data, said as `kept`.

Erased: the offers' summaries and decline notes, the case's copy of the referral, the local authority's name,
contacts and their notes, notes, risk flags, consent records, search tokens, the timeline's text, the NRM
reference, the transitions' origins, the handovers' summaries and decline notes, and stored idempotent
responses and outbox rows naming the referral or its cases. Kept, naming only the platform's ids (a referral
id means nothing once intake has erased its own copy): the case's status and dates, offers' statuses and
dates, NRM decisions' stages, outcomes and dates (statistics), and the timeline's kinds, actors and times
(audit: who did what, when, without what it was about).

An open case closes: its clocks stop and its open transitions are cancelled, with no case.closed or other news
to notifications. The person asked to be forgotten: notifications is erasing its own copy at the same time,
and the referrer's webhook would hear news about someone it is asked to forget. Intake hears
erasure.completed instead. A repeat request runs again and finds nothing more to erase: the same `kept`.
"""

from __future__ import annotations

from datetime import datetime

from contracts import events
from services.advocacy import domain
from services.advocacy.casework import timeline
from services.advocacy.uow import AdvocacyUnitOfWork

ERASED = "erased"
ACTOR = "erasure"


def erase_referral(uow: AdvocacyUnitOfWork, referral_id: str, now: datetime) -> list[events.Kept]:
    """Erase what this provider holds about `referral_id` (a case open, closed or handed over, offers only, or
    nothing at all); the records it keeps without personal data, and why. The caller commits; the database
    files are scrubbed after that commit (`scrub_after_commit`)."""
    cases = uow.erasures.cases_of(referral_id)
    offers = {offer.id: offer for offer in uow.offers.of_referral(referral_id)}
    for case in cases:
        if case.status in domain.LIVE_CASE_STATUSES:
            _close(uow, case, now)
        case.referral, case.local_authority_name, case.updated_at = None, None, now
        record = uow.nrm.record(case.id)
        if record is not None:
            record.nrm_reference, record.updated_at = None, now
        for transition in uow.transitions.of_case(case.id):
            transition.origin = ERASED
        if case.offer_id not in offers and (offer := uow.offers.get(case.offer_id)) is not None:
            offers[offer.id] = offer
    uow.erasures.delete_case_records([case.id for case in cases])
    for offer in offers.values():
        offer.summary, offer.decline_note, offer.updated_at = {}, None, now
    entries = [entry for offer_id in offers for entry in uow.timeline.of_offer(offer_id)]
    for entry in entries:
        entry.detail = ""
    handovers = uow.erasures.handovers_of(referral_id)
    for handover in handovers:
        handover.summary, handover.decline_note = {}, None
    uow.erasures.forget_messages({referral_id, *(case.id for case in cases)})
    uow.erasures.shred(referral_id)  # crypto-shredding: what is left sealed under its data key stays shut
    uow.scrub_after_commit = True
    return _kept(uow, cases, bool(offers or handovers), bool(entries))


def _close(uow: AdvocacyUnitOfWork, case, now: datetime) -> None:
    """As casework.closure closes a case, but silently (see the module's docstring)."""
    uow.cases.lock(case)
    for clock in uow.clocks.running(case.id, lock=True):
        clock.stopped_at, clock.stopped_reason = now, "case closed: personal data erased"
    for transition in uow.transitions.open_of(case.id):
        transition.status, transition.outcome, transition.updated_at = domain.TRANSITION_CANCELLED, ERASED, now
    case.status, case.closed_at = domain.CASE_CLOSED, now
    timeline.note(uow, case.offer_id, domain.CASE_CLOSED_KIND, ACTOR, "", now)


def _kept(uow: AdvocacyUnitOfWork, cases, offered: bool, timeline_kept: bool) -> list[events.Kept]:
    kept = []
    if cases:
        kept.append(events.Kept(record="case_dates", because="statistics"))
    if offered:
        kept.append(events.Kept(record="offer_outcomes", because="statistics"))
    if any(uow.nrm.decisions_of(case.id) for case in cases):
        kept.append(events.Kept(record="nrm_decisions", because="statistics"))
    if timeline_kept:
        kept.append(events.Kept(record="case_timeline", because="audit"))
    return kept
