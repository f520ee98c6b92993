"""Inputs and outputs of every activity: the contract between the workflow (which decides) and activities (which do)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum

from pydantic import Field

from models.documents import DocumentKind, DocumentRef, DocumentRequirement
from models.order import Frozen, OrderKind, Person, PlaceOrder, Province
from models.stages import Actor, Stage, Status, WaitingOn
from models.state import DeadlineKind, OrderState, PendingAction, Violation


class ValidationResult(Frozen):
    violations: list[Violation] = Field(default_factory=list)
    warnings: list[Violation] = Field(default_factory=list)
    pending_actions: list[PendingAction] = Field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.violations


class RequiredDocuments(Frozen):
    requirements: list[DocumentRequirement]
    reusable: dict[str, DocumentRef] = Field(default_factory=dict)


class VerifyDocument(Frozen):
    order_id: str
    key: str
    kind: DocumentKind
    ref: DocumentRef
    # The filing entity that uploaded it: the same file from another entity is a duplicate.
    owner: str = ""
    # Whose face or ID the document must show (face verification compares against this person).
    person: Person | None = None


class VerificationResult(Frozen):
    key: str
    passed: bool
    reason: str = ""
    checks: list[str] = Field(default_factory=list)


class BusinessDeadline(Frozen):
    """Count ``business_days`` China working days from the day after ``start`` (DOMAIN.md), then scale."""

    start: datetime
    business_days: int = Field(ge=1)
    scale: float = 1.0


class BusinessDeadlineResult(Frozen):
    at: datetime
    last_day: date
    estimated: bool = False  # part of the range lay past the calendar's known years
    note: str = ""


class SubmitToAdministration(Frozen):
    order_id: str
    idempotency_key: str
    kind: OrderKind
    province: Province
    filing_number: str
    mobiles: list[str]  # who the administration texts the verification code to


class SubmissionReceipt(Frozen):
    submission_id: str
    received_at: datetime
    sms_sent_to: int = 0


class SmsCode(Frozen):
    submission_id: str
    code: str


class SmsCodeOutcome(StrEnum):
    VERIFIED = "verified"
    WRONG_CODE = "wrong_code"
    RETURNED = "returned"
    EXPIRED = "expired"


class SmsCodeResult(Frozen):
    outcome: SmsCodeOutcome
    attempts_left: int = 0


class SubmissionRef(Frozen):
    submission_id: str


class ReviewDecision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewVerdict(Frozen):
    decision: ReviewDecision
    reasons: list[str] = Field(default_factory=list)
    decided_at: datetime | None = None


class ReviewPoll(SubmissionRef):
    """``poll_review``'s input. While the review runs the poll is retried at the poll interval, at no cost in history.
    An outage (no answer, a 5xx or 429, a malformed answer) is retried with a bounded backoff instead; once it has
    lasted ``patience`` (counted from ``outage_since`` when polling again after a reported outage), the poll gives up
    with the non-retryable ``RegulatorOutage`` so the workflow can show the wait and alert support.

    ``patience`` None (an input written before outages were reported) keeps the old behaviour: every failure is
    retried silently at the poll interval. With ``outage_since`` set, a "still under review" answer is returned as
    ``ReviewPollResult(verdict=None)`` rather than retried: the workflow learns the outage is over."""

    patience: timedelta | None = None
    outage_since: datetime | None = None


class ReviewPollResult(Frozen):
    """What a poll after a reported outage returns: the verdict, or None when the review is still running."""

    verdict: ReviewVerdict | None = None


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


class Notification(Frozen):
    """One message to the applicant (or support), sent at most once per ``(order_id, event_key, channel)``."""

    order_id: str
    event_key: str  # stable for one event of one order, e.g. "stage:sms_verification:1"
    template: str
    email: str | None = None
    mobile: str | None = None
    subject: str = ""
    body: str = ""
    channels: list[Channel] = Field(default_factory=lambda: [Channel.EMAIL, Channel.SMS])


class NotificationResult(Frozen):
    sent: list[Channel] = Field(default_factory=list)
    already_sent: list[Channel] = Field(default_factory=list)
    failed: dict[Channel, str] = Field(default_factory=dict)


class OrderRecord(Frozen):
    """A transition written to the read model (current row) and the audit trail (append-only, keyed by seq)."""

    order_id: str
    workflow_id: str
    kind: OrderKind
    province: Province
    filing_number: str
    stage: Stage
    status: Status
    waiting_on: WaitingOn
    overdue: bool
    placed_at: datetime
    seq: int
    at: datetime
    actor: Actor
    actor_name: str = ""
    reason: str = ""
    review_due_at: datetime | None = None
    notice_reference: str | None = None

    @classmethod
    def of(
        cls, state: OrderState, *, seq: int, at: datetime, actor: Actor, actor_name: str = "", reason: str = ""
    ) -> OrderRecord:
        """The record of transition ``seq`` of an order whose state, after it, is ``state``."""
        due = state.deadline(DeadlineKind.REVIEW_DUE)
        return cls(
            order_id=state.order_id,
            workflow_id=state.workflow_id,
            kind=state.kind,
            province=state.province,
            filing_number=state.filing_number,
            stage=state.stage,
            status=state.status,
            waiting_on=state.waiting_on,
            overdue=state.overdue,
            placed_at=state.placed_at,
            seq=seq,
            at=at,
            actor=actor,
            actor_name=actor_name,
            reason=reason[:1000],
            review_due_at=due.at if due else None,
            notice_reference=state.notice_reference,
        )


class FilingUpdate(Frozen):
    """Apply an approved order's changes to the provider's filings table (retried until the update is visible)."""

    order: PlaceOrder
    approved_at: datetime


class ArchiveDocuments(Frozen):
    """On approval, remember the order's verified documents so later orders of the same filing may reuse them."""

    order_id: str
    entity_filing_number: str
    approved_at: datetime
    documents: dict[str, DocumentRef]


class ReusableDocumentsQuery(Frozen):
    """Documents of the same filing's orders approved within ``window_days`` of ``as_of`` (never after a
    cancellation of the filing)."""

    entity_filing_number: str
    as_of: datetime
    window_days: int = 3 * 365


class ReusableDocuments(Frozen):
    documents: dict[str, DocumentRef] = Field(default_factory=dict)


class SupportAlert(Frozen):
    """A message to the support team (escalations, paused orders, overdue reviews), sent once per event_key."""

    order_id: str
    event_key: str
    subject: str
    body: str


class PlacedOrder(Frozen):
    """The input of the validation activity: the order as placed, with the instant the workflow saw it."""

    order: PlaceOrder
    as_of: datetime
