"""How large a request body may be, enforced before the body is read or spooled to disk: at once when
Content-Length says it is too large, else as soon as the bytes received pass the limit. The answer is the API's
JSON 413.

* A document upload: the document limit plus room for the multipart framing (413 ``document_too_large``).
* The codec server: what the Temporal Web UI sends, a few payloads at a time (413 ``request_too_large``).
* Any other body, an order or an action: ``api_max_request_bytes`` (413 ``request_too_large``). The JSON decoder
  reads a body whole into memory before any field is checked, so without this a caller could make the API hold
  anything it sends.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starter.api.config import MIB
from starter.api.documents import too_large
from starter.api.errors import ApiError, ErrorBody

UPLOAD_PATH = re.compile(r"^/v1/orders/[^/]+/documents/?$")
CODEC_PATH = re.compile(r"^/codec/")
# Room for the multipart framing and the key field around an uploaded file.
MULTIPART_OVERHEAD = 64 * 1024
# Temporal refuses a payload over 2 MiB by default; the UI sends a few at once, base64-encoded.
CODEC_MAX_BYTES = 16 * MIB


def request_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        f"a request body may be at most {limit} bytes ({limit / MIB:g} MiB)",
        {"max_bytes": limit},
    )


class BodySizeLimit:
    """Refuses a request whose body is beyond its limit (see the module's doc) before the app reads it."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int, max_request_bytes: int) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_request_bytes = max_request_bytes

    def limit(self, path: str) -> tuple[int, ApiError]:
        """The most bytes a body sent to ``path`` may have, and the error past it."""
        if UPLOAD_PATH.match(path):
            return self.max_upload_bytes + MULTIPART_OVERHEAD, too_large(self.max_upload_bytes)
        if CODEC_PATH.match(path):
            return CODEC_MAX_BYTES, request_too_large(CODEC_MAX_BYTES)
        return self.max_request_bytes, request_too_large(self.max_request_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, error = self.limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, error)
            return
        received = 0
        exceeded = False
        responded = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
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
            await _refuse(send, error)


async def _refuse(send: Send, err: ApiError) -> None:
    body = json.dumps(ErrorBody(code=err.code, message=err.message, details=err.details).model_dump()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
