"""The regulator gateway activities against the real regulator simulator: what the workflow can rely on."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.regulator import REGULATOR_OUTAGE, RegulatorActivities
from models.activity_io import (
    ReviewDecision,
    ReviewPoll,
    ReviewPollResult,
    ReviewVerdict,
    SmsCode,
    SmsCodeOutcome,
    SubmissionRef,
    SubmitToAdministration,
)
from models.order import OrderKind, Province
from simulators.regulator import RegulatorSimulator, code_from_sms
from simulators.sms_sink import SmsSink
from starter.codec import data_converter
from tests.conftest import CODEC_SETTINGS

SID = "AC" + "4" * 32
TOKEN = "sink-token"
API_KEY = "gateway-test-key"
MOBILE = "+8613800138000"

SUBMISSION = SubmitToAdministration(
    order_id="order-7",
    idempotency_key="order-7:submission:1",
    kind=OrderKind.WEBSITE,
    province=Province.BEIJING,
    filing_number="京ICP备12345678号-1",
    mobiles=[MOBILE, "13800138000"],
)


@dataclass
class Gateway:
    activities: RegulatorActivities
    env: ActivityEnvironment
    sim: RegulatorSimulator
    sms: SmsSink

    def latest_code(self) -> str:
        return code_from_sms(self.sms.messages_to(MOBILE)[-1].body)

    async def sim_post(self, path: str, json: object = None) -> None:
        async with httpx.AsyncClient(base_url=self.sim.url) as http:
            (await http.post(path, json=json)).raise_for_status()

    async def submitted_and_verified(self) -> str:
        receipt = await self.env.run(self.activities.submit_to_administration, SUBMISSION)
        code = SmsCode(submission_id=receipt.submission_id, code=self.latest_code())
        result = await self.env.run(self.activities.verify_sms_code, code)
        assert result.outcome is SmsCodeOutcome.VERIFIED
        return receipt.submission_id


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    sms = SmsSink(SID, TOKEN)
    await sms.start("127.0.0.1", 0)
    sim = RegulatorSimulator.with_twilio(API_KEY, SID, TOKEN, sms.url, mode="manual")
    await sim.start("127.0.0.1", 0)
    activities = RegulatorActivities(sim.url, API_KEY, timeout=5.0)
    yield Gateway(activities, ActivityEnvironment(), sim, sms)
    await activities.aclose()
    await sim.stop()
    await sms.stop()


async def test_submit_returns_a_receipt_and_one_sms_per_distinct_mobile(gateway: Gateway) -> None:
    receipt = await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)

    assert receipt.submission_id
    assert receipt.sms_sent_to == 1  # both mobiles are the same phone
    assert receipt.received_at.tzinfo is not None
    assert len(gateway.sms.messages) == 1


async def test_a_retried_submit_returns_the_same_submission_and_texts_nobody_again(gateway: Gateway) -> None:
    first = await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)
    retried = await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)

    assert retried == first
    assert len(gateway.sms.messages) == 1


async def test_an_idempotency_key_reused_for_another_submission_is_non_retryable(gateway: Gateway) -> None:
    await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)
    other = SUBMISSION.model_copy(update={"mobiles": ["13900139000"]})

    with pytest.raises(ApplicationError) as raised:
        await gateway.env.run(gateway.activities.submit_to_administration, other)

    assert (raised.value.type, raised.value.non_retryable) == ("IdempotencyConflict", True)


async def test_code_from_the_sms_sink_verifies_then_poll_is_pending_until_the_verdict(gateway: Gateway) -> None:
    submission_id = await gateway.submitted_and_verified()
    ref = ReviewPoll(submission_id=submission_id)

    with pytest.raises(ApplicationError) as pending:
        await gateway.env.run(gateway.activities.poll_review, ref)
    assert (pending.value.type, pending.value.non_retryable) == ("ReviewPending", False)

    await gateway.sim_post(f"/sim/submissions/{submission_id}/decide", {"decision": "approved"})
    verdict = await gateway.env.run(gateway.activities.poll_review, ref)

    assert isinstance(verdict, ReviewVerdict)  # a first poll's answer, as before outages were reported
    assert (verdict.decision, verdict.reasons) == (ReviewDecision.APPROVED, [])
    assert verdict.decided_at is not None


async def test_a_rejection_verdict_carries_the_administrations_reasons(gateway: Gateway) -> None:
    submission_id = await gateway.submitted_and_verified()
    await gateway.sim_post(
        f"/sim/submissions/{submission_id}/decide", {"decision": "rejected", "reasons": ["domain_expired"]}
    )

    verdict = await gateway.env.run(gateway.activities.poll_review, ReviewPoll(submission_id=submission_id))

    assert isinstance(verdict, ReviewVerdict)
    assert (verdict.decision, verdict.reasons) == (ReviewDecision.REJECTED, ["域名已过期 / Domain expired"])


async def test_a_wrong_code_is_a_result_with_the_attempts_left(gateway: Gateway) -> None:
    receipt = await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)
    wrong = "000000" if gateway.latest_code() != "000000" else "111111"

    result = await gateway.env.run(
        gateway.activities.verify_sms_code, SmsCode(submission_id=receipt.submission_id, code=wrong)
    )

    assert (result.outcome, result.attempts_left) == (SmsCodeOutcome.WRONG_CODE, 4)


async def test_resend_texts_a_new_code(gateway: Gateway) -> None:
    receipt = await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)
    old_code = gateway.latest_code()

    await gateway.env.run(gateway.activities.resend_sms, SubmissionRef(submission_id=receipt.submission_id))

    assert len(gateway.sms.messages) == 2
    assert gateway.latest_code() != old_code


async def test_resend_after_verification_is_non_retryable(gateway: Gateway) -> None:
    submission_id = await gateway.submitted_and_verified()

    with pytest.raises(ApplicationError) as raised:
        await gateway.env.run(gateway.activities.resend_sms, SubmissionRef(submission_id=submission_id))

    assert (raised.value.type, raised.value.non_retryable) == ("NotAwaitingSms", True)


async def test_polling_an_expired_submission_is_non_retryable_not_under_review(gateway: Gateway) -> None:
    receipt = await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)
    await gateway.sim_post(f"/sim/submissions/{receipt.submission_id}/expire")

    with pytest.raises(ApplicationError) as raised:
        await gateway.env.run(gateway.activities.poll_review, ReviewPoll(submission_id=receipt.submission_id))

    assert (raised.value.type, raised.value.non_retryable) == ("NotUnderReview", True)
    assert "expired" in raised.value.message


async def test_a_wrong_api_key_is_non_retryable_and_says_what_to_fix(gateway: Gateway) -> None:
    wrong_key = RegulatorActivities(gateway.sim.url, "not-the-key", timeout=5.0)
    try:
        with pytest.raises(ApplicationError) as raised:
            await gateway.env.run(wrong_key.submit_to_administration, SUBMISSION)
    finally:
        await wrong_key.aclose()

    assert (raised.value.type, raised.value.non_retryable) == ("RegulatorUnauthorized", True)
    assert "ICPFLOW_REGULATOR_API_KEY" in raised.value.message
    assert gateway.sms.messages == []


async def test_an_unknown_submission_is_non_retryable(gateway: Gateway) -> None:
    with pytest.raises(ApplicationError) as raised:
        await gateway.env.run(gateway.activities.poll_review, ReviewPoll(submission_id="sub_missing"))

    assert (raised.value.type, raised.value.non_retryable) == ("UnknownSubmission", True)


async def test_an_unreachable_administration_is_retryable(gateway: Gateway) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    unreachable = RegulatorActivities(f"http://127.0.0.1:{dead_port}", API_KEY, timeout=5.0)
    try:
        with pytest.raises(ApplicationError) as raised:
            await gateway.env.run(unreachable.submit_to_administration, SUBMISSION)
    finally:
        await unreachable.aclose()

    assert (raised.value.type, raised.value.non_retryable) == ("RegulatorUnavailable", False)


async def test_the_worker_gets_every_gateway_activity(gateway: Gateway) -> None:
    names = [fn.__name__ for fn in gateway.activities.activities()]

    assert names == ["submit_to_administration", "verify_sms_code", "resend_sms", "poll_review"]


# -- the administration failing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_5xx_and_429_are_retryable_and_say_what_failed(gateway: Gateway, status: int) -> None:
    gateway.sim.fail_next(1, status)
    with pytest.raises(ApplicationError) as raised:
        await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)
    assert (raised.value.type, raised.value.non_retryable) == ("RegulatorUnavailable", False)
    assert f"HTTP {status}" in str(raised.value)
    assert gateway.sms.messages == []  # nothing was created, nobody texted


async def test_a_hanging_administration_times_out_retryably(gateway: Gateway) -> None:
    impatient = RegulatorActivities(gateway.sim.url, API_KEY, timeout=0.3)
    gateway.sim.hang_next(1)
    try:
        with pytest.raises(ApplicationError) as raised:
            await gateway.env.run(impatient.submit_to_administration, SUBMISSION)
    finally:
        gateway.sim.clear_faults()
        await impatient.aclose()
    assert (raised.value.type, raised.value.non_retryable) == ("RegulatorUnavailable", False)
    assert "Timeout" in str(raised.value)


async def test_a_truncated_receipt_is_a_retryable_malformed_answer_and_the_retry_texts_nobody_again(
    gateway: Gateway,
) -> None:
    gateway.sim.malformed_next(1)
    with pytest.raises(ApplicationError) as raised:
        await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)
    assert (raised.value.type, raised.value.non_retryable) == ("RegulatorMalformedResponse", False)
    assert "submit" in str(raised.value) and "not JSON" in str(raised.value)
    receipt = await gateway.env.run(gateway.activities.submit_to_administration, SUBMISSION)
    assert receipt.submission_id.startswith("sub_")
    assert len(gateway.sms.messages_to(MOBILE)) == 1


async def test_a_truncated_poll_answer_is_never_taken_for_a_verdict(gateway: Gateway) -> None:
    submission_id = await gateway.submitted_and_verified()
    await gateway.sim_post(f"/sim/submissions/{submission_id}/decide", {"decision": "approved"})
    gateway.sim.malformed_next(1, method="GET")
    ref = ReviewPoll(submission_id=submission_id)
    with pytest.raises(ApplicationError) as raised:
        await gateway.env.run(gateway.activities.poll_review, ref)
    assert (raised.value.type, raised.value.non_retryable) == ("RegulatorMalformedResponse", False)
    verdict = await gateway.env.run(gateway.activities.poll_review, ref)
    assert isinstance(verdict, ReviewVerdict) and verdict.decision is ReviewDecision.APPROVED


class _Canned:
    """A regulator answering every request with one fixed 200 JSON body (a shape it should never send)."""

    def __init__(self, body: object) -> None:
        self.body = body

    def handler(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=self.body)


@pytest.mark.parametrize(
    ("activity", "body", "problem"),
    [
        ("submit_to_administration", {"status": "awaiting_sms"}, "submission_id"),
        ("submit_to_administration", {"submission_id": "sub_1", "received_at": "yesterday"}, "received_at"),
        ("verify_sms_code", {"outcome": "maybe"}, "outcome"),
        ("poll_review", {"status": "rejected", "reasons": "证件不清晰"}, "reasons"),
        ("poll_review", {"status": "approved", "decided_at": "soon"}, "decided_at"),
        ("poll_review", ["approved"], "not an object"),
    ],
)
async def test_an_answer_of_the_wrong_shape_is_retryable_and_names_the_field(
    activity: str, body: object, problem: str
) -> None:
    gateway = RegulatorActivities("http://regulator.test", API_KEY)
    gateway._http = httpx.AsyncClient(
        base_url="http://regulator.test", transport=httpx.MockTransport(_Canned(body).handler)
    )
    arg = {
        "submit_to_administration": SUBMISSION,
        "verify_sms_code": SmsCode(submission_id="sub_1", code="123456"),
        "poll_review": ReviewPoll(submission_id="sub_1"),
    }[activity]
    try:
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(getattr(gateway, activity), arg)
    finally:
        await gateway.aclose()
    assert (raised.value.type, raised.value.non_retryable) == ("RegulatorMalformedResponse", False)
    assert problem in str(raised.value)


# -- the review poll: an outage is not "pending" -------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PATIENCE = timedelta(minutes=2)


def attempt_at(now: datetime, heartbeat: dict[str, Any] | None = None) -> tuple[ActivityEnvironment, list[Any]]:
    """An activity environment for one poll attempt scheduled at ``now`` (the server's clock), carrying the heartbeat
    details an earlier attempt left; the list collects the heartbeats this attempt sends."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, current_attempt_scheduled_time=now, heartbeat_details=[] if heartbeat is None else [heartbeat]
    )
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.append(details[0] if details else None)
    return env, beats


async def _reviewing(gateway: Gateway) -> str:
    return await gateway.submitted_and_verified()


@pytest.mark.parametrize(
    ("fault", "shown"), [("503", "HTTP 503"), ("malformed", "malformed"), ("hang", "did not answer")]
)
async def test_poll_outage_attempt_records_when_it_began_and_retries_after_a_short_backoff_not_the_poll_interval(
    gateway: Gateway, fault: str, shown: str
) -> None:
    submission_id = await _reviewing(gateway)
    impatient = RegulatorActivities(gateway.sim.url, API_KEY, timeout=0.3)
    {
        "503": lambda: gateway.sim.fail_next(1, 503, method="GET"),
        "malformed": lambda: gateway.sim.malformed_next(1, method="GET"),
        "hang": lambda: gateway.sim.hang_next(1, method="GET"),
    }[fault]()
    env, beats = attempt_at(T0)
    try:
        with pytest.raises(ApplicationError) as raised:
            await env.run(impatient.poll_review, ReviewPoll(submission_id=submission_id, patience=PATIENCE))
    finally:
        gateway.sim.clear_faults()
        await impatient.aclose()
    assert raised.value.non_retryable is False and raised.value.type != "ReviewPending"
    assert shown in str(raised.value)
    assert raised.value.next_retry_delay == timedelta(seconds=1)
    assert beats == [{"outage_since": T0.isoformat()}]


async def test_poll_outage_lasting_backs_off_as_long_as_it_has_lasted_and_wakes_in_time_for_patience(
    gateway: Gateway,
) -> None:
    submission_id = await _reviewing(gateway)
    request = ReviewPoll(submission_id=submission_id, patience=PATIENCE)
    delays = []
    for lasted in (timedelta(seconds=3), timedelta(seconds=40), timedelta(seconds=100)):
        gateway.sim.fail_next(1, 503, method="GET")
        env, beats = attempt_at(T0 + lasted, {"outage_since": T0.isoformat()})
        with pytest.raises(ApplicationError) as raised:
            await env.run(gateway.activities.poll_review, request)
        assert raised.value.non_retryable is False
        assert beats == [{"outage_since": T0.isoformat()}]  # the start is kept, not moved
        delays.append(raised.value.next_retry_delay)
    assert delays == [timedelta(seconds=3), timedelta(seconds=40), timedelta(seconds=20)]


async def test_poll_outage_past_patience_gives_up_non_retryable_with_since_and_the_last_error(
    gateway: Gateway,
) -> None:
    submission_id = await _reviewing(gateway)
    gateway.sim.fail_next(1, 503, method="GET")
    env, _ = attempt_at(T0 + PATIENCE, {"outage_since": T0.isoformat()})
    with pytest.raises(ApplicationError) as raised:
        await env.run(gateway.activities.poll_review, ReviewPoll(submission_id=submission_id, patience=PATIENCE))
    assert (raised.value.type, raised.value.non_retryable) == (REGULATOR_OUTAGE, True)
    [details] = raised.value.details
    assert details["since"] == T0.isoformat()
    assert "could not poll the review" in details["last_error"] and "HTTP 503" in details["last_error"]
    assert "HTTP 503" in str(raised.value)


async def test_poll_again_after_a_reported_outage_counts_from_the_reported_start(gateway: Gateway) -> None:
    submission_id = await _reviewing(gateway)
    request = ReviewPoll(submission_id=submission_id, patience=timedelta(minutes=30), outage_since=T0)
    gateway.sim.fail_next(1, 503, method="GET")
    env, beats = attempt_at(T0 + timedelta(minutes=5))  # the new poll's first attempt: no heartbeat yet
    with pytest.raises(ApplicationError) as raised:
        await env.run(gateway.activities.poll_review, request)
    assert raised.value.non_retryable is False
    assert raised.value.next_retry_delay == timedelta(minutes=5)
    assert beats == [{"outage_since": T0.isoformat()}]
    gateway.sim.fail_next(1, 503, method="GET")
    env, _ = attempt_at(T0 + timedelta(minutes=30), {"outage_since": T0.isoformat()})
    with pytest.raises(ApplicationError) as raised:
        await env.run(gateway.activities.poll_review, request)
    assert (raised.value.type, raised.value.non_retryable) == (REGULATOR_OUTAGE, True)


async def test_poll_pending_after_an_outage_forgets_it_so_a_later_outage_starts_afresh(gateway: Gateway) -> None:
    submission_id = await _reviewing(gateway)
    request = ReviewPoll(submission_id=submission_id, patience=PATIENCE)
    env, beats = attempt_at(T0 + timedelta(minutes=1), {"outage_since": T0.isoformat()})
    with pytest.raises(ApplicationError) as pending:
        await env.run(gateway.activities.poll_review, request)
    assert (pending.value.type, pending.value.non_retryable) == ("ReviewPending", False)
    assert pending.value.next_retry_delay is None  # back to the flat poll interval
    assert beats == [{"outage_since": None}]
    later = T0 + timedelta(hours=5)
    gateway.sim.fail_next(1, 503, method="GET")
    env, beats = attempt_at(later, {"outage_since": None})
    with pytest.raises(ApplicationError) as raised:
        await env.run(gateway.activities.poll_review, request)
    assert raised.value.non_retryable is False and raised.value.next_retry_delay == timedelta(seconds=1)
    assert beats == [{"outage_since": later.isoformat()}]


async def test_poll_pending_with_no_outage_is_the_plain_cheap_retry_without_a_heartbeat(gateway: Gateway) -> None:
    submission_id = await _reviewing(gateway)
    env, beats = attempt_at(T0)
    with pytest.raises(ApplicationError) as pending:
        await env.run(gateway.activities.poll_review, ReviewPoll(submission_id=submission_id, patience=PATIENCE))
    assert (pending.value.type, pending.value.next_retry_delay) == ("ReviewPending", None)
    assert beats == []


async def test_poll_again_after_an_outage_returns_pending_or_the_verdict_as_a_result(gateway: Gateway) -> None:
    submission_id = await _reviewing(gateway)
    request = ReviewPoll(submission_id=submission_id, patience=PATIENCE, outage_since=T0)
    env, _ = attempt_at(T0 + timedelta(minutes=10))
    assert await env.run(gateway.activities.poll_review, request) == ReviewPollResult(verdict=None)
    await gateway.sim_post(f"/sim/submissions/{submission_id}/decide", {"decision": "approved"})
    answer = await env.run(gateway.activities.poll_review, request)
    assert isinstance(answer, ReviewPollResult) and answer.verdict is not None
    assert answer.verdict.decision is ReviewDecision.APPROVED


async def test_poll_refused_for_good_is_not_an_outage(gateway: Gateway) -> None:
    env, beats = attempt_at(T0, {"outage_since": (T0 - timedelta(hours=1)).isoformat()})
    with pytest.raises(ApplicationError) as raised:
        await env.run(gateway.activities.poll_review, ReviewPoll(submission_id="sub_missing", patience=PATIENCE))
    assert (raised.value.type, raised.value.non_retryable) == ("UnknownSubmission", True)
    assert beats == []


async def test_poll_input_from_before_outage_reports_decodes_and_retries_an_outage_silently(gateway: Gateway) -> None:
    converter = data_converter(CODEC_SETTINGS)
    old = await converter.encode([SubmissionRef(submission_id="sub_1")])  # as workflows before this wrote it
    [decoded] = await converter.decode(old, [ReviewPoll])
    assert decoded == ReviewPoll(submission_id="sub_1") and decoded.patience is None

    submission_id = await _reviewing(gateway)
    gateway.sim.fail_next(1, 503, method="GET")
    env, beats = attempt_at(T0 + timedelta(days=3), {"outage_since": T0.isoformat()})
    with pytest.raises(ApplicationError) as raised:
        await env.run(gateway.activities.poll_review, ReviewPoll(submission_id=submission_id))
    assert (raised.value.type, raised.value.non_retryable) == ("RegulatorUnavailable", False)
    assert raised.value.next_retry_delay is None and beats == []
