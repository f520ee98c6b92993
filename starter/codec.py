"""Personal data stays private: every payload Temporal stores (order input, state, activity arguments and results,
messages) is encrypted with AES-256-GCM before it leaves the process.

The key id travels in the payload's metadata, so keys can be rotated: new payloads are encrypted with the active
key, and any key still listed decrypts the payloads written with it. Search attributes are not payloads and carry
no personal data by design (models/search.py).

Keys come from ``ICPFLOW_CODEC_KEYS`` (JSON ``{"key-id": "<base64 of 32 random bytes>"}``) and
``ICPFLOW_CODEC_ACTIVE_KEY``. Without them a local key file is created under the data directory, so a fresh
checkout works with no setup; production must set the variables (docs/operations.md).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from models.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecKeyError(ValueError):
    """The key configuration is unusable, or a payload names a key this process does not have."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if active not in keys:
            raise CodecKeyError(f"ICPFLOW_CODEC_ACTIVE_KEY {active!r} is not among the configured keys {sorted(keys)}")
        for kid, key in keys.items():
            if len(key) != 32:
                raise CodecKeyError(f"codec key {kid!r} must be 32 bytes (base64 of 32 random bytes), got {len(key)}")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        cipher = self._ciphers[self.active]
        out = []
        for payload in payloads:
            nonce = secrets.token_bytes(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), self.active.encode())
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID: self.active.encode()}, data=nonce + sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                out.append(payload)  # written before encryption was on: pass through
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(kid)
            if cipher is None:
                raise CodecKeyError(f"payload encrypted with key {kid!r}, which is not configured (ICPFLOW_CODEC_KEYS)")
            nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
            decoded = Payload()
            decoded.ParseFromString(cipher.decrypt(nonce, sealed, kid.encode()))
            out.append(decoded)
        return out


def parse_keys(raw: str) -> dict[str, bytes]:
    try:
        table = json.loads(raw)
        return {str(kid): base64.b64decode(value, validate=True) for kid, value in table.items()}
    except (ValueError, AttributeError) as err:
        raise CodecKeyError(
            'ICPFLOW_CODEC_KEYS must be JSON like {"2026-11": "<base64 of 32 random bytes>"}: ' + str(err)
        ) from None


def new_key() -> str:
    """A fresh key, base64-encoded, for ICPFLOW_CODEC_KEYS."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def local_keys(data_dir: Path) -> tuple[dict[str, bytes], str]:
    """The development key file under the data directory, created (mode 0600) on first use."""
    path = data_dir / "codec-keys.json"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"active": "local-1", "keys": {"local-1": new_key()}}, f)
        os.replace(tmp, path)
    content = json.loads(path.read_text())
    return parse_keys(json.dumps(content["keys"])), content["active"]


def codec_from_settings(settings: Settings) -> EncryptionCodec:
    if settings.codec_keys is not None:
        keys = parse_keys(settings.codec_keys.get_secret_value())
        active = settings.codec_active_key or (next(iter(keys)) if len(keys) == 1 else "")
        if not active:
            raise CodecKeyError(
                "several codec keys are configured: set ICPFLOW_CODEC_ACTIVE_KEY to the one to encrypt with"
            )
        return EncryptionCodec(keys, active)
    keys, active = local_keys(settings.data_dir)
    return EncryptionCodec(keys, active)


def data_converter(settings: Settings) -> DataConverter:
    """The one data converter of icpflow: pydantic JSON, encrypted. Client, worker, replayer and tests use it."""
    return DataConverter(
        payload_converter_class=pydantic_data_converter.payload_converter_class,
        payload_codec=codec_from_settings(settings),
    )
