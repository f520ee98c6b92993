"""The order snapshot returned by the ``state`` query, and the pieces the workflow carries across continue-as-new."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from models.documents import DocumentKind, DocumentRef, DocumentStatus
from models.order import Frozen, OrderKind, PlaceOrder, Province
from models.stages import Actor, Stage, Status, WaitingOn


class Violation(Frozen):
    """One reason an order is refused: the rule, the field, and what to do about it."""

    rule_id: str
    field: str
    message: str
    fix: str = ""


class PendingAction(Frozen):
    """Something someone must do that is not a refusal (e.g. R-DOM-4: update the domain holder)."""

    code: str
    description: str
    owner: WaitingOn = WaitingOn.APPLICANT
    rule_id: str | None = None


class DeadlineKind(StrEnum):
    NEXT_REMINDER = "next_reminder"
    COLLECTION_IDLE = "collection_idle"
    CONFIRMATION_IDLE = "confirmation_idle"
    INITIAL_REVIEW_ESCALATION = "initial_review_escalation"
    SMS_EXPIRY = "sms_expiry"
    REVIEW_DUE = "review_due"
    NOTICE = "notice"


class Deadline(Frozen):
    kind: DeadlineKind
    at: datetime
    estimated: bool = False  # computed past the calendar's known data


class DependencyWait(Frozen):
    """The order is waiting out an outside party that does not answer (its activity keeps being retried)."""

    dependency: str
    activity: str
    since: datetime
    last_error: str = ""
    alerted: bool = False


class NotificationFailure(Frozen):
    """A notice that could not be delivered on one channel for good (e.g. an invalid mobile number)."""

    event_key: str
    channel: str
    reason: str


class Transition(Frozen):
    seq: int
    at: datetime
    stage: Stage
    status: Status
    actor: Actor
    reason: str = ""
    actor_name: str = ""


class DocumentState(BaseModel):
    key: str
    kind: DocumentKind
    subject: str
    status: DocumentStatus = DocumentStatus.MISSING
    ref: DocumentRef | None = None
    failure_reason: str = ""
    failures: int = 0


class Submission(BaseModel):
    attempt: int
    idempotency_key: str
    submission_id: str = ""
    submitted_at: datetime | None = None
    sms_expires_at: datetime | None = None
    wrong_codes: int = 0
    outcome: str = ""  # verified | expired | returned | approved | rejected


class OrderState(BaseModel):
    """What callers see of one order. Deadlines are absolute instants; the timeline lists every transition."""

    order_id: str
    workflow_id: str
    kind: OrderKind
    filing_number: str
    province: Province
    stage: Stage
    status: Status
    waiting_on: WaitingOn
    placed_at: datetime
    updated_at: datetime
    pending_actions: list[PendingAction] = Field(default_factory=list)
    deadlines: list[Deadline] = Field(default_factory=list)
    timeline: list[Transition] = Field(default_factory=list)
    documents: list[DocumentState] = Field(default_factory=list)
    violations: list[Violation] = Field(default_factory=list)
    warnings: list[Violation] = Field(default_factory=list)
    review_reasons: list[str] = Field(default_factory=list)
    rejection_reasons: list[str] = Field(default_factory=list)
    submissions: list[Submission] = Field(default_factory=list)
    auto_resubmissions: int = 0
    reminders_sent: int = 0
    last_reminder_at: datetime | None = None
    support_resubmit: bool = False
    confirmed: bool = False
    last_applicant_activity_at: datetime | None = None
    collection_extension_days: int = 0
    overdue: bool = False
    escalated: bool = False
    paused_reason: str = ""
    resume_to: Stage | None = None
    notice_reference: str | None = None
    runs: int = 1
    dependency_waits: list[DependencyWait] = Field(default_factory=list)
    notification_failures: list[NotificationFailure] = Field(default_factory=list)

    @classmethod
    def placed(cls, order: PlaceOrder, workflow_id: str, at: datetime) -> OrderState:
        """An order's state the instant its workflow started (``at``: the execution's start time). The workflow
        starts from exactly this, so a caller that started it can answer without waiting for a worker."""
        return cls(
            order_id=order.order_id,
            workflow_id=workflow_id,
            kind=order.kind,
            filing_number=order.filing_number,
            province=order.province,
            stage=Stage.VALIDATION,
            status=Status.ACTIVE,
            waiting_on=WaitingOn.SYSTEM,
            placed_at=at,
            updated_at=at,
            notice_reference=order.notice.reference if order.notice else None,
        )

    def deadline(self, kind: DeadlineKind) -> Deadline | None:
        return next((d for d in self.deadlines if d.kind is kind), None)

    def document(self, key: str) -> DocumentState | None:
        return next((d for d in self.documents if d.key == key), None)

    @property
    def current_submission(self) -> Submission | None:
        return self.submissions[-1] if self.submissions else None
