"""The regulator simulator: a provincial communications administration (管局, under MIIT) receiving modification
orders, running the SMS verification and returning a verdict (DOMAIN.md, pipeline steps 6–9).

Provider API (``Authorization: Bearer <api key>``, JSON; errors are ``{"error": code, "message": text}``):
- ``POST /v1/submissions`` {idempotency_key, order_id, kind, province, filing_number, mobiles} → 201 (new) or
  200 (same key, same body: the same submission, nobody is texted again) with {submission_id, status,
  received_at, sms_expires_at, sms_sent_to}; 409 when the key was used with a different body; 422 on a bad body;
  503 when the SMS channel failed (nothing was created, a retry with the same key starts afresh).
- ``POST /v1/submissions/{id}/sms-verification`` {code} → {outcome, attempts_left}.
- ``POST /v1/submissions/{id}/sms-resend`` → 200 with a new code texted; 409 when no longer awaiting the SMS.
- ``GET /v1/submissions/{id}`` → {submission_id, order_id, status, received_at, sms_expires_at, reasons,
  decided_at}.

Simulator control (no auth, for tests and demos):
- ``GET /sim/submissions`` → every submission with its current code.
- ``POST /sim/submissions/{id}/decide`` {decision: approved|rejected, reasons: [...]}.
- ``POST /sim/submissions/{id}/expire`` — the SMS window is over now.

Faults, for reliability tests (set from Python; ``clear_faults`` lifts them all). Each applies to the provider
API (``/v1/…``, after the API key is checked), optionally to one HTTP method only:
- ``fail_next(n, status=503)`` — the next ``n`` requests get ``status`` with an error body; nothing happens;
- ``hang_next(n)`` — the next ``n`` requests are read and never answered (until ``clear_faults`` or ``stop``);
  nothing happens;
- ``malformed_next(n)`` — the next ``n`` requests are carried out as usual, but the answer's JSON body is cut in
  half (what a proxy truncating the response does): the provider cannot read what happened.

The administration calls nothing back: verdicts are read by polling ``GET /v1/submissions/{id}``, and its reports
on the SMS verification reach icpflow through the provider's own API.

Time is wall-clock; the SMS window and review delay are evaluated when a submission is read, so no background
task exists and ``decided_at`` is the exact scheduled instant, not the moment somebody looked.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from activities.sms_client import make_twilio_client

# MIIT texts from its 12381 short code (DOMAIN.md step 7).
SMS_FROM = "12381"
MAX_WRONG_CODES = 5
REVIEW_BUSINESS_DAYS = (1, 20)
# Business days → calendar days, roughly (weekends and the odd holiday): good enough for a plausible simulation.
CALENDAR_DAYS_PER_BUSINESS_DAY = 1.4
_MOBILE = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")
_CODE_IN_SMS = re.compile(r"验证码为(\d{6})")


def _json_response(data: Any, status: int = 200) -> web.Response:
    # Chinese text stays readable for a person looking at the simulator with curl or a browser.
    return web.json_response(data, status=status, dumps=functools.partial(json.dumps, ensure_ascii=False))


class SubmissionStatus(StrEnum):
    AWAITING_SMS = "awaiting_sms"
    RETURNED = "returned"  # five wrong codes in a row
    EXPIRED = "expired"  # the SMS window passed
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewMode(StrEnum):
    MANUAL = "manual"  # nothing is decided until POST /sim/submissions/{id}/decide
    AUTO = "auto"  # a verdict arrives by itself 1–20 business days (× time_factor) after verification


@dataclass(frozen=True)
class RejectionReason:
    code: str
    zh: str
    en: str

    @property
    def text(self) -> str:
        """What the regulator sends: Chinese first, English after a slash."""
        return f"{self.zh} / {self.en}"


# DOMAIN.md "Rejection reasons". The codes are the simulator's own; /sim decide accepts them as shorthands.
REJECTION_REASONS: tuple[RejectionReason, ...] = (
    RejectionReason(
        "domain_holder",
        "域名持有者与主体不一致或未入工信部库",
        "Domain holder mismatch or not in MIIT's database",
    ),
    RejectionReason("domain_registrar", "域名后缀或注册商未获批准", "Domain suffix or registrar not approved"),
    RejectionReason("domain_expired", "域名已过期", "Domain expired"),
    RejectionReason(
        "site_name",
        "网站名称不规范",
        "Bad website name (only digits/letters, a national prefix, the domain itself)",
    ),
    RejectionReason(
        "pre_approval",
        "内容涉及前置审批",
        "Content needs pre-approval (news, publishing, medicine, culture, film/TV, education, health, finance, games)",
    ),
    RejectionReason(
        "documents",
        "证件不清晰、不完整、已过期或非本省",
        "Documents unclear, incomplete, expired or from another province",
    ),
    RejectionReason("not_legal_rep", "负责人非法定代表人", "Person in charge is not the legal representative"),
    RejectionReason(
        "phone_numbers",
        "电话号码不符合要求（非本地、重复使用或角色间重复）",
        "Bad phone numbers (non-local, reused, duplicated between roles)",
    ),
    RejectionReason(
        "site_unreachable",
        "已备案网站无法访问或未悬挂备案号",
        "Filed site unreachable or not showing the ICP number",
    ),
    RejectionReason("unfiled_domain", "存在解析中的未备案域名", "Unfiled domains resolving"),
    RejectionReason("duplicate_order", "存在进行中的重复订单", "Duplicate in-progress order"),
    RejectionReason("wrong_kind", "订单类型错误", "Wrong order kind"),
    RejectionReason("face_verification", "人脸核验未通过", "Failed face verification"),
)
_REASONS_BY_CODE = {r.code: r for r in REJECTION_REASONS}


def code_from_sms(body: str) -> str:
    """The verification code in an SMS this simulator sent (for tests and demo drivers reading the SMS sink)."""
    m = _CODE_IN_SMS.search(body)
    if m is None:
        raise ValueError(f"no verification code in SMS {body!r}")
    return m.group(1)


def _describe(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600}小时"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60}分钟"
    return f"{max(seconds, 1)}秒"


class SubmissionRequest(BaseModel):
    """The body of ``POST /v1/submissions``: the administration's own schema, not icpflow's model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idempotency_key: str = Field(min_length=1, max_length=200)
    order_id: str = Field(min_length=1)
    kind: Literal["entity", "website", "app"]
    province: str = Field(min_length=1)
    filing_number: str = Field(min_length=1)
    mobiles: list[str] = Field(min_length=1)

    def distinct_mobiles(self) -> list[str]:
        """The numbers to text, in E.164, each once (people in charge may share a number: one SMS)."""
        seen: dict[str, None] = {}
        for mobile in self.mobiles:
            m = _MOBILE.match(re.sub(r"[\s-]", "", mobile))
            if m is None:
                raise ValueError(f"{mobile!r} is not a mainland mobile number")
            seen.setdefault(f"+86{m.group(1)}")
        return list(seen)


@dataclass
class _Submission:
    submission_id: str
    request: SubmissionRequest
    mobiles: list[str]
    received_at: datetime
    sms_expires_at: datetime
    code: str
    status: SubmissionStatus = SubmissionStatus.AWAITING_SMS
    wrong_codes: int = 0
    verified_at: datetime | None = None
    # Auto mode draws the verdict at verification and reveals it at decide_at.
    decide_at: datetime | None = None
    planned: tuple[SubmissionStatus, list[str]] | None = None
    reasons: list[str] = field(default_factory=list)
    decided_at: datetime | None = None

    @property
    def attempts_left(self) -> int:
        return max(MAX_WRONG_CODES - self.wrong_codes, 0)

    def catch_up(self, now: datetime) -> None:
        """Apply what time has done since the last look: an SMS window that ran out, a verdict that came due."""
        if self.status is SubmissionStatus.AWAITING_SMS and now >= self.sms_expires_at:
            self.status = SubmissionStatus.EXPIRED
        if (
            self.status is SubmissionStatus.UNDER_REVIEW
            and self.planned is not None
            and self.decide_at is not None
            and now >= self.decide_at
        ):
            self.decide(self.planned[0], self.planned[1], self.decide_at)

    def decide(self, status: SubmissionStatus, reasons: list[str], at: datetime) -> None:
        self.status, self.reasons, self.decided_at, self.planned = status, reasons, at, None

    def view(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "order_id": self.request.order_id,
            "status": self.status.value,
            "received_at": self.received_at.isoformat(),
            "sms_expires_at": self.sms_expires_at.isoformat(),
            "reasons": self.reasons,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }

    def sim_view(self) -> dict[str, Any]:
        return self.view() | {
            "idempotency_key": self.request.idempotency_key,
            "filing_number": self.request.filing_number,
            "province": self.request.province,
            "kind": self.request.kind,
            "mobiles": self.mobiles,
            "code": self.code,
            "wrong_codes": self.wrong_codes,
            "attempts_left": self.attempts_left,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "decide_at": self.decide_at.isoformat() if self.decide_at else None,
        }


def _same(given: str, expected: str) -> bool:
    # Constant-time, and on bytes: compare_digest refuses non-ASCII str (a full-width code would crash it).
    return hmac.compare_digest(given.encode(), expected.encode())


def _error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return _json_response({"error": error, "message": message, **extra}, status=status)


class RegulatorSimulator:
    """The regulator simulator. State lives in memory for the simulator's lifetime.

    ``sms_client_factory`` returns the twilio client the codes are texted with (see ``with_twilio``).
    ``time_factor`` scales every simulated duration (1/8640 makes a day last 10 s). ``sms_window`` is the time
    allowed to enter the code; by default 24 h × ``time_factor`` (an explicit value is used as given).
    ``seed`` makes codes, ids and auto-mode verdicts reproducible.
    """

    def __init__(
        self,
        api_key: str,
        sms_client_factory: Callable[[], Client],
        *,
        mode: ReviewMode | Literal["manual", "auto"] = ReviewMode.MANUAL,
        time_factor: float = 1.0,
        approve_ratio: float = 0.8,
        sms_window: timedelta | None = None,
        seed: int | None = None,
        sms_from: str = SMS_FROM,
    ) -> None:
        if time_factor <= 0:
            raise ValueError("time_factor must be positive")
        if not 0.0 <= approve_ratio <= 1.0:
            raise ValueError("approve_ratio must lie in [0, 1]")
        self.api_key = api_key
        self.mode = ReviewMode(mode)
        self.time_factor = time_factor
        self.approve_ratio = approve_ratio
        self.sms_window = sms_window if sms_window is not None else timedelta(hours=24) * time_factor
        self.sms_from = sms_from
        self.url = ""
        self._sms = sms_client_factory()
        self._rng = random.Random(seed)
        self._submissions: dict[str, _Submission] = {}
        self._by_key: dict[str, _Submission] = {}
        # Creation awaits the SMS channel; serialising it keeps "same key → same submission" true for concurrent
        # retries without leaving a half-created submission visible.
        self._create_lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        # Injected faults: (requests left, method or None for any, detail); see the module docstring.
        self._faults: dict[str, tuple[int, str | None, int]] = {}
        self._release: asyncio.Event | None = None
        # Requests answered with an injected fault so far: a test can tell its fault was met.
        self.fault_hits = 0

    # -- faults ------------------------------------------------------------------------------------------------

    def fail_next(self, requests: int, status: int = 503, *, method: str | None = None) -> None:
        """Answer the next ``requests`` API requests (of ``method`` only, if given) with HTTP ``status``."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error, got {status}")
        self._faults["fail"] = (requests, method, status)

    def hang_next(self, requests: int, *, method: str | None = None) -> None:
        """Read the next ``requests`` API requests (of ``method`` only) and never answer them."""
        self._faults["hang"] = (requests, method, 0)

    def malformed_next(self, requests: int, *, method: str | None = None) -> None:
        """Carry out the next ``requests`` API requests (of ``method`` only) but cut their JSON answer in half."""
        self._faults["malformed"] = (requests, method, 0)

    def clear_faults(self) -> None:
        """Lift every injected fault and let hung requests end."""
        self._faults.clear()
        if self._release is not None:
            self._release.set()
            self._release = None

    def _take_fault(self, request: web.Request) -> tuple[str, int] | None:
        for kind, (left, method, detail) in self._faults.items():
            if left > 0 and (method is None or method.upper() == request.method):
                self._faults[kind] = (left - 1, method, detail)
                self.fault_hits += 1
                return kind, detail
        return None

    async def _faulty(self, request: web.Request, handler: Any) -> web.StreamResponse:
        fault = self._take_fault(request)
        if fault is None:
            response: web.StreamResponse = await handler(request)
            return response
        kind, status = fault
        if kind == "fail":
            return _error(status, "unavailable", f"the administration's system answered {status} (injected)")
        if kind == "hang":
            if self._release is None:
                self._release = asyncio.Event()
            await self._release.wait()
            return _error(503, "unavailable", "the request was held and dropped (injected)")
        answer = await handler(request)
        assert isinstance(answer, web.Response) and isinstance(answer.body, bytes)
        body = answer.body
        return web.Response(body=body[: len(body) // 2], status=answer.status, content_type="application/json")

    @classmethod
    def with_twilio(
        cls, api_key: str, account_sid: str, auth_token: str, twilio_base_url: str | None, **kwargs: Any
    ) -> RegulatorSimulator:
        """A simulator texting through the real twilio client pointed at ``twilio_base_url`` (the SMS sink)."""
        return cls(api_key, lambda: make_twilio_client(account_sid, auth_token, twilio_base_url), **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        api_key = self.api_key

        @web.middleware
        async def require_api_key(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.startswith("/v1/"):
                scheme, _, token = request.headers.get("Authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not _same(token.strip(), api_key):
                    return _error(401, "unauthorized", "missing or wrong API key (Authorization: Bearer …)")
                return await self._faulty(request, handler)
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[require_api_key])
        app.router.add_post("/v1/submissions", self._create)
        app.router.add_get("/v1/submissions/{id}", self._get)
        app.router.add_post("/v1/submissions/{id}/sms-verification", self._verify)
        app.router.add_post("/v1/submissions/{id}/sms-resend", self._resend)
        app.router.add_get("/sim/submissions", self._sim_list)
        app.router.add_post("/sim/submissions/{id}/decide", self._sim_decide)
        app.router.add_post("/sim/submissions/{id}/expire", self._sim_expire)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 picks a free port); ``url`` tells where. Raises ``OSError`` when the port is
        taken."""
        runner = web.AppRunner(self.app())
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        if self._release is not None:  # hung requests must end, or the server waits for them
            self._release.set()
            self._release = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- helpers -----------------------------------------------------------------------------------------------

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)

    def _new_code(self, previous: str | None = None) -> str:
        while True:
            code = f"{self._rng.randrange(1_000_000):06d}"
            if code != previous:  # a resent code must differ, or the applicant cannot tell them apart
                return code

    def _sms_body(self, code: str) -> str:
        return (
            f"【工信部ICP备案】您的验证码为{code}，{_describe(self.sms_window)}内有效，"
            "请登录 https://beian.miit.gov.cn 完成短信核验。如非本人操作，请忽略本短信。"
        )

    async def _text_code(self, submission: _Submission) -> None:
        body = self._sms_body(submission.code)
        for mobile in submission.mobiles:
            await self._sms.messages.create_async(to=mobile, from_=self.sms_from, body=body)

    def _draw_reasons(self) -> list[str]:
        return [r.text for r in self._rng.sample(REJECTION_REASONS, self._rng.randint(1, 3))]

    def _plan_verdict(self, submission: _Submission, verified_at: datetime) -> None:
        business_days = self._rng.randint(*REVIEW_BUSINESS_DAYS)
        delay = timedelta(days=business_days * CALENDAR_DAYS_PER_BUSINESS_DAY) * self.time_factor
        approved = self._rng.random() < self.approve_ratio
        submission.decide_at = verified_at + delay
        submission.planned = (
            (SubmissionStatus.APPROVED, []) if approved else (SubmissionStatus.REJECTED, self._draw_reasons())
        )

    def _lookup(self, request: web.Request) -> _Submission | web.Response:
        submission = self._submissions.get(request.match_info["id"])
        if submission is None:
            return _error(404, "not_found", f"no submission {request.match_info['id']!r}")
        submission.catch_up(self._now())
        return submission

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "bad_json", "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "bad_json", "the body must be a JSON object")
        return body

    # -- provider API ------------------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            submission_request = SubmissionRequest.model_validate(body)
            mobiles = submission_request.distinct_mobiles()
        except (ValidationError, ValueError) as e:
            return _error(422, "invalid_submission", str(e))

        async with self._create_lock:
            existing = self._by_key.get(submission_request.idempotency_key)
            if existing is not None:
                if existing.request != submission_request:
                    return _error(
                        409,
                        "idempotency_key_reused",
                        f"idempotency key {submission_request.idempotency_key!r} was used for a different submission",
                        submission_id=existing.submission_id,
                    )
                existing.catch_up(self._now())
                return _json_response(self._receipt(existing), status=200)

            now = self._now()
            submission = _Submission(
                submission_id=f"sub_{self._rng.getrandbits(64):016x}",
                request=submission_request,
                mobiles=mobiles,
                received_at=now,
                sms_expires_at=now + self.sms_window,
                code=self._new_code(),
            )
            try:
                await self._text_code(submission)
            except (TwilioRestException, aiohttp.ClientError, TimeoutError) as e:
                # Not stored: the provider's retry with the same key creates it and texts the code again.
                return _error(503, "sms_unavailable", f"could not text the verification code: {e}")
            self._submissions[submission.submission_id] = submission
            self._by_key[submission_request.idempotency_key] = submission
            return _json_response(self._receipt(submission), status=201)

    @staticmethod
    def _receipt(submission: _Submission) -> dict[str, Any]:
        return {
            "submission_id": submission.submission_id,
            "status": submission.status.value,
            "received_at": submission.received_at.isoformat(),
            "sms_expires_at": submission.sms_expires_at.isoformat(),
            "sms_sent_to": len(submission.mobiles),
        }

    async def _get(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        return _json_response(found.view())

    async def _verify(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        code = body.get("code")
        if not isinstance(code, str):
            return _error(422, "invalid_code", "'code' must be a string")

        submission = found
        match submission.status:
            case SubmissionStatus.RETURNED | SubmissionStatus.EXPIRED:
                return self._outcome(submission.status.value, 0)
            case SubmissionStatus.UNDER_REVIEW | SubmissionStatus.APPROVED | SubmissionStatus.REJECTED:
                # Already verified: a retried request must not count against the applicant.
                return self._outcome("verified", submission.attempts_left)
        if _same(code.strip(), submission.code):
            now = self._now()
            submission.status, submission.verified_at = SubmissionStatus.UNDER_REVIEW, now
            if self.mode is ReviewMode.AUTO:
                self._plan_verdict(submission, now)
            return self._outcome("verified", submission.attempts_left)
        submission.wrong_codes += 1
        if submission.wrong_codes >= MAX_WRONG_CODES:
            submission.status = SubmissionStatus.RETURNED
            return self._outcome("returned", 0)
        return self._outcome("wrong_code", submission.attempts_left)

    @staticmethod
    def _outcome(outcome: str, attempts_left: int) -> web.Response:
        return _json_response({"outcome": outcome, "attempts_left": attempts_left})

    async def _resend(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        if found.status is not SubmissionStatus.AWAITING_SMS:
            return _error(409, "not_awaiting_sms", f"submission is {found.status.value}, not awaiting_sms")
        # The window is not extended: it counts from when the administration received the order, which is
        # also the deadline icpflow computed at submission.
        found.code = self._new_code(previous=found.code)
        try:
            await self._text_code(found)
        except (TwilioRestException, aiohttp.ClientError, TimeoutError) as e:
            return _error(503, "sms_unavailable", f"could not text the verification code: {e}")
        return _json_response(self._receipt(found))

    # -- simulator control -------------------------------------------------------------------------------------

    async def _sim_list(self, request: web.Request) -> web.Response:
        now = self._now()
        for submission in self._submissions.values():
            submission.catch_up(now)
        return _json_response({"submissions": [s.sim_view() for s in self._submissions.values()]})

    async def _sim_decide(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        decision, reasons = body.get("decision"), body.get("reasons", [])
        if decision not in (SubmissionStatus.APPROVED, SubmissionStatus.REJECTED):
            return _error(422, "invalid_decision", "'decision' must be 'approved' or 'rejected'")
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            return _error(422, "invalid_reasons", "'reasons' must be a list of strings")
        if found.status is not SubmissionStatus.UNDER_REVIEW:
            return _error(409, "not_under_review", f"submission is {found.status.value}, not under_review")
        # A catalogue code stands for its full text; anything else is taken verbatim.
        texts = [_REASONS_BY_CODE[r].text if r in _REASONS_BY_CODE else r for r in reasons]
        if decision == SubmissionStatus.REJECTED and not texts:
            texts = self._draw_reasons()  # the administration always says why
        found.decide(SubmissionStatus(decision), texts, self._now())
        return _json_response(found.sim_view())

    async def _sim_expire(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        if found.status is not SubmissionStatus.AWAITING_SMS:
            return _error(409, "not_awaiting_sms", f"submission is {found.status.value}, not awaiting_sms")
        found.sms_expires_at = self._now()
        found.catch_up(found.sms_expires_at)
        return _json_response(found.sim_view())
