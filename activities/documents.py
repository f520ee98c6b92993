"""Which documents an order needs (DOMAIN.md's document matrix) and the authenticity checks each upload passes.

``required_documents`` is a pure function of the order; the activity wraps it so that a change to the matrix
reaches new orders without touching workflow code. ``verify_document`` runs the checks a provider runs before a
human reviewer looks: the file is the one uploaded, of an allowed type and size, a readable image of sufficient
resolution, in colour (photocopies are refused), not another entity's file, and, for face captures, the vendor
confirms the face. A failed check is an answer (``passed=False`` with a reason the applicant can act on); only
infrastructure trouble raises, so Temporal retries it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from PIL import Image, UnidentifiedImageError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.face import FaceVendorRequestError, FaceVerifier, HttpFaceVerifier
from models.activity_io import RequiredDocuments, VerificationResult, VerifyDocument
from models.documents import DocumentKind, DocumentRef, DocumentRequirement
from models.order import ChangeField, Person, PlaceOrder, Province
from models.provinces import DocumentCondition, province_rules
from models.settings import Settings
from store.documents import DocumentNotFoundError, DocumentStore, LocalDocumentStore

ENTITY = "entity"  # the subject of documents about the filing entity itself

# Documents are listed in this order within one subject; the entity's documents come first, then each service's.
_KIND_ORDER = {kind: i for i, kind in enumerate(DocumentKind)}


def required_documents(order: PlaceOrder) -> list[DocumentRequirement]:
    """The documents ``order`` needs, without duplicates, in a deterministic order (the entity's first, then each
    website/app's by filing number; within a subject, in ``DocumentKind`` order).

    The matrix (DOMAIN.md, "Documents and authenticity"):

    - entity name or credit code → business licence + certificate of change (R-ENT-1);
    - entity person in charge → the new person's ID card, front and back, + an authorisation letter unless the
      new person is the legal representative (an unknown new person is treated as not being one);
    - website/app person in charge → ID card front and back + face verification, for that service;
    - ID card renewal → new ID card photos for the person concerned (the service's when the change names one);
    - contact phone/email, names, IP, content, language, platforms, domains → nothing;
    - what the province table lists for the order's province (Jiangsu: an authenticity commitment, and an
      authorisation letter when the entity's person in charge is not the legal representative).
    """
    wanted: dict[str, DocumentRequirement] = {}

    def need(kind: DocumentKind, subject: str) -> None:
        requirement = DocumentRequirement.of(kind, subject, _describe(kind, subject, order.province))
        wanted.setdefault(requirement.key, requirement)

    for change in order.changes:
        match change.field:
            case ChangeField.ENTITY_NAME | ChangeField.ENTITY_CREDIT_CODE:
                need(DocumentKind.BUSINESS_LICENCE, ENTITY)
                need(DocumentKind.CHANGE_CERTIFICATE, ENTITY)
            case ChangeField.ENTITY_PERSON_IN_CHARGE:
                need(DocumentKind.ID_CARD_FRONT, ENTITY)
                need(DocumentKind.ID_CARD_BACK, ENTITY)
                if change.new_person is None or not change.new_person.is_legal_representative:
                    need(DocumentKind.AUTHORISATION_LETTER, ENTITY)
            case ChangeField.SERVICE_PERSON_IN_CHARGE:
                service = change.service or order.filing_number
                need(DocumentKind.ID_CARD_FRONT, service)
                need(DocumentKind.ID_CARD_BACK, service)
                need(DocumentKind.FACE_VERIFICATION, service)
            case ChangeField.ID_CARD_RENEWAL:
                subject = change.service or ENTITY
                need(DocumentKind.ID_CARD_FRONT, subject)
                need(DocumentKind.ID_CARD_BACK, subject)
            case _:
                pass  # no identity re-verification
    # What a province asks for on top of the national list comes from the province table (models/provinces.json).
    for extra in province_rules(order.province).extra_documents.value:
        if extra.when is DocumentCondition.ALWAYS or (
            extra.when is DocumentCondition.PERSON_NOT_LEGAL_REPRESENTATIVE
            and not order.person_in_charge(ENTITY).is_legal_representative
        ):
            need(extra.kind, ENTITY)
    return sorted(wanted.values(), key=lambda r: (r.subject != ENTITY, r.subject, _KIND_ORDER[r.kind]))


def _describe(kind: DocumentKind, subject: str, province: Province) -> str:
    # The description depends only on (kind, subject, province), so deduplication cannot depend on change order.
    whose = "the entity's person in charge" if subject == ENTITY else f"the person in charge of {subject}"
    original = "a colour photo of the original (no photocopy, screen or electronic ID)"
    match kind:
        case DocumentKind.BUSINESS_LICENCE:
            return f"The entity's new business licence: {original}"
        case DocumentKind.CHANGE_CERTIFICATE:
            return "Certificate of change from the business administration (R-ENT-1)"
        case DocumentKind.ID_CARD_FRONT:
            return f"Front of the ID card of {whose}: {original}; no household register or temporary ID card"
        case DocumentKind.ID_CARD_BACK:
            return f"Back of the ID card of {whose}: {original}; valid for more than 3 months (R-ID-2)"
        case DocumentKind.AUTHORISATION_LETTER:
            return (
                "Authorisation letter signed by the legal representative and sealed by the entity: the new person "
                "in charge is not the legal representative"
            )
        case DocumentKind.FACE_VERIFICATION:
            return f"Face verification of {whose}: a clear, well-lit photo of the face, looking at the camera"
        case DocumentKind.AUTHENTICITY_COMMITMENT:
            name = province.value.replace("_", " ").title()
            return f"Authenticity commitment signed and sealed by the entity (required by the {name} administration)"
        case DocumentKind.DOMAIN_CERTIFICATE:
            return "Domain name certificate from the registrar"


# --- authenticity -----------------------------------------------------------------------------------------------


class Check(StrEnum):
    """The checks, by the name reported in ``VerificationResult.checks``."""

    STORED = "stored"
    INTEGRITY = "integrity"
    DUPLICATE = "duplicate"
    CONTENT_TYPE = "content_type"
    SIZE = "size"
    READABLE = "readable"
    RESOLUTION = "resolution"
    COLOUR = "colour"
    FACE = "face"


JPEG, PNG, PDF = "image/jpeg", "image/png", "application/pdf"
KIB, MIB = 1024, 1024 * 1024


@dataclass(frozen=True, slots=True)
class DocumentRules:
    """What one kind of document must be. Images need ``min_long`` × ``min_short`` pixels (either orientation)."""

    content_types: frozenset[str]
    min_size: int
    max_size: int
    min_long: int
    min_short: int
    face: bool = False


PHOTO = DocumentRules(frozenset({JPEG, PNG}), 10 * KIB, 5 * MIB, 600, 400)
LETTER = DocumentRules(frozenset({JPEG, PNG, PDF}), 10 * KIB, 10 * MIB, 600, 400)
FACE_CAPTURE = DocumentRules(frozenset({JPEG, PNG}), 10 * KIB, 5 * MIB, 300, 300, face=True)

RULES: dict[DocumentKind, DocumentRules] = {
    DocumentKind.BUSINESS_LICENCE: PHOTO,
    DocumentKind.ID_CARD_FRONT: PHOTO,
    DocumentKind.ID_CARD_BACK: PHOTO,
    DocumentKind.FACE_VERIFICATION: FACE_CAPTURE,
    DocumentKind.CHANGE_CERTIFICATE: LETTER,
    DocumentKind.AUTHORISATION_LETTER: LETTER,
    DocumentKind.AUTHENTICITY_COMMITMENT: LETTER,
    DocumentKind.DOMAIN_CERTIFICATE: LETTER,
}

# Beyond this the image is a decompression bomb or a scan no reviewer needs.
MAX_PIXELS = 50_000_000
_FORMAT_TYPES = {"JPEG": JPEG, "MPO": JPEG, "PNG": PNG}  # MPO: the multi-picture JPEG many phones write
_SINGLE_CHANNEL_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}

# Colour test. A photocopy (or a greyscale scan, or a photo of either under tinted light) has, once the overall
# tint is removed, almost no difference between its red, green and blue channels anywhere; a colour photo of an
# original has some visibly coloured area (a red seal, the ID card's pattern, a portrait, the licence border).
COLOUR_SAMPLE_SIDE = 256
COLOUR_MIN_SPREAD = 24  # max(R, G, B) - min(R, G, B) of a sampled pixel, 0–255
COLOUR_MIN_FRACTION = 0.005  # of sampled pixels


def inspect_content(data: bytes, req: VerifyDocument, owners_of: Callable[[str], set[str]]) -> VerificationResult:
    """Every check that needs only the bytes (all but face verification), stopping at the first failure.

    Blocking and CPU-bound: run it in a thread. ``checks`` names every check run when all pass, the failing one
    otherwise.
    """
    passed: list[str] = []
    with closing(_content_checks(data, req, RULES[req.kind], owners_of)) as checks:
        for check, problem in checks:
            if problem is not None:
                return VerificationResult(key=req.key, passed=False, reason=problem, checks=[check.value])
            passed.append(check.value)
    return VerificationResult(key=req.key, passed=True, checks=passed)


def _content_checks(
    data: bytes, req: VerifyDocument, rules: DocumentRules, owners_of: Callable[[str], set[str]]
) -> Generator[tuple[Check, str | None], None, None]:
    # A generator so each check runs only when the previous ones passed (and the image is decoded once).
    ref = req.ref
    digest = hashlib.sha256(data).hexdigest()
    problem = None
    if digest != ref.sha256 or len(data) != ref.size:
        problem = "The stored file is not the one that was uploaded (its checksum differs). Please upload it again."
    yield Check.INTEGRITY, problem

    owners = owners_of(digest)
    others = owners - {req.owner} if req.owner else (owners if len(owners) > 1 else set())
    problem = None
    if others:
        problem = (
            "This exact file has already been submitted for another filing entity. Upload a photo you took "
            "yourself of your own original document."
        )
    yield Check.DUPLICATE, problem

    declared = _media_type(ref.content_type)
    problem = None
    if declared not in rules.content_types:
        problem = f"This document must be {_allowed(rules)}; the file uploaded is {ref.content_type or 'untyped'}."
    yield Check.CONTENT_TYPE, problem

    yield Check.SIZE, _size_problem(len(data), rules)

    if declared == PDF:
        problem = None
        if not (data.startswith(b"%PDF-") and b"%%EOF" in data[-2048:]):
            problem = "The file could not be opened as a PDF (it is damaged or not a PDF). Upload it again."
        yield Check.READABLE, problem
        return  # a PDF is not rendered here: its legibility is the reviewer's call

    image, problem = _open_image(data, declared)
    yield Check.READABLE, problem
    if image is None:
        return
    with image:
        width, height = image.size
        problem = None
        if width * height > MAX_PIXELS:
            problem = f"The photo is {width}×{height} pixels, more than we can process: upload at most 50 megapixels."
        elif max(width, height) < rules.min_long or min(width, height) < rules.min_short:
            problem = (
                f"The photo is {width}×{height} pixels; it must be at least {rules.min_long}×{rules.min_short} so "
                "every detail is legible. Take the photo again, closer or at a higher resolution."
            )
        yield Check.RESOLUTION, problem

        problem = None
        if not is_colour(image):
            problem = (
                "The photo looks black-and-white. Upload a colour photo of the original document: photocopies and "
                "greyscale scans are refused."
            )
        yield Check.COLOUR, problem


def _open_image(data: bytes, declared: str) -> tuple[Image.Image | None, str | None]:
    unreadable = "The file could not be opened as an image (it is damaged or not a photo). Upload a JPEG or PNG photo."
    try:
        # verify() finds structural damage without decoding; it leaves the image unusable, hence the reopen.
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        return None, "The image is far too large to process. Upload a photo of at most 50 megapixels."
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        return None, unreadable
    found = image.format or "unknown"
    if _FORMAT_TYPES.get(found) != declared:
        image.close()
        return None, f"The file is a {found} image but was uploaded as {declared}. Upload a JPEG or PNG photo."
    if image.width * image.height <= MAX_PIXELS:
        try:
            image.load()  # truncated files fail here, not in verify()
        except (OSError, SyntaxError, ValueError, EOFError):
            image.close()
            return None, unreadable
    return image, None


def is_colour(image: Image.Image) -> bool:
    """Whether ``image`` shows real colour, not a greyscale picture (possibly tinted by the light or the camera).

    Samples the image down to at most ``COLOUR_SAMPLE_SIDE`` pixels a side, removes the overall tint (scaling each
    channel to the same mean: "grey world"), and asks whether at least ``COLOUR_MIN_FRACTION`` of the samples
    differ between channels by ``COLOUR_MIN_SPREAD`` or more.
    """
    if image.mode in _SINGLE_CHANNEL_MODES:
        return False
    sample = image.convert("RGB")
    sample.thumbnail((COLOUR_SAMPLE_SIDE, COLOUR_SAMPLE_SIDE))
    raw = sample.tobytes()
    channels = (raw[0::3], raw[1::3], raw[2::3])
    n = len(channels[0])
    if n == 0:
        return False
    means = [sum(c) / n for c in channels]
    grey = sum(means) / 3
    # Clamped so a nearly empty channel (a very dark or saturated picture) does not turn noise into colour.
    gains = [min(2.0, max(0.5, grey / m)) if m > 0 else 1.0 for m in means]
    kr, kg, kb = gains
    needed = COLOUR_MIN_FRACTION * n
    coloured = 0
    for r, g, b in zip(*channels, strict=True):
        r_, g_, b_ = r * kr, g * kg, b * kb
        if max(r_, g_, b_) - min(r_, g_, b_) >= COLOUR_MIN_SPREAD:
            coloured += 1
            if coloured >= needed:  # enough colour seen: the rest of the loop would only hold the GIL (bench profile)
                return True
    return False


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _allowed(rules: DocumentRules) -> str:
    names = {JPEG: "JPEG", PNG: "PNG", PDF: "PDF"}
    listed = [names[t] for t in (JPEG, PNG, PDF) if t in rules.content_types]
    return "a " + (" or ".join(listed) if len(listed) < 3 else f"{listed[0]}, {listed[1]} or {listed[2]}") + " file"


def _size_problem(size: int, rules: DocumentRules) -> str | None:
    if size < rules.min_size:
        return (
            f"The file is only {_human(size)}: too small to be a clear photo of the original. Upload a photo of at "
            f"least {_human(rules.min_size)}."
        )
    if size > rules.max_size:
        return f"The file is {_human(size)}; the limit is {_human(rules.max_size)}. Upload a smaller photo or scan."
    return None


def _human(size: int) -> str:
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    if size >= KIB:
        return f"{size / KIB:.0f} KiB"
    return f"{size} bytes"


class DocumentActivities:
    """The document activities, bound to a store and a face vendor.

    ``settings`` is kept for configuration the activities may grow; :meth:`from_settings` builds the production
    adapters from it.
    """

    def __init__(
        self, document_store: DocumentStore, face_verifier: FaceVerifier, settings: Settings | None = None
    ) -> None:
        self._store = document_store
        self._face = face_verifier
        self._settings = settings or Settings()

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentActivities:
        return cls(
            LocalDocumentStore(settings.document_store_path),
            HttpFaceVerifier(settings.face_verification_url, timeout=settings.http_timeout_seconds),
            settings,
        )

    @activity.defn(name="required_documents")
    async def required_documents(self, order: PlaceOrder) -> RequiredDocuments:
        return RequiredDocuments(requirements=required_documents(order))

    @activity.defn(name="verify_document")
    async def verify_document(self, req: VerifyDocument) -> VerificationResult:
        """Run every authenticity check on one upload. Returns ``passed=False`` with a reason the applicant can
        act on when a check fails; raises only when the store or the face vendor cannot answer (retried) or when
        the request itself is wrong (not retried)."""
        rules = RULES[req.kind]
        if rules.face and req.person is None:
            raise ApplicationError(
                f"{req.key}: face verification needs the person's name and ID number (the request's person)",
                type="FaceVerificationWithoutPerson",
                non_retryable=True,
            )
        data = await self._fetch(req.ref)
        if data is None:
            return VerificationResult(
                key=req.key,
                passed=False,
                reason="We could not find the uploaded file. Please upload it again.",
                checks=[Check.STORED.value],
            )
        result = await asyncio.to_thread(inspect_content, data, req, self._store.owners_of)
        if not result.passed or not rules.face:
            return result
        assert req.person is not None
        return await self._verify_face(req, data, req.person, result)

    def activities(self) -> list[Any]:
        return [self.required_documents, self.verify_document]

    async def _fetch(self, ref: DocumentRef) -> bytes | None:
        try:
            return await asyncio.to_thread(self._store.get, ref)
        except (DocumentNotFoundError, ValueError):
            # A reference to nothing (or to no place in this store) will not improve with retries.
            return None

    async def _verify_face(
        self, req: VerifyDocument, image: bytes, person: Person, content: VerificationResult
    ) -> VerificationResult:
        try:
            face = await self._face.verify(image, person.name, person.id_number)
        except FaceVendorRequestError as e:
            raise ApplicationError(str(e), type="FaceVendorRequestRefused", non_retryable=True) from e
        if not face.match:
            why = face.reason or "the face does not match the ID photo on record"
            return VerificationResult(
                key=req.key,
                passed=False,
                reason=(
                    f"Face verification failed: {why}. Take a new photo of the person in charge: face the camera in "
                    "good light, without a hat or sunglasses, and check the name and ID number match the ID card."
                ),
                checks=[Check.FACE.value],
            )
        return content.model_copy(update={"checks": [*content.checks, Check.FACE.value]})
