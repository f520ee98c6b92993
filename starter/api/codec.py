"""The codec server for Temporal's Web UI: ``POST /codec/decode`` and ``/codec/encode`` speak Temporal's remote
codec protocol (``{"payloads": [{"metadata": {…}, "data": "<base64>"}]}``), so support staff can read an order's
encrypted payloads in the UI while Temporal itself only ever stores ciphertext.

Decoding reveals personal data, so it needs a ``support`` bearer token (set it in the UI's codec settings with
"pass access token", or front the UI with the provider's SSO). The UI's origin must be listed in
``ICPFLOW_API_CODEC_CORS_ORIGINS``.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Depends, Request
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from starter.api.auth import require
from starter.api.config import Role
from starter.api.context import get_context
from starter.api.errors import ApiError, error_responses
from starter.codec import CodecKeyError, EncryptionCodec, codec_from_settings

router = APIRouter(prefix="/codec", tags=["operations"])


def _codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec | None = getattr(request.app.state, "codec", None)
    if codec is None:
        codec = codec_from_settings(get_context(request).settings)
        request.app.state.codec = codec
    return codec


# Temporal's remote codec protocol: the protobuf JSON form of Payloads, bytes in base64 (an empty list may be left
# out, as protobuf's JSON form leaves out every empty field).
PAYLOADS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "payloads": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "metadata": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
                    "data": {"type": "string", "format": "byte"},
                },
            },
        }
    },
}
PAYLOADS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": PAYLOADS_SCHEMA}}}}


async def _payloads(request: Request) -> Payloads:
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError(f"the body is a JSON {type(body).__name__}, not an object")
        _refuse_nulls(body, "body")
        return json_format.ParseDict(body, Payloads())
    except (ValueError, json_format.ParseError) as err:
        raise ApiError(400, "bad_payloads", f'expected {{"payloads": [...]}} as Temporal sends it: {err}') from None


def _refuse_nulls(value: Any, where: str) -> None:
    """Protobuf's JSON parser reads ``null`` as "left out"; the documented schema has no nulls, so refuse them
    rather than guess (found by schemathesis: ``{"metadata": null}`` was accepted)."""
    if value is None:
        raise ValueError(f"{where} is null")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_nulls(item, f"{where}[{i}]")


@router.post(
    "/decode",
    dependencies=[Depends(require(Role.SUPPORT))],
    openapi_extra=PAYLOADS_BODY,
    responses=error_responses(400, 401, 403, 413, 422),
)
async def decode(request: Request) -> dict[str, Any]:
    payloads = await _payloads(request)
    try:
        decoded = await _codec(request).decode(list(payloads.payloads))
    except CodecKeyError as err:
        raise ApiError(422, "unknown_codec_key", str(err)) from None
    except (InvalidTag, ValueError, DecodeError):
        # Not sealed by us with the key it names: altered, truncated (a nonce too short is a ValueError) or forged,
        # or a key id that is not even text. Nothing of it can be shown.
        raise ApiError(
            422, "undecodable_payload", "a payload could not be decrypted: it was altered or not encrypted by icpflow"
        ) from None
    return json_format.MessageToDict(Payloads(payloads=decoded))


@router.post(
    "/encode",
    dependencies=[Depends(require(Role.SUPPORT))],
    openapi_extra=PAYLOADS_BODY,
    responses=error_responses(400, 401, 403, 413),
)
async def encode(request: Request) -> dict[str, Any]:
    payloads = await _payloads(request)
    encoded = await _codec(request).encode(list(payloads.payloads))
    return json_format.MessageToDict(Payloads(payloads=encoded))
