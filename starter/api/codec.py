"""The codec server for Temporal's Web UI: ``POST /codec/decode`` and ``/codec/encode`` speak Temporal's remote
codec protocol (``{"payloads": [{"metadata": {…}, "data": "<base64>"}]}``), so support staff can read an order's
encrypted payloads in the UI while Temporal itself only ever stores ciphertext.

Decoding reveals personal data, so it needs a ``support`` bearer token (set it in the UI's codec settings with
"pass access token", or front the UI with the provider's SSO). The UI's origin must be listed in
``ICPFLOW_API_CODEC_CORS_ORIGINS``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from starter.api.auth import require
from starter.api.config import Role
from starter.api.context import ApiContext
from starter.api.errors import ApiError
from starter.codec import CodecKeyError, EncryptionCodec, codec_from_settings

router = APIRouter(prefix="/codec", tags=["operations"])


def _codec(request: Request) -> EncryptionCodec:
    codec: EncryptionCodec | None = getattr(request.app.state, "codec", None)
    if codec is None:
        ctx: ApiContext = request.app.state.ctx
        codec = codec_from_settings(ctx.settings)
        request.app.state.codec = codec
    return codec


async def _payloads(request: Request) -> Payloads:
    try:
        return json_format.ParseDict(await request.json(), Payloads())
    except (ValueError, json_format.ParseError) as err:
        raise ApiError(400, "bad_payloads", f'expected {{"payloads": [...]}} as Temporal sends it: {err}') from None


@router.post("/decode", dependencies=[Depends(require(Role.SUPPORT))])
async def decode(request: Request) -> dict[str, Any]:
    payloads = await _payloads(request)
    try:
        decoded = await _codec(request).decode(list(payloads.payloads))
    except CodecKeyError as err:
        raise ApiError(422, "unknown_codec_key", str(err)) from None
    return json_format.MessageToDict(Payloads(payloads=decoded))


@router.post("/encode", dependencies=[Depends(require(Role.SUPPORT))])
async def encode(request: Request) -> dict[str, Any]:
    payloads = await _payloads(request)
    encoded = await _codec(request).encode(list(payloads.payloads))
    return json_format.MessageToDict(Payloads(payloads=encoded))
