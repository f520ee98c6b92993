"""``POST /v1/orders/{order_id}/documents``: an applicant's upload, forwarded by the backend.

The content goes to the document store (owned by the order's filing entity, so the authenticity check can refuse a
document another entity already submitted); the workflow gets only a reference. Limits, checked before anything is
stored: the size (413; a body far beyond it is refused before it is read, see :class:`UploadSizeLimit`), the type
(415: JPEG, PNG or PDF, declared AND recognised from the first bytes) and the file name (reduced to a plain base
name; any path, control character or excess length is dropped).
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from typing import Annotated

from fastapi import APIRouter, Form, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.messages import ActionResult
from models.order import entity_filing_number
from starter.api.errors import ApiError, ErrorBody, error_responses
from starter.api.order_view import load_order
from starter.api.orders import ACTION_ERRORS, Backend, Context, OrderId
from store.documents import MAX_FILENAME_BYTES, check_filename

router = APIRouter(prefix="/v1/orders", tags=["orders"])

# What each accepted type starts with: a file is what its bytes say, not only what its sender declares.
ACCEPTED_TYPES: dict[str, tuple[bytes, str]] = {
    "image/jpeg": (b"\xff\xd8\xff", ".jpg"),
    "image/png": (b"\x89PNG\r\n\x1a\n", ".png"),
    "application/pdf": (b"%PDF-", ".pdf"),
}
# Room for the multipart framing and the key field around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
UPLOAD_PATH = re.compile(r"^/v1/orders/[^/]+/documents/?$")


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
    responses=ACTION_ERRORS | error_responses(413, 415),
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
    return await ctx.act(ctx.orders.upload_document(order_id, key, ref))


class UploadSizeLimit:
    """Refuses an upload whose body is far beyond the limit before it is read or spooled to disk: at once when
    Content-Length says so, else as soon as the bytes received pass it. The answer is the API's JSON 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit = max_bytes + MULTIPART_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not UPLOAD_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        received = 0
        exceeded = False
        responded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal responded
            if exceeded:
                return  # whatever the app says about the broken body, the answer is 413
            responded = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not responded:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        err = too_large(self.max_bytes)
        body = json.dumps(ErrorBody(code=err.code, message=err.message, details=err.details).model_dump()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
