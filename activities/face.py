"""Face verification: the vendor port and its HTTP adapter.

A website's or app's person in charge proves they are the person on the ID card with a face capture compared
against the national ID photo (DOMAIN.md, "Documents and authenticity"). Vendors (liveness / face-compare
services) answer with a score and a verdict; this module hides which vendor it is.

Errors: a transport failure or a vendor 5xx propagates as ``httpx`` errors (the activity fails and Temporal
retries); a 4xx means our request was malformed and raises :class:`FaceVendorRequestError`, which retrying cannot
fix. A "no match" is not an error: it is a :class:`FaceResult` with ``match=False``.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

COMPARE_PATH = "/v1/face/compare"


@dataclass(frozen=True, slots=True)
class FaceResult:
    match: bool
    score: float  # 0–100, the vendor's similarity
    reason: str = ""  # the vendor's words when it does not match
    request_id: str = ""  # the vendor's id, for support tickets


class FaceVendorRequestError(Exception):
    """The vendor refused the request itself (HTTP 4xx): a bug on our side, not the applicant's face."""


class FaceVendorError(Exception):
    """The vendor answered with something that is not a verdict (retryable: vendors have bad minutes)."""


class FaceVerifier(Protocol):
    async def verify(self, image: bytes, name: str, id_number: str) -> FaceResult:
        """Compare ``image`` with the ID photo on record for ``name`` / ``id_number``."""
        ...


class HttpFaceVerifier:
    """Speaks the face-compare API (``POST /v1/face/compare``) of the vendor, or of ``simulators.face_vendor``.

    ``transport`` is for tests; in production the default transport is used.
    """

    def __init__(
        self, base_url: str, *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._transport = transport
        # One pooled client per event loop: a new client per call built a TLS context each time (bench profile).
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self._timeout, transport=self._transport)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def verify(self, image: bytes, name: str, id_number: str) -> FaceResult:
        body = {"image": base64.b64encode(image).decode("ascii"), "name": name, "id_number": id_number}
        response = await self._http().post(COMPARE_PATH, json=body)
        if 400 <= response.status_code < 500:
            raise FaceVendorRequestError(
                f"face vendor refused the request (HTTP {response.status_code}): {_error_text(response)}"
            )
        response.raise_for_status()
        return _parse_result(response)


def _parse_result(response: httpx.Response) -> FaceResult:
    try:
        payload: Any = response.json()
        result, score = payload["result"], float(payload["score"])
    except (ValueError, KeyError, TypeError) as e:
        raise FaceVendorError(f"face vendor answered without a verdict: {response.text[:200]!r}") from e
    if result not in {"pass", "fail"}:
        raise FaceVendorError(f"face vendor answered an unknown result {result!r}")
    return FaceResult(
        match=result == "pass",
        score=score,
        reason=str(payload.get("reason") or ""),
        request_id=str(payload.get("request_id") or ""),
    )


def _error_text(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(payload, dict):
        return str(payload.get("error") or payload)
    return str(payload)
