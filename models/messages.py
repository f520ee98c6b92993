"""One input model per message a caller sends to an order, and the answers updates give back."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from models.documents import DocumentRef
from models.order import Frozen
from models.stages import Stage, Status


class SupportAction(Frozen):
    """Input of ``abandon`` and ``resume`` (signal or update): who, and why. Both are recorded in the audit trail."""

    actor: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class ExtendCollection(Frozen):
    """Support grants the applicant more time (R-ID-1: a lost ID card must be replaced first)."""

    actor: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)
    days: int = Field(ge=1, le=90)


class UploadDocument(Frozen):
    """An uploaded document: its requirement key and a reference to content already stored outside Temporal."""

    key: str
    ref: DocumentRef
    uploaded_by: str = "applicant"


class Confirm(Frozen):
    actor: str = "applicant"


class InitialReviewDecision(Frozen):
    reviewer: str = Field(min_length=1, max_length=64)
    approved: bool
    reasons: list[str] = Field(default_factory=list)


class SmsEventKind(StrEnum):
    CODE_ENTERED = "code_entered"  # the applicant typed a code: forwarded to the administration
    RESEND_REQUESTED = "resend_requested"
    VERIFIED = "verified"  # the administration reports success
    RETURNED = "returned"  # the administration returned the order (5 wrong codes)
    EXPIRED = "expired"  # the administration reports the 24 h window passed


class SmsVerificationEvent(Frozen):
    event: SmsEventKind
    code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")  # ASCII digits only: ６ is not 6
    actor: str = "applicant"


class Resubmit(Frozen):
    """After the administration rejected the order, the applicant fixed it: send it round again."""

    actor: str = "applicant"
    note: str = ""


class ActionResult(Frozen):
    """What an update returns: where the order stands after the action, and a human sentence."""

    order_id: str
    stage: Stage
    status: Status
    message: str = ""
    attempts_left: int | None = None
