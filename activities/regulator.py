"""The gateway to the provincial communications administration: submit an order, forward the SMS code, poll for
the verdict.

How failures reach the workflow (it relies on this):
- the administration unreachable, a timeout, a 5xx or a 429 → a retryable error: Temporal retries the activity;
- a request the administration refuses (any other 4xx) → a non-retryable ``ApplicationError`` whose ``type`` names
  the cause (``RegulatorUnauthorized``, ``UnknownSubmission``, ``IdempotencyConflict``, ``NotAwaitingSms``,
  ``RegulatorRefused``): retrying would only repeat the refusal;
- an answer icpflow cannot read (not JSON, cut short, a field missing or of the wrong type) → a retryable
  ``ApplicationError(type="RegulatorMalformedResponse")`` saying what was wrong: never a crash, never a guessed
  verdict. Every call is idempotent at the administration (the submission by its key, a verified code stays
  verified, a poll only reads), so asking again is safe;
- ``poll_review`` while the review runs → retryable ``ApplicationError(type="ReviewPending")``, so one activity
  with a flat retry interval does the polling and the workflow history does not grow with the wait. An outage
  during the poll is told apart from "pending": it is retried with a bounded backoff (1 s → 5 min, via
  ``next_retry_delay``), its start is kept in the heartbeat details (they carry over to the next attempt), and once
  it has lasted the input's ``patience`` the poll fails with the non-retryable ``RegulatorOutage`` (details:
  ``{"since": ISO instant, "last_error": the adapter's message}``), so the workflow shows the wait and alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from models.activity_io import (
    ReviewDecision,
    ReviewPoll,
    ReviewPollResult,
    ReviewVerdict,
    SmsCode,
    SmsCodeOutcome,
    SmsCodeResult,
    SubmissionReceipt,
    SubmissionRef,
    SubmitToAdministration,
)
from models.settings import Settings

MALFORMED = "RegulatorMalformedResponse"
REVIEW_PENDING = "ReviewPending"
NOT_UNDER_REVIEW = "NotUnderReview"
REGULATOR_OUTAGE = "RegulatorOutage"
# The review poll's backoff while the administration is down: as the workflow's other activities (DEPENDENCY_RETRY).
OUTAGE_BACKOFF_MIN = timedelta(seconds=1)
OUTAGE_BACKOFF_MAX = timedelta(minutes=5)
_DECIDED = {"approved": ReviewDecision.APPROVED, "rejected": ReviewDecision.REJECTED}
_NOT_UNDER_REVIEW = {"awaiting_sms", "returned", "expired"}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_A = TypeVar("_A", bound=_Answer)


class _Receipt(_Answer):
    submission_id: str = Field(min_length=1)
    received_at: datetime
    sms_sent_to: int = 0


class _Outcome(_Answer):
    outcome: SmsCodeOutcome
    attempts_left: int = 0


class _Review(_Answer):
    status: str | None = None
    reasons: list[str] | None = None
    decided_at: datetime | None = None


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
        receipt = self._parse(response, _Receipt, "submit")
        return SubmissionReceipt(
            submission_id=receipt.submission_id, received_at=receipt.received_at, sms_sent_to=receipt.sms_sent_to
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
        answer = self._parse(response, _Outcome, "verify the SMS code")
        return SmsCodeResult(outcome=answer.outcome, attempts_left=answer.attempts_left)

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
    async def poll_review(self, request: ReviewPoll) -> ReviewVerdict | ReviewPollResult:
        """The administration's verdict once it exists. Until then raises the retryable ``ReviewPending``
        (schedule with a flat retry policy and no attempt limit). An outage is retried with a bounded backoff and
        reported with the non-retryable ``RegulatorOutage`` once it has lasted ``request.patience`` (see
        ``ReviewPoll``); polling again after that (``outage_since`` set), the answer is a ``ReviewPollResult``."""
        try:
            verdict = await self._review(request.submission_id)
        except ApplicationError as e:
            if e.type == REVIEW_PENDING:
                _outage_over()
                if request.outage_since is not None:
                    return ReviewPollResult(verdict=None)
                raise
            if e.non_retryable:
                raise
            _outage_attempt(request, e)
        return verdict if request.outage_since is None else ReviewPollResult(verdict=verdict)

    async def _review(self, submission_id: str) -> ReviewVerdict:
        response = await self._call("GET", f"/v1/submissions/{submission_id}", "poll the review")
        review = self._parse(response, _Review, "poll the review")
        status = review.status
        if status in _DECIDED:
            return ReviewVerdict(
                decision=_DECIDED[status], reasons=list(review.reasons or []), decided_at=review.decided_at
            )
        if status == "under_review":
            # Benign: the expected answer of a poll, logged at debug level and kept out of failure metrics.
            raise ApplicationError("review pending", type=REVIEW_PENDING, category=ApplicationErrorCategory.BENIGN)
        if status in _NOT_UNDER_REVIEW:
            raise ApplicationError(
                f"submission {submission_id} is {status}, not under review: the SMS verification did not complete",
                type=NOT_UNDER_REVIEW,
                non_retryable=True,
            )
        # An unknown status is the administration changing its API: keep retrying (and alerting) rather than
        # dropping an order that may still be approved.
        raise ApplicationError(f"unexpected review status {status!r} for submission {submission_id}")

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
            ) from None  # the message names the cause; the workflow shows an error's innermost cause
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
            raise _malformed(response, what, f"not JSON ({e})") from None
        if not isinstance(body, dict):
            raise _malformed(response, what, f"a JSON {type(body).__name__}, not an object")
        return body

    @classmethod
    def _parse(cls, response: httpx.Response, model: type[_A], what: str) -> _A:
        body = cls._json(response, what)
        try:
            return model.model_validate(body)
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors())
            raise _malformed(response, what, problems) from None


def _outage_attempt(request: ReviewPoll, error: ApplicationError) -> NoReturn:
    """One poll attempt met an outage: retry it with a bounded backoff, or give up for the workflow to report it once
    it has lasted ``request.patience``. Durations use the server's clock (the attempt's scheduled time), the one the
    workflow's deadlines and a test's skipped clock use."""
    if request.patience is None:
        raise error  # an input from before outages were reported: retried at the poll interval, as then
    info = activity.info()
    now = info.current_attempt_scheduled_time
    since = _recorded_outage_start(info.heartbeat_details, request.outage_since) or now
    activity.heartbeat({"outage_since": since.isoformat()})  # the next attempt reads it
    lasted = max(now - since, timedelta(0))
    if lasted >= request.patience:
        raise ApplicationError(
            f"the administration has not answered the review poll for {lasted} (since {since.isoformat()}); "
            f"last error: {error.message}",
            {"since": since.isoformat(), "last_error": error.message, "type": error.type},
            type=REGULATOR_OUTAGE,
            non_retryable=True,
        )
    # Back off as long as the outage has lasted (so 1 s, 1 s, 2 s, 4 s …), at most 5 min, and come back in time to
    # report it once patience runs out.
    delay = min(max(lasted, OUTAGE_BACKOFF_MIN), OUTAGE_BACKOFF_MAX, max(request.patience - lasted, OUTAGE_BACKOFF_MIN))
    raise ApplicationError(error.message, *error.details, type=error.type, next_retry_delay=delay) from None


def _recorded_outage_start(details: Sequence[Any], reported: datetime | None) -> datetime | None:
    """When the outage began: as an earlier attempt of this poll recorded it (None once the administration answered
    again), else as the workflow reported it, else unknown (it begins now)."""
    if details and isinstance(details[0], dict) and "outage_since" in details[0]:
        recorded = details[0]["outage_since"]
        return datetime.fromisoformat(recorded) if isinstance(recorded, str) else None
    return reported


def _outage_over() -> None:
    """The administration answered: forget an outage an earlier attempt recorded, so a later one starts afresh."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], dict) and details[0].get("outage_since") is not None:
        activity.heartbeat({"outage_since": None})


def _malformed(response: httpx.Response, what: str, problem: str) -> ApplicationError:
    """Retryable: the administration did answer, but not in a shape icpflow can trust."""
    return ApplicationError(
        f"could not {what}: the administration's answer (HTTP {response.status_code}) is malformed: {problem}; "
        f"it began {response.text[:120]!r}",
        {"status": response.status_code, "body": response.text[:2000]},
        type=MALFORMED,
    )


def _detail(response: httpx.Response) -> str:
    """The administration's own explanation, if it gave one."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or "(empty body)"
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return response.text[:200]
