"""The stages of a modification order, in the domain's words, and who the order is waiting on."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    VALIDATION = "validation"
    DOCUMENT_COLLECTION = "document_collection"
    AUTHENTICITY_VERIFICATION = "authenticity_verification"
    CONFIRMATION = "confirmation"
    INITIAL_REVIEW = "initial_review"
    SUBMISSION = "submission"
    SMS_VERIFICATION = "sms_verification"
    ADMINISTRATION_REVIEW = "administration_review"
    CORRECTION = "correction"  # rejected by the administration: waits for the applicant's fix
    RECORD_UPDATE = "record_update"
    COMPLETED = "completed"
    INVALID = "invalid"
    ABANDONED = "abandoned"

    @property
    def locked(self) -> bool:
        """From submission until the administration's verdict the order cannot be edited or withdrawn."""
        return self in LOCKED_STAGES

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STAGES


LOCKED_STAGES = frozenset({Stage.SUBMISSION, Stage.SMS_VERIFICATION, Stage.ADMINISTRATION_REVIEW, Stage.RECORD_UPDATE})
TERMINAL_STAGES = frozenset({Stage.COMPLETED, Stage.INVALID, Stage.ABANDONED})

PIPELINE: tuple[Stage, ...] = (
    Stage.VALIDATION,
    Stage.DOCUMENT_COLLECTION,
    Stage.AUTHENTICITY_VERIFICATION,
    Stage.CONFIRMATION,
    Stage.INITIAL_REVIEW,
    Stage.SUBMISSION,
    Stage.SMS_VERIFICATION,
    Stage.ADMINISTRATION_REVIEW,
    Stage.RECORD_UPDATE,
    Stage.COMPLETED,
)


class Status(StrEnum):
    """How the order is doing within its stage."""

    ACTIVE = "active"
    PAUSED = "paused"  # stalled (idle, resubmissions exhausted): support must resume it
    APPROVED = "approved"
    INVALID = "invalid"
    ABANDONED = "abandoned"


class WaitingOn(StrEnum):
    SYSTEM = "system"
    APPLICANT = "applicant"
    REVIEWER = "reviewer"
    ADMINISTRATION = "administration"
    SUPPORT = "support"
    NOBODY = "nobody"


class Actor(StrEnum):
    """Who caused a transition, as recorded in the timeline and audit trail."""

    SYSTEM = "system"
    APPLICANT = "applicant"
    REVIEWER = "reviewer"
    SUPPORT = "support"
    ADMINISTRATION = "administration"
    BACKEND = "backend"
