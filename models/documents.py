"""Documents an applicant uploads: what kinds exist, what an order requires, and where each one stands."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from models.order import Frozen


class DocumentKind(StrEnum):
    BUSINESS_LICENCE = "business_licence"
    CHANGE_CERTIFICATE = "change_certificate"
    ID_CARD_FRONT = "id_card_front"
    ID_CARD_BACK = "id_card_back"
    AUTHORISATION_LETTER = "authorisation_letter"
    AUTHENTICITY_COMMITMENT = "authenticity_commitment"
    FACE_VERIFICATION = "face_verification"
    DOMAIN_CERTIFICATE = "domain_certificate"


class DocumentRequirement(Frozen):
    """One document the order needs. ``key`` is what an upload names: ``{kind}:{subject}``."""

    key: str
    kind: DocumentKind
    subject: str = Field(description="'entity' or the filing number of the website/app it concerns")
    description: str = ""

    @classmethod
    def of(cls, kind: DocumentKind, subject: str, description: str = "") -> DocumentRequirement:
        return cls(key=f"{kind.value}:{subject}", kind=kind, subject=subject, description=description)


class DocumentStatus(StrEnum):
    MISSING = "missing"
    UPLOADED = "uploaded"
    VERIFIED = "verified"
    FAILED = "failed"  # returned to the applicant with a reason
    REUSED = "reused"  # taken from an order of the same filing approved in the last three years


class DocumentRef(Frozen):
    """Where an uploaded file's content lives. The workflow keeps only this, never the bytes."""

    uri: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    content_type: str
    filename: str = ""
