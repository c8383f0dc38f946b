"""The events the services exchange: the published language of the platform, each type defined once.

Each entry says its name (past tense), who may publish it, how it is addressed, its payload and who
consumes it. Producers build these payloads; consumers accept nothing that does not match one
(shared.messaging.catalogue); each charity's broker permissions (deploy/rabbitmq/add-provider.sh) and each
service's AsyncAPI document (`GET /asyncapi.json`) are generated from this file.

Data minimisation is enforced here: every string field is an id, a code, a date or a pattern-bound
reference, never free text, and nothing names, dates the birth of or contacts a person
(tests/unit/test_event_catalogue.py walks every schema). An 18th birthday leaves as its month only.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Final, Literal, get_args

from msgspec import Meta

from shared.messaging.catalogue import Catalogue, EventData, Voice

INTAKE_SERVICE, ADVOCACY, NOTIFICATIONS = "intake", "advocacy", "notifications"

# The platform's two voices. Intake speaks as the platform's own (trusted) broker users; each provider speaks
# for itself from its advocacy instance, as broker user `advocacy-<provider id>` (deploy/rabbitmq/
# add-provider.sh names it so), with source `/advocacy/<provider id>`.
INTAKE: Final = "intake"
PROVIDER: Final = "provider"
# Notifications speaks only to confirm an erasure (issue 14), as a platform service: its trusted broker user.
NOTIFIER: Final = "notifications"
PROVIDER_USER_PREFIX = "advocacy-"
VOICES = (
    Voice(INTAKE, service=INTAKE_SERVICE, source="/intake"),
    Voice(PROVIDER, service=ADVOCACY, source="/advocacy", user_prefix=PROVIDER_USER_PREFIX),
    Voice(NOTIFIER, service=NOTIFICATIONS, source="/notifications"),
)
# The service that speaks with each voice (a provider's events come from its advocacy instance).
PUBLISHING_SERVICE = {voice.name: voice.service for voice in VOICES}

CATALOGUE = Catalogue(VOICES)
event = CATALOGUE.define

# --- the vocabulary: ids, codes and dates -------------------------------------------------------------

# Producers that take these from people (an API body, a form) check them with the same patterns.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
PROVIDER_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
ORG_ID_PATTERN = ID_PATTERN
Id = Annotated[str, Meta(pattern=ID_PATTERN, description="an opaque id")]
ProviderId = Annotated[str, Meta(pattern=PROVIDER_ID_PATTERN, description="a provider's id")]
OrgId = Annotated[str, Meta(pattern=ORG_ID_PATTERN, description="an organisation's id")]
# The referring agency's own case reference (its id for the referral), as it sent it: no control characters.
ExternalReference = Annotated[str, Meta(pattern=r"^[^\x00-\x1f\x7f]{1,64}$")]
Instant = Annotated[datetime, Meta(tz=True)]
# A date as events carry it: a day, or only the month where the day would be a birthday (turning 18).
EventDate = Annotated[str, Meta(pattern=r"^\d{4}-\d{2}(-\d{2})?$")]
LanguageCode = Annotated[str, Meta(pattern=r"^[a-z]{2}$", description="ISO 639-1")]
LocalAuthority = Annotated[str, Meta(pattern=r"^[EWSN]\d{8}$", description="an ONS code")]
Count = Annotated[int, Meta(ge=0)]

Region = Literal[
    "london", "south_east", "south_west", "east_of_england", "east_midlands", "west_midlands",
    "yorkshire_and_humber", "north_east", "north_west", "wales", "scotland", "northern_ireland",
]  # fmt: skip
ExploitationType = Literal[
    "labour", "sexual", "criminal", "domestic_servitude", "organ_removal", "financial", "other", "unknown"
]
Need = Literal[
    "accommodation", "legal", "immigration", "health", "mental_health", "finance", "education",
    "employment", "family", "other",
]  # fmt: skip
Sex = Literal["female", "male", "non_binary", "unknown"]
RiskLevel = Literal["low", "medium", "high"]
# How intake took a referral (README, "Pathways"). advocacy_only and not_notified were added in issue 12: a
# consumer validates payloads against this catalogue, so deploy the consumers (advocacy, notifications)
# before an intake that sends them. No payload field was removed or renamed.
Pathway = Literal["nrm", "duty_to_notify", "advocacy_only", "not_notified"]
ReferralStatus = Literal["received", "offered", "allocated", "escalated", "withdrawn", "recorded"]
EscalationReason = Literal["no_eligible_provider", "none_accepted", "immediate_danger"]
# Why a provider declines an offer (DESIGN 5); each fits intake's and advocacy's decline_reason VARCHAR(20).
DeclineReason = Literal[
    "no_capacity", "eligibility", "complex_needs", "no_single_sex_place", "safety_conflict", "already_supported",
    "not_contactable", "other",
]  # fmt: skip
# How a case ended (DESIGN 5); the advocate's note on it stays at the provider.
ClosureOutcome = Literal[
    "moved_on", "negative_cg_exit", "declined_support", "declined_adult_support_at_18", "consent_withdrawn",
    "no_contact", "returned_home", "transferred", "died", "other",
]  # fmt: skip
ClockKind = Literal[
    "rg_decision", "recovery_period", "cg_not_before", "move_on", "exit_period", "turning_18", "reconsideration_window",
]  # fmt: skip
ClockState = Literal["due_soon", "breached"]
TransitionKind = Literal["turning_18", "relocation", "move_on", "advocate_handover", "provider_handover"]
TransitionStatus = Literal["planned", "in_progress", "completed", "missed", "cancelled"]
# What a handover may carry: nothing measured from a birthday (a turning_18 clock or transition).
HandedOverClockKind = Literal[
    "rg_decision", "recovery_period", "cg_not_before", "move_on", "exit_period", "reconsideration_window",
]  # fmt: skip
HandedOverTransitionKind = Literal["relocation", "move_on", "advocate_handover", "provider_handover"]
DateBasis = Literal["exact", "approximate"]
ChecklistItem = Literal[
    "consent_reobtained", "receiving_agency_informed", "accommodation_confirmed", "handover_summary_written"
]
NrmStage = Literal["rg", "cg"]
NrmOutcome = Literal["positive", "negative"]
PolicyVersion = Annotated[str, Meta(pattern=r"^[a-z0-9_]+@[a-z_*]+:\d{4}-\d{2}-\d{2}(\+config)?$")]
TimelineKind = Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,40}$")]

REGIONS, EXPLOITATION_TYPES, NEEDS = get_args(Region), get_args(ExploitationType), get_args(Need)
DECLINE_REASONS = get_args(DeclineReason)
CLOSURE_OUTCOMES = get_args(ClosureOutcome)


class ReferralSummary(EventData, frozen=True):
    """What a provider needs to decide on an offer, and nothing that identifies the person."""

    is_child: bool
    pathway: Pathway
    region: Region
    local_authority: LocalAuthority | None = None
    languages: list[LanguageCode] = []
    interpreter_needed: bool = False
    sex: Sex | None = None
    exploitation_types: list[ExploitationType] = []
    needs: list[Need] = []
    immediate_danger: bool = False
    re_trafficking_risk: RiskLevel | None = None


# --- intake -> notifications: the referrer's view (webhook types) --------------------------------------


class ReferralNews(EventData, frozen=True, kw_only=True):
    """What every event for the referring agency says: which referral, whose, and where it stands."""

    referral_id: Id
    org_id: OrgId
    # None for a referral recorded anonymously (the Duty to Notify pathway): intake keeps only a keyed hash of
    # its reference, and the referrer matches it by the referral id its POST got back (issue 15).
    external_reference: ExternalReference | None = None
    status: ReferralStatus
    # A child's local authority (the children's services covering the child's ONS code in intake's agency
    # directory): notifications tells it too (issue 13). None for an adult, or a code no agency covers.
    local_authority_org_id: OrgId | None = None


@event("referral.received", publisher=INTAKE, consumers=[NOTIFICATIONS], description="Intake stored a referral.")
class ReferralReceived(ReferralNews, frozen=True):
    pathway: Pathway
    is_child: bool
    region: Region


@event(
    "referral.allocated",
    publisher=INTAKE,
    consumers=[NOTIFICATIONS],
    description="A provider's acceptance was confirmed: the referral has a provider and a case.",
)
class ReferralAllocated(ReferralNews, frozen=True):
    provider_id: ProviderId
    case_id: Id


@event(
    "referral.escalated",
    publisher=INTAKE,
    consumers=[NOTIFICATIONS],
    description="No provider could take the referral (or the person is in danger): a coordinator acts.",
)
class ReferralEscalated(ReferralNews, frozen=True):
    reason: EscalationReason


@event("referral.withdrawn", publisher=INTAKE, consumers=[NOTIFICATIONS], description="The referrer withdrew it.")
class ReferralWithdrawn(ReferralNews, frozen=True):
    provider_id: ProviderId | None = None


@event(
    "referral.transferred",
    publisher=INTAKE,
    consumers=[NOTIFICATIONS],
    description="The allocation moved to another provider with the case (a provider handover).",
)
class ReferralTransferred(ReferralNews, frozen=True):
    provider_id: ProviderId
    from_provider_id: ProviderId


# --- intake -> one charity (addressed by routing key `<type>.<provider_id>`) ----------------------------


@event(
    "referral.offered",
    publisher=INTAKE,
    consumers=[ADVOCACY],
    addressed_by="provider_id",
    description="A referral is offered to one provider, with the minimised summary it needs to decide.",
)
class ReferralOffered(EventData, frozen=True):
    referral_id: Id
    offer_id: Id
    provider_id: ProviderId
    org_id: OrgId
    offered_at: Instant
    respond_by: Instant
    summary: ReferralSummary


class OfferNews(EventData, frozen=True):
    referral_id: Id
    offer_id: Id
    provider_id: ProviderId


@event(
    "offer.expired",
    publisher=INTAKE,
    consumers=[ADVOCACY],
    addressed_by="provider_id",
    description="The provider's deadline to answer passed; the referral went on to the next provider.",
)
class OfferExpired(OfferNews, frozen=True):
    pass


@event(
    "offer.withdrawn",
    publisher=INTAKE,
    consumers=[ADVOCACY],
    addressed_by="provider_id",
    description="The referral was withdrawn: a provider holding an offer or a case for it lets it go.",
)
class OfferWithdrawn(EventData, frozen=True):
    referral_id: Id
    provider_id: ProviderId
    offer_id: Id | None = None  # none for a case that came to the provider by handover


@event(
    "allocation.confirmed",
    publisher=INTAKE,
    consumers=[ADVOCACY],
    addressed_by="provider_id",
    description="Intake confirmed this provider's acceptance: open the case (the referral may now be fetched).",
)
class AllocationConfirmed(OfferNews, frozen=True):
    case_id: Id


@event(
    "allocation.transferred",
    publisher=INTAKE,
    consumers=[ADVOCACY],
    addressed_by="provider_id",
    description="A case handed over to this provider is now its allocation: fetch the referral, open the case.",
)
class AllocationTransferred(EventData, frozen=True):
    referral_id: Id
    provider_id: ProviderId
    from_provider_id: ProviderId


# --- a charity -> intake -------------------------------------------------------------------------------


class AdvocateContact(EventData, frozen=True):
    """The allocated advocate's work name and email, which the referrer is shown by design (`allocation`)."""

    name: Annotated[str, Meta(pattern=r"^[^\x00-\x1f\x7f]{1,200}$")]
    email: Annotated[str, Meta(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}$", extra_json_schema={"format": "email"})]


@event(
    "offer.accepted",
    publisher=PROVIDER,
    speaks_for="provider_id",
    consumers=[INTAKE_SERVICE],
    description="The provider accepted its offer and assigned an advocate.",
)
class OfferAccepted(OfferNews, frozen=True):
    case_id: Id
    advocate: AdvocateContact
    accepted_at: Instant


@event(
    "offer.declined",
    publisher=PROVIDER,
    speaks_for="provider_id",
    consumers=[INTAKE_SERVICE],
    description="The provider declined its offer, with a coded reason (its note stays at the provider).",
)
class OfferDeclined(OfferNews, frozen=True):
    reason: DeclineReason
    declined_at: Instant


@event(
    "provider.capacity_changed",
    publisher=PROVIDER,
    speaks_for="provider_id",
    subject_field="provider_id",
    consumers=[INTAKE_SERVICE],
    description="How many places the provider has now; intake's directory follows it.",
)
class ProviderCapacityChanged(EventData, frozen=True):
    provider_id: ProviderId
    capacity: Count
    advocates: Count


@event(
    "case.handed_over",
    publisher=PROVIDER,
    speaks_for="from_provider_id",
    consumers=[INTAKE_SERVICE],
    description="The provider holding the case handed it to another provider: intake moves the allocation.",
)
class CaseHandedOver(EventData, frozen=True):
    referral_id: Id
    case_id: Id
    from_provider_id: ProviderId
    to_provider_id: ProviderId


# --- consent, owned by intake (DESIGN 5; issue 12 item 4) ----------------------------------------------

ConsentPurpose = Literal["nrm_referral", "advocacy", "data_sharing"]
CONSENT_PURPOSES = get_args(ConsentPurpose)


@event(
    "case.consent_recorded",
    publisher=PROVIDER,
    speaks_for="provider_id",
    consumers=[INTAKE_SERVICE],
    description="The advocate recorded the person's consent for one purpose; intake, which owns consent, keeps it.",
)
class CaseConsentRecorded(EventData, frozen=True):
    referral_id: Id
    case_id: Id
    provider_id: ProviderId
    purpose: ConsentPurpose
    given: bool
    obtained_at: Instant
    interpreter_used: bool = False
    recipients: list[OrgId] = []  # data_sharing only: the organisations the person agreed may read it
    obtained_by: Id | None = None  # the advocate's id, never a name


@event(
    "consent.withdrawn",
    publisher=INTAKE,
    consumers=[ADVOCACY],
    addressed_by="provider_id",
    description="The advocacy consent in force became 'not given': the provider holding the case closes it.",
)
class ConsentWithdrawn(EventData, frozen=True):
    referral_id: Id
    provider_id: ProviderId
    purpose: ConsentPurpose
    obtained_at: Instant
    by: Literal["referrer", "provider"]  # who recorded the withdrawal
    case_id: Id | None = None


@event(
    "referral.consent_withdrawn",
    publisher=INTAKE,
    consumers=[NOTIFICATIONS],
    description="The person withdrew their advocacy consent: the referrer's webhook (the case closes).",
)
class ReferralConsentWithdrawn(ReferralNews, frozen=True):
    purpose: ConsentPurpose
    provider_id: ProviderId | None = None


# --- data-subject rights (issue 14): erasure and rectification, to every recipient of a referral --------

# Who received something about a referral and is asked to act on it: a charity (`provider.<provider id>`)
# or notifications. An addressed event's routing key ends with it: `referral.erasure_requested.provider.<p>`.
RECIPIENT_PATTERN = r"^(provider\.[a-z0-9][a-z0-9-]{1,62}|notifications)$"
Recipient = Annotated[str, Meta(pattern=RECIPIENT_PATTERN, description="provider.<id> or notifications")]
RECIPIENT_ADDRESSES = {ADVOCACY: "provider.{address}", NOTIFICATIONS: "notifications"}
# What a rectification may change (PATCH /v1/referrals/{id}), by section of the referral.
RectifiedSection = Literal["subject", "referrer", "needs", "risk"]
# What a recipient keeps after an erasure, without identifiers, and why (GET .../erasure's `kept`).
KeptRecord = Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,40}$", description="a record kind, e.g. case_outcome")]
KeptBecause = Literal["legal_hold", "statistics", "audit"]


class Kept(EventData, frozen=True):
    record: KeptRecord
    because: KeptBecause


def provider_recipient(provider_id: str) -> str:
    return f"provider.{provider_id}"


@event(
    "referral.erasure_requested",
    publisher=INTAKE,
    consumers=[ADVOCACY, NOTIFICATIONS],
    addressed_by="recipient",
    address_as=RECIPIENT_ADDRESSES,
    description="The referral's personal data is to be erased (UK GDPR Art. 17, 19): the recipient erases its "
    "copy in one transaction and answers erasure.completed.",
)
class ReferralErasureRequested(EventData, frozen=True):
    referral_id: Id
    erasure_id: Id
    recipient: Recipient
    requested_at: Instant


@event(
    "referral.rectified",
    publisher=INTAKE,
    consumers=[ADVOCACY],
    addressed_by="recipient",
    address_as={ADVOCACY: RECIPIENT_ADDRESSES[ADVOCACY]},
    description="The referring organisation corrected the referral (Art. 16): the charity holding a case "
    "fetches it again (a recorded disclosure) so its copy matches.",
)
class ReferralRectified(EventData, frozen=True):
    referral_id: Id
    recipient: Recipient
    rectified_at: Instant
    sections: list[RectifiedSection]


@event(
    "erasure.completed",
    publisher=(PROVIDER, NOTIFIER),
    speaks_for="provider_id",
    consumers=[INTAKE_SERVICE],
    description="A recipient erased its copy of the referral: a charity (`provider_id` set) or notifications "
    "(`provider_id` null); `kept` says what it keeps without identifiers, and why.",
)
class ErasureCompleted(EventData, frozen=True):
    referral_id: Id
    erasure_id: Id
    recipient: Recipient
    erased_at: Instant
    provider_id: ProviderId | None = None
    kept: list[Kept] = []


# --- a charity -> notifications (the referrer's and receiving agencies' webhooks) ----------------------


def case_news(name: str, description: str):
    """A provider's news about a case it holds, for the referrer's (and receiving agencies') webhooks."""
    return event(name, publisher=PROVIDER, speaks_for="provider_id", consumers=[NOTIFICATIONS], description=description)


class CaseNews(EventData, frozen=True, kw_only=True):
    referral_id: Id
    case_id: Id
    provider_id: ProviderId
    # The child's local authority, as intake resolved it at referral (ReferralNews.local_authority_org_id).
    local_authority_org_id: OrgId | None = None


@case_news("case.opened", "The provider opened the case with the referral intake disclosed to it.")
class CaseOpened(CaseNews, frozen=True):
    status: Literal["open"] = "open"


@case_news("case.closed", "The provider closed the case, with its outcome code; every clock stopped.")
class CaseClosed(CaseNews, frozen=True):
    outcome: ClosureOutcome
    status: Literal["closed"] = "closed"


class ClockNews(CaseNews, frozen=True):
    clock_id: Id
    kind: ClockKind
    status: ClockState
    due_on: EventDate
    notice_on: EventDate
    transition_id: Id | None = None


@case_news("clock.due_soon", "An NRM or transition clock reached its notice date.")
class ClockDueSoon(ClockNews, frozen=True):
    pass


@case_news("clock.breached", "A clock's due date passed.")
class ClockBreached(ClockNews, frozen=True):
    pass


class TransitionNews(CaseNews, frozen=True):
    transition_id: Id
    kind: TransitionKind
    status: TransitionStatus
    planned_for: EventDate
    date_basis: DateBasis
    # The agency a transition hands the survivor to: notifications tells it too.
    receiving_agency: OrgId | None = None
    receiving_provider_id: ProviderId | None = None


@case_news("transition.planned", "A transition was planned.")
class TransitionPlanned(TransitionNews, frozen=True):
    pass


@case_news("transition.completed", "A transition was completed with its checklist done.")
class TransitionCompleted(TransitionNews, frozen=True):
    pass


@case_news("transition.missed", "A transition was still open after its planned date.")
class TransitionMissed(TransitionNews, frozen=True):
    pass


# --- an advocate's day (issue 13 items 2-3): a survivor nobody has reached, a high safeguarding risk -------
# Ids, codes and dates only: the contact's and the flag's notes stay at the charity. A child's local authority
# (item 4) rides on CaseNews, as on every case event.

RiskKind = Literal["re_trafficking", "missing", "exploiters_nearby", "self_harm", "detention", "other"]
RISK_KINDS, RISK_LEVELS = get_args(RiskKind), get_args(RiskLevel)


@case_news(
    "case.contact_overdue",
    "Nobody has reached the person for longer than the no-contact rule (the policy table's no_contact_adult or "
    "no_contact_child), counted from the last reached contact or the case's opening: once per episode.",
)
class CaseContactOverdue(CaseNews, frozen=True):
    is_child: bool
    counted_from: EventDate
    due_on: EventDate
    policy_version: PolicyVersion


@case_news("case.risk_raised", "A safeguarding risk flag was raised on the case at level high: its kind and level.")
class CaseRiskRaised(CaseNews, frozen=True):
    risk_id: Id
    kind: RiskKind
    level: RiskLevel


# --- a charity -> another charity: a provider handover ------------------------------------------------

# A provider handover is offered first and answered by the receiver (issue 12 item 6): only an accepted one
# sends the case (case.handover). Each is addressed to the other party and spoken for by its own party, so a
# provider can neither offer in another's name nor answer a handover offered to another.


@event(
    "case.handover_offered",
    publisher=PROVIDER,
    speaks_for="from_provider_id",
    addressed_by="to_provider_id",
    consumers=[ADVOCACY],
    description=(
        "A provider offers to hand a case over, with the minimised summary an offer carries (nothing that "
        "identifies the person), to be answered by respond_by; the case stays with the sender until accepted."
    ),
)
class CaseHandoverOffered(EventData, frozen=True):
    handover_id: Id  # the sender's provider_handover transition
    referral_id: Id
    case_id: Id
    from_provider_id: ProviderId
    to_provider_id: ProviderId
    offered_at: Instant
    respond_by: Instant
    summary: ReferralSummary
    org_id: OrgId | None = None


class HandoverAnswer(EventData, frozen=True):
    handover_id: Id
    referral_id: Id
    case_id: Id  # the sender's case
    from_provider_id: ProviderId
    to_provider_id: ProviderId
    answered_at: Instant


@event(
    "case.handover_accepted",
    publisher=PROVIDER,
    speaks_for="to_provider_id",
    addressed_by="from_provider_id",
    consumers=[ADVOCACY],
    description="The receiving provider accepted a handover, with an advocate who has room: the sender sends the case.",
)
class CaseHandoverAccepted(HandoverAnswer, frozen=True):
    pass


@event(
    "case.handover_declined",
    publisher=PROVIDER,
    speaks_for="to_provider_id",
    addressed_by="from_provider_id",
    consumers=[ADVOCACY],
    description="The receiving provider declined a handover, with a coded reason: the case stays with the sender.",
)
class CaseHandoverDeclined(HandoverAnswer, frozen=True):
    reason: DeclineReason


class HandedOverDecision(EventData, frozen=True):
    id: Id
    stage: NrmStage
    outcome: NrmOutcome
    decided_on: date
    on_reconsideration: bool = False


class HandedOverReconsideration(EventData, frozen=True):
    id: Id
    decision_id: Id
    requested_on: date


class HandedOverNrm(EventData, frozen=True):
    """The NRM record without its reference: the Home Office's id of the person stays with the sender."""

    referred_on: date | None = None
    region: Region | None = None
    decisions: list[HandedOverDecision] = []
    reconsiderations: list[HandedOverReconsideration] = []


class HandedOverClock(EventData, frozen=True):
    """An open clock measured from NRM decisions; clocks from a birthday are recomputed by the receiver."""

    kind: HandedOverClockKind
    starts_on: date
    due_on: date
    notice_on: date
    policy_version: PolicyVersion
    transition_id: Id | None = None
    due_soon_fired: bool = False
    breached_fired: bool = False


class HandedOverTransition(EventData, frozen=True):
    id: Id
    kind: HandedOverTransitionKind
    status: TransitionStatus
    planned_for: date
    date_basis: DateBasis
    receiving_agency: OrgId | None = None
    done: list[ChecklistItem] = []


class HandedOverEntry(EventData, frozen=True):
    at: Instant
    kind: TimelineKind


@event(
    "case.handover",
    publisher=PROVIDER,
    speaks_for="from_provider_id",
    addressed_by="to_provider_id",
    consumers=[ADVOCACY],
    description=(
        "A case handed to another provider with its record in ids, codes and dates: the receiver recomputes "
        "what derives from the person's details (an 18th birthday) from the referral it then fetches."
    ),
)
class CaseHandover(EventData, frozen=True):
    referral_id: Id
    case_id: Id
    transition_id: Id
    from_provider_id: ProviderId
    to_provider_id: ProviderId
    handed_over_at: Instant
    summary: ReferralSummary
    nrm: HandedOverNrm
    org_id: OrgId | None = None
    clocks: list[HandedOverClock] = []
    transitions: list[HandedOverTransition] = []
    timeline: list[HandedOverEntry] = []
