"""``POST /v1/orders/{order_id}/documents``: an applicant's upload, forwarded by the backend.

The content goes to the document store (owned by the order's filing entity, so the authenticity check can refuse a
document another entity already submitted); the workflow gets only a reference. Limits, checked before anything is
stored: the size (413; a body far beyond it is refused before it is read, see :mod:`starter.api.limits`), the type
(415: JPEG, PNG or PDF, declared AND recognised from the first bytes) and the file name (reduced to a plain base
name; any path, control character or excess length is dropped).
"""

from __future__ import annotations

import asyncio
import unicodedata
from typing import Annotated

from fastapi import APIRouter, Form, UploadFile

from models.messages import ActionResult
from models.order import entity_filing_number
from starter.api.errors import ApiError, error_responses
from starter.api.order_view import load_order
from starter.api.orders import BODY_ACTION_ERRORS, Backend, Context, OrderId
from store.documents import MAX_FILENAME_BYTES, check_filename

router = APIRouter(prefix="/v1/orders", tags=["orders"])

# What each accepted type starts with: a file is what its bytes say, not only what its sender declares.
ACCEPTED_TYPES: dict[str, tuple[bytes, str]] = {
    "image/jpeg": (b"\xff\xd8\xff", ".jpg"),
    "image/png": (b"\x89PNG\r\n\x1a\n", ".png"),
    "application/pdf": (b"%PDF-", ".pdf"),
}


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "document_too_large",
        f"a document may be at most {limit} bytes ({limit / 1024 / 1024:g} MiB)",
        {"max_bytes": limit},
    )


def safe_filename(raw: str | None, content_type: str) -> str:
    """The file's base name without any directory, control or invisible characters, at most 255 UTF-8 bytes with
    its extension kept; ``document.<ext>`` when nothing usable remains."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", name)
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    while stem and len((stem + suffix).encode()) > MAX_FILENAME_BYTES:
        stem = stem[:-1]
    name = (stem + suffix) if stem else ""
    return check_filename(name or f"document{ACCEPTED_TYPES[content_type][1]}")


@router.post(
    "/{order_id}/documents",
    response_model=ActionResult,
    summary="Upload a document",
    responses=BODY_ACTION_ERRORS | error_responses(415),
)
async def upload_document(
    order_id: OrderId,
    key: Annotated[str, Form(min_length=1, max_length=128, description="the requirement key, e.g. id_card_front:…")],
    file: UploadFile,
    ctx: Context,
    caller: Backend,
) -> ActionResult:
    """Multipart form with ``key`` (which required document this is, see the order's ``documents``) and
    ``file`` (JPEG, PNG or PDF, at most 5 MiB by default)."""
    limit = ctx.settings.api_max_upload_bytes
    content_type = (file.content_type or "").split(";", 1)[0].strip().lower()
    if content_type not in ACCEPTED_TYPES:
        raise ApiError(
            415,
            "unsupported_document_type",
            f"documents are {', '.join(ACCEPTED_TYPES)}; this file is {content_type or 'of no declared type'}",
            {"accepted": list(ACCEPTED_TYPES)},
        )
    if file.size is not None and file.size > limit:
        raise too_large(limit)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise too_large(limit)
    magic, _ = ACCEPTED_TYPES[content_type]
    if not data.startswith(magic):
        raise ApiError(
            415,
            "unsupported_document_type",
            f"the file is declared {content_type} but its content is not",
            {"accepted": list(ACCEPTED_TYPES)},
        )
    filename = safe_filename(file.filename, content_type)
    order = await load_order(ctx, order_id)
    owner = entity_filing_number(order.filing_number)
    ref = await asyncio.to_thread(ctx.documents.put, data, content_type, filename, owner)
    return await ctx.orders.upload_document(order_id, key, ref)
