"""Fault injection end to end, through the workflow: SMTP, the SMS API and the regulator failing the way real ones
do (the simulators speak each protocol's failure), while an order is under way.

Each test proves: the order waits (it does not fail or pause), the wait is in ``state.dependency_waits`` (which
party, which activity, since when, the last error), support hears of a long outage (not of the mail relay: support
is reached through it), the order moves on once the party is back, and every notice arrives exactly once. A
permanent refusal (SMTP 554, Twilio 21211) is recorded in ``notification_failures`` and the other channel carries
the notice. The RDAP outage and the unreachable mobile (21614) are covered in tests/workflows/test_dependencies.py;
the database in test_faults_database.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from models.messages import SmsEventKind, SmsVerificationEvent
from models.order import ChangeField, PlaceOrder
from models.stages import Stage, Status
from tests.conftest import REGULATOR_KEY, Stack
from tests.reliability.faults_stack import FaultStack, fault_stack
from tests.workflows.driver import new_order

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COLLECTING = "document collection"


@pytest.fixture(scope="module")
async def faults(temporal_env: WorkflowEnvironment, stack: Stack) -> AsyncIterator[FaultStack]:
    async with fault_stack(temporal_env, stack) as isolated:
        yield isolated


@pytest.fixture(autouse=True)
def no_fault_left(faults: FaultStack) -> None:
    faults.clear_faults()


def an_order() -> tuple[str, str, str, PlaceOrder]:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    contact = order.contact_person()
    return order.order_id, contact.email, contact.mobile, order


# ---------------------------------------------------------------- SMTP


@pytest.mark.parametrize(
    ("fault", "value", "shown"),
    [
        ("greeting_reply", "421 4.3.2 Service not available", "421"),
        ("rcpt_reply", "451 4.3.0 Mailbox busy", "deferred the recipient: 451"),
        ("data_reply", "451 4.3.0 Try again later", "deferred the message: 451"),
        ("hang", True, "Timed out"),
        ("stopped", None, "Connect"),
    ],
)
async def test_smtp_refusing_for_now_or_silent_is_waited_out_visibly_and_each_notice_goes_once(
    faults: FaultStack, fault: str, value: object, shown: str
) -> None:
    order_id, email, mobile, order = an_order()
    port = faults.smtp.port
    if fault == "stopped":
        await faults.smtp.stop()
    else:
        setattr(faults.smtp, fault, value)
    try:
        await faults.driver.place(order)
        state, wait = await faults.wait_shown(order_id, "send_notification")
        assert wait.dependency == "notifications"
        assert shown in wait.last_error, wait.last_error
        assert (state.stage, state.status) == (Stage.DOCUMENT_COLLECTION, Status.ACTIVE)
        assert faults.mail(email, COLLECTING) == []
        assert len(faults.texts(mobile)) == 1  # the SMS did not wait for the mail relay
    finally:
        faults.clear_faults()
        if fault == "stopped":
            await faults.smtp.start(port=port)
    await faults.recovered(order_id, lambda s: not s.dependency_waits, "the wait cleared")
    assert len(faults.mail(email, COLLECTING)) == 1
    assert len(faults.texts(mobile)) == 1
    await faults.driver.upload_missing(order_id)
    await faults.driver.until_stage(order_id, Stage.CONFIRMATION)
    await faults.delivered_once(order_id, email, "confirmation")


async def test_smtp_554_is_recorded_and_the_sms_carries_the_notice(faults: FaultStack) -> None:
    order_id, email, mobile, order = an_order()
    faults.smtp.data_reply = "554 5.7.1 Message rejected as spam"
    try:
        await faults.driver.place(order)
        state = await faults.driver.until(order_id, lambda s: bool(s.notification_failures), "a recorded failure")
    finally:
        faults.clear_faults()
    [failure] = state.notification_failures
    assert failure.channel == "email" and "554" in failure.reason
    assert state.dependency_waits == [] and state.status is Status.ACTIVE
    assert len(faults.texts(mobile)) == 1 and faults.mail(email, COLLECTING) == []
    await faults.driver.upload_missing(order_id)
    await faults.driver.until_stage(order_id, Stage.CONFIRMATION)
    await faults.delivered_once(order_id, email, "confirmation")  # the relay is back: the next notice is emailed


# ---------------------------------------------------------------- the SMS API


async def test_sms_429_retry_after_is_honoured_and_the_text_goes_once_after(faults: FaultStack) -> None:
    order_id, email, mobile, order = an_order()
    faults.sms.fail_next(10_000, 429, retry_after=47)
    try:
        await faults.driver.place(order)
        handle = await faults.orders.handle(order_id)
        await faults.driver.until(order_id, lambda s: s.stage is Stage.DOCUMENT_COLLECTION)
        interval = None
        for _ in range(200):
            pending = [
                a
                for a in (await handle.describe()).raw_description.pending_activities
                if a.activity_type.name == "send_notification" and a.attempt > 1
            ]
            if pending:
                interval = pending[0].current_retry_interval.ToTimedelta()
                assert "429" in pending[0].last_failure.message
                break
            await asyncio.sleep(0.05)
        assert interval is not None and round(interval.total_seconds()) == 47, (
            f"the retry must wait as long as Twilio's Retry-After says, not {interval}"
        )
        _, wait = await faults.wait_shown(order_id, "send_notification")
        assert "429" in wait.last_error and "retry after 47" in wait.last_error
        assert len(faults.mail(email, COLLECTING)) == 1 and faults.texts(mobile) == []
    finally:
        faults.clear_faults()
    await _text_goes_once_after(faults, order_id, email, mobile)


async def _text_goes_once_after(faults: FaultStack, order_id: str, email: str, mobile: str) -> None:
    """The SMS API is back: the wait clears, the text goes once, the email (sent during the outage) is not resent."""
    await faults.recovered(order_id, lambda s: not s.dependency_waits, "the wait cleared")
    assert len(faults.texts(mobile)) == 1
    assert len(faults.mail(email, COLLECTING)) == 1


@pytest.mark.parametrize(("fault", "shown"), [("500", "HTTP 500"), ("hang", "Timeout")])
async def test_sms_500_or_silence_is_waited_out_visibly(faults: FaultStack, fault: str, shown: str) -> None:
    order_id, email, mobile, order = an_order()
    if fault == "hang":
        faults.sms.hang_next(10_000)
    else:
        faults.sms.fail_next(10_000, 500)
    try:
        await faults.driver.place(order)
        state, wait = await faults.wait_shown(order_id, "send_notification")
        assert wait.dependency == "notifications" and shown in wait.last_error, wait.last_error
        assert state.status is Status.ACTIVE and state.notification_failures == []
        assert len(faults.mail(email, COLLECTING)) == 1 and faults.texts(mobile) == []
    finally:
        faults.clear_faults()
    await _text_goes_once_after(faults, order_id, email, mobile)
    await faults.driver.upload_missing(order_id)
    await faults.driver.until_stage(order_id, Stage.CONFIRMATION)


async def test_sms_invalid_number_21211_is_recorded_and_the_order_goes_on_by_email(faults: FaultStack) -> None:
    order_id, email, mobile, order = an_order()
    faults.sms.invalid.add(mobile)
    try:
        await faults.driver.place(order)
        state = await faults.driver.until(order_id, lambda s: bool(s.notification_failures), "a recorded failure")
        await faults.driver.upload_missing(order_id)
        await faults.driver.until_stage(order_id, Stage.CONFIRMATION)
        await faults.delivered_once(order_id, email, "confirmation")
        confirming = await faults.driver.state(order_id)
    finally:
        faults.clear_faults()
    failure = state.notification_failures[0]
    assert failure.channel == "sms" and "21211" in failure.reason
    assert state.dependency_waits == [] and faults.texts(mobile) == []
    assert len(faults.mail(email, COLLECTING)) == 1
    assert [f.channel for f in confirming.notification_failures] == ["sms", "sms"]  # each notice's, once
    assert confirming.dependency_waits == []


# ---------------------------------------------------------------- the regulator


async def _to_submission(faults: FaultStack, order_id: str) -> None:
    await faults.driver.through_collection(order_id)
    await faults.driver.review(order_id)  # returns once the order has entered submission


def _regulator_fails(faults: FaultStack, fault: str, method: str) -> None:
    """The administration answers every ``method`` request with ``fault``: silence, cut-short JSON or HTTP 503."""
    if fault == "hang":
        faults.regulator.hang_next(10_000, method=method)
    elif fault == "malformed":
        faults.regulator.malformed_next(10_000, method=method)
    else:
        faults.regulator.fail_next(10_000, 503, method=method)


@pytest.mark.parametrize(
    ("fault", "shown"), [("503", "HTTP 503"), ("hang", "did not answer"), ("malformed", "malformed")]
)
async def test_regulator_failing_the_submission_is_waited_out_support_is_alerted_and_one_code_is_texted(
    faults: FaultStack, fault: str, shown: str
) -> None:
    order_id, _, mobile, order = an_order()
    await faults.driver.place(order)
    _regulator_fails(faults, fault, "POST")
    try:
        await _to_submission(faults, order_id)
        state, wait = await faults.wait_shown(order_id, "submit_to_administration")
        assert wait.dependency == "regulator" and shown in wait.last_error, wait.last_error
        assert (state.stage, state.status) == (Stage.SUBMISSION, Status.ACTIVE)
        alerted = await faults.driver.until_dependency_alerted(order_id, "submit_to_administration")
        assert alerted.since == wait.since
        assert len(faults.support_alerts("dependency-down-regulator", order_id)) == 1
        assert faults.regulator.fault_hits > 1
    finally:
        faults.clear_faults()
    verifying = await faults.recovered(order_id, lambda s: s.stage is Stage.SMS_VERIFICATION, "SMS verification")
    assert verifying.dependency_waits == []
    # However many attempts the outage took, the administration holds one submission and texted one code.
    assert len(faults.texts(mobile, "12381")) == 1
    await faults.driver.enter_code(order_id)
    await faults.driver.until_stage(order_id, Stage.ADMINISTRATION_REVIEW)
    assert len(faults.support_alerts("dependency-down-regulator", order_id)) == 1


@pytest.mark.parametrize(("fault", "shown"), [("malformed", "malformed"), ("503", "HTTP 503")])
async def test_a_garbled_or_failing_review_poll_never_becomes_a_verdict(
    faults: FaultStack, fault: str, shown: str
) -> None:
    order_id, email, _, order = an_order()
    await faults.driver.place(order)
    await faults.driver.to_administration_review(order_id)
    if fault == "malformed":
        faults.regulator.malformed_next(10_000, method="GET")
    else:
        faults.regulator.fail_next(10_000, 503, method="GET")
    try:
        await faults.driver.decide(order_id, approved=True)
        # The administration has approved, but every poll is garbled or refused: the poll reports an outage once its
        # patience is spent, never a verdict.
        state, wait = await faults.wait_shown(order_id, "poll_review")
        assert shown in wait.last_error, wait.last_error
        assert state.stage is Stage.ADMINISTRATION_REVIEW and state.current_submission is not None
        assert state.current_submission.outcome == "verified"  # the SMS check's, not a verdict
        assert faults.mail(email, "completed") == []
    finally:
        faults.clear_faults()
    done = await faults.recovered(order_id, lambda s: s.stage is Stage.COMPLETED, "completed")
    assert done.status is Status.APPROVED
    await faults.delivered_once(order_id, email, "completed")


@pytest.mark.parametrize(
    ("fault", "shown"), [("503", "HTTP 503"), ("hang", "did not answer"), ("malformed", "malformed")]
)
async def test_regulator_outage_in_the_review_poll_is_shown_alerted_once_cleared_on_recovery_then_approved(
    faults: FaultStack, fault: str, shown: str
) -> None:
    """The administration goes down while it reviews the order: the poll tells the outage from "still pending", so
    the wait shows in the state (regulator, poll_review, since when, the fault), support hears of it once, and once
    the administration answers again the wait clears while the review goes on, then the approval completes it."""
    order_id, email, _, order = an_order()
    await faults.driver.place(order)
    await faults.driver.to_administration_review(order_id)
    _regulator_fails(faults, fault, "GET")
    try:
        state, wait = await faults.wait_shown(order_id, "poll_review")
        assert wait.dependency == "regulator" and shown in wait.last_error, wait.last_error
        assert "Application error" not in wait.last_error and not wait.alerted
        assert (state.stage, state.status) == (Stage.ADMINISTRATION_REVIEW, Status.ACTIVE)
        alerted = await faults.driver.until_dependency_alerted(order_id, "poll_review")
        assert alerted.since == wait.since and shown in alerted.last_error
        assert len(faults.support_alerts("dependency-down-regulator", order_id)) == 1
        await faults.driver.skip(order_id, order.timing.dependency_alert_after * 3)  # the outage goes on
        later = await faults.driver.state(order_id)
        [still] = [w for w in later.dependency_waits if w.activity == "poll_review"]
        assert still.since == wait.since and still.alerted
        assert len(faults.support_alerts("dependency-down-regulator", order_id)) == 1
        assert later.current_submission is not None and later.current_submission.outcome == "verified"
    finally:
        faults.clear_faults()
    back = await faults.recovered(order_id, lambda s: not s.dependency_waits, "the wait cleared")
    assert (back.stage, back.status) == (Stage.ADMINISTRATION_REVIEW, Status.ACTIVE)  # answered: still reviewing
    await faults.driver.decide(order_id, approved=True)
    await faults.driver.skip(order_id, order.timing.review_poll_interval)
    done = await faults.driver.until_stage(order_id, Stage.COMPLETED)
    assert done.status is Status.APPROVED and done.dependency_waits == []
    await faults.delivered_once(order_id, email, "completed")
    assert len(faults.support_alerts("dependency-down-regulator", order_id)) == 1


async def test_duplicate_administration_reports_of_the_sms_verification_apply_once(faults: FaultStack) -> None:
    """The administration calls nothing back: its reports reach the order through the provider's API. The same
    report delivered twice (at once, and again later) moves the order once."""
    order_id, email, _, order = an_order()
    await faults.driver.place(order)
    await _to_submission(faults, order_id)
    code = await faults.driver.current_code(order_id)
    submission = (await faults.driver.state(order_id)).current_submission
    assert submission is not None
    async with httpx.AsyncClient(
        base_url=faults.regulator.url, headers={"Authorization": f"Bearer {REGULATOR_KEY}"}
    ) as miit:  # the applicant enters the code on MIIT's own site
        answer = await miit.post(f"/v1/submissions/{submission.submission_id}/sms-verification", json={"code": code})
        assert answer.json()["outcome"] == "verified"
    report = SmsVerificationEvent(event=SmsEventKind.VERIFIED, actor="administration")
    results = await asyncio.gather(
        faults.orders.sms_verification(order_id, report),
        faults.orders.sms_verification(order_id, report),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert accepted, results
    assert all("verified" in r.message for r in accepted)
    assert all("verified" in str(r) or "no SMS verification is open" in str(r) for r in refused), refused
    reviewing = await faults.driver.until_stage(order_id, Stage.ADMINISTRATION_REVIEW)
    with pytest.raises(Exception, match=r"no SMS verification is open|already verified"):
        await faults.orders.sms_verification(order_id, report)  # a late repeat
    state = await faults.driver.state(order_id)
    assert [t.stage for t in state.timeline].count(Stage.ADMINISTRATION_REVIEW) == 1
    assert len(state.submissions) == 1 and state.current_submission is not None
    assert state.current_submission.outcome == "verified" and state.current_submission.wrong_codes == 0
    assert state.timeline == reviewing.timeline
    await faults.delivered_once(order_id, email, "administration review")
