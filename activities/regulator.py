"""The gateway to the provincial communications administration: submit an order, forward the SMS code, poll for
the verdict.

How failures reach the workflow (it relies on this):
- the administration unreachable, a timeout, a 5xx or a 429 → a retryable error: Temporal retries the activity;
- a request the administration refuses (any other 4xx) → a non-retryable ``ApplicationError`` whose ``type`` names
  the cause (``RegulatorUnauthorized``, ``UnknownSubmission``, ``IdempotencyConflict``, ``NotAwaitingSms``,
  ``RegulatorRefused``): retrying would only repeat the refusal;
- ``poll_review`` while the review runs → retryable ``ApplicationError(type="ReviewPending")``, so one activity
  with a flat retry interval does the polling and the workflow history does not grow with the wait.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NoReturn

import httpx
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from models.activity_io import (
    ReviewDecision,
    ReviewVerdict,
    SmsCode,
    SmsCodeOutcome,
    SmsCodeResult,
    SubmissionReceipt,
    SubmissionRef,
    SubmitToAdministration,
)
from models.settings import Settings

REVIEW_PENDING = "ReviewPending"
NOT_UNDER_REVIEW = "NotUnderReview"
_DECIDED = {"approved": ReviewDecision.APPROVED, "rejected": ReviewDecision.REJECTED}
_NOT_UNDER_REVIEW = {"awaiting_sms", "returned", "expired"}


class RegulatorActivities:
    """Activities calling the administration's HTTP API at ``base_url`` with ``api_key``; ``timeout`` (seconds)
    bounds each request. One instance serves the worker's lifetime; ``aclose`` releases its connections."""

    def __init__(self, base_url: str, api_key: str | SecretStr, timeout: float = 10.0) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=timeout,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RegulatorActivities:
        return cls(settings.regulator_url, settings.regulator_api_key, settings.http_timeout_seconds)

    async def aclose(self) -> None:
        await self._http.aclose()

    def activities(self) -> list[Callable[..., Any]]:
        """The bound activities, for ``Worker(activities=...)``."""
        return [self.submit_to_administration, self.verify_sms_code, self.resend_sms, self.poll_review]

    # -- activities --------------------------------------------------------------------------------------------

    @activity.defn(name="submit_to_administration")
    async def submit_to_administration(self, request: SubmitToAdministration) -> SubmissionReceipt:
        """Submit the order; the administration texts the verification code. Retrying with the same
        ``idempotency_key`` returns the same submission and texts nobody again."""
        response = await self._call(
            "POST",
            "/v1/submissions",
            "submit",
            json=request.model_dump(mode="json"),
            on_conflict=(
                "IdempotencyConflict",
                f"the administration holds a different submission under idempotency key "
                f"{request.idempotency_key!r} (order {request.order_id}): a resubmission needs a new key",
            ),
        )
        body = self._json(response, "submit")
        return SubmissionReceipt(
            submission_id=body["submission_id"],
            received_at=datetime.fromisoformat(body["received_at"]),
            sms_sent_to=body.get("sms_sent_to", 0),
        )

    @activity.defn(name="verify_sms_code")
    async def verify_sms_code(self, request: SmsCode) -> SmsCodeResult:
        """Forward the code the applicant entered. Every answer of the administration is a result (wrong code,
        returned after five wrong codes, expired window), not an error."""
        response = await self._call(
            "POST",
            f"/v1/submissions/{request.submission_id}/sms-verification",
            "verify the SMS code",
            json={"code": request.code},
        )
        body = self._json(response, "verify the SMS code")
        return SmsCodeResult(outcome=SmsCodeOutcome(body["outcome"]), attempts_left=body.get("attempts_left", 0))

    @activity.defn(name="resend_sms")
    async def resend_sms(self, request: SubmissionRef) -> None:
        """Ask the administration to text a new code. The SMS window is not extended."""
        response = await self._call(
            "POST",
            f"/v1/submissions/{request.submission_id}/sms-resend",
            "resend the SMS code",
            on_conflict=(
                "NotAwaitingSms",
                f"submission {request.submission_id} no longer awaits the SMS code; nothing was resent",
            ),
        )
        self._json(response, "resend the SMS code")

    @activity.defn(name="poll_review")
    async def poll_review(self, request: SubmissionRef) -> ReviewVerdict:
        """The administration's verdict once it exists. Until then raises the retryable ``ReviewPending``
        (schedule with a flat retry policy and no attempt limit)."""
        response = await self._call("GET", f"/v1/submissions/{request.submission_id}", "poll the review")
        body = self._json(response, "poll the review")
        status = body.get("status")
        if status in _DECIDED:
            decided_at = body.get("decided_at")
            return ReviewVerdict(
                decision=_DECIDED[status],
                reasons=list(body.get("reasons") or []),
                decided_at=datetime.fromisoformat(decided_at) if decided_at else None,
            )
        if status == "under_review":
            # Benign: the expected answer of a poll, logged at debug level and kept out of failure metrics.
            raise ApplicationError("review pending", type=REVIEW_PENDING, category=ApplicationErrorCategory.BENIGN)
        if status in _NOT_UNDER_REVIEW:
            raise ApplicationError(
                f"submission {request.submission_id} is {status}, not under review: the SMS verification did not "
                "complete",
                type=NOT_UNDER_REVIEW,
                non_retryable=True,
            )
        # An unknown status is the administration changing its API: keep retrying (and alerting) rather than
        # dropping an order that may still be approved.
        raise ApplicationError(f"unexpected review status {status!r} for submission {request.submission_id}")

    # -- HTTP --------------------------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        json: Any = None,
        on_conflict: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request and return its successful response; raise for everything else. A 409 means the
        request contradicts the administration's state: ``on_conflict`` (error type, message) says what that
        means for this call."""
        try:
            response = await self._http.request(method, path, json=json)
        except httpx.TransportError as e:
            raise ApplicationError(
                f"could not {what}: the administration at {self.base_url} did not answer ({e!r})",
                type="RegulatorUnavailable",
            ) from e
        status = response.status_code
        if status >= 500 or status == 429:
            raise ApplicationError(
                f"could not {what}: the administration answered HTTP {status}: {_detail(response)}",
                type="RegulatorUnavailable",
            )
        if status in (401, 403):
            self._refuse(
                response,
                "RegulatorUnauthorized",
                f"the administration refused our credentials (HTTP {status}) when trying to {what}: "
                "check ICPFLOW_REGULATOR_API_KEY",
            )
        if status == 404:
            self._refuse(response, "UnknownSubmission", f"could not {what}: the administration knows no {path}")
        if status == 409 and on_conflict is not None:
            self._refuse(response, *on_conflict)
        if 400 <= status < 500:
            self._refuse(
                response,
                "RegulatorRefused",
                f"could not {what}: the administration refused the request (HTTP {status})",
            )
        return response

    @staticmethod
    def _refuse(response: httpx.Response, error_type: str, message: str) -> NoReturn:
        raise ApplicationError(
            f"{message} — {_detail(response)}",
            {"status": response.status_code, "body": response.text[:2000]},
            type=error_type,
            non_retryable=True,
        )

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as e:
            raise ApplicationError(f"could not {what}: the administration answered with non-JSON") from e
        if not isinstance(body, dict):
            raise ApplicationError(f"could not {what}: the administration answered with {type(body).__name__}")
        return body


def _detail(response: httpx.Response) -> str:
    """The administration's own explanation, if it gave one."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or "(empty body)"
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return response.text[:200]
