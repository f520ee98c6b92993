"""ModificationOrderWorkflow on a real Temporal server with time skipping, real activities and loopback simulators.

Each test is one path through DOMAIN.md's pipeline. The applicant, reviewer, administration and support are played
by tests/workflows/driver.py through the client facade; time moves only when a test fast-forwards an order.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle

from models.activity_io import Channel
from models.documents import DocumentStatus
from models.messages import ExtendCollection, Resubmit, SmsEventKind, SmsVerificationEvent, SupportAction
from models.order import ChangeField
from models.stages import Stage, Status, WaitingOn
from models.state import DeadlineKind
from starter.client import ActionRefused, OrderConflict
from tests.conftest import Stack
from tests.workflows.driver import Driver, new_order

pytestmark = pytest.mark.integration


@pytest.fixture
async def driver(temporal_env, orders, stack) -> Driver:  # type: ignore[no-untyped-def]
    return Driver(temporal_env, orders, stack)


def mails_to(stack: Stack, address: str) -> list[str]:
    return [m.subject for m in stack.smtp.messages_to(address)]


async def approve(driver: Driver, order_id: str) -> None:
    """The administration approves; the next poll (one poll interval later) sees it."""
    await driver.decide(order_id, approved=True)
    await driver.skip(order_id, driver.placed[order_id].timing.review_poll_interval * 2)
    await driver.until_stage(order_id, Stage.COMPLETED)


# ---------------------------------------------------------------------------------------------- the happy path


async def test_happy_path_website_person_change_runs_every_stage_to_approval(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    placed = await driver.place(order)
    assert placed.order_id == order.order_id
    collecting = await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    assert {d.kind.value for d in collecting.documents} >= {"id_card_front", "id_card_back", "face_verification"}
    assert collecting.waiting_on is WaitingOn.APPLICANT
    assert any(p.code == "upload_document" for p in collecting.pending_actions)

    await driver.to_administration_review(order.order_id)
    review = await driver.state(order.order_id)
    due = review.deadline(DeadlineKind.REVIEW_DUE)
    assert due is not None and due.at > review.updated_at + timedelta(days=20)
    await approve(driver, order.order_id)

    final = await driver.state(order.order_id)
    assert final.status is Status.APPROVED
    stages = [t.stage for t in final.timeline]
    for stage in (
        Stage.VALIDATION,
        Stage.DOCUMENT_COLLECTION,
        Stage.AUTHENTICITY_VERIFICATION,
        Stage.CONFIRMATION,
        Stage.INITIAL_REVIEW,
        Stage.SUBMISSION,
        Stage.SMS_VERIFICATION,
        Stage.ADMINISTRATION_REVIEW,
        Stage.RECORD_UPDATE,
        Stage.COMPLETED,
    ):
        assert stage in stages, f"{stage} missing from the timeline"
    assert all(d.status is DocumentStatus.VERIFIED for d in final.documents)
    contact = order.contact_person()
    assert any("completed" in s for s in mails_to(stack, contact.email))


# ---------------------------------------------------------------------------------------------- validation


async def test_invalid_order_ends_with_every_reason_at_once(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.DOMAIN_ADD, ChangeField.PROVINCE, ChangeField.DOMAIN_CHANGE])
    await driver.place(order)
    final = await driver.until_stage(order.order_id, Stage.INVALID)
    assert final.status is Status.INVALID
    rules = {v.rule_id for v in final.violations}
    assert {"R-DOM-1", "R-PROV-1"} <= rules
    assert len(final.violations) >= 3
    await driver.until_idle(await driver.orders.handle(order.order_id))  # the notice follows the transition
    contact = order.contact_person()
    notice = [m for m in stack.smtp.messages_to(contact.email) if "invalid" in m.subject]
    assert notice and all(v.rule_id in notice[-1].body for v in final.violations)


# ---------------------------------------------------------------------------------------------- documents


async def test_greyscale_document_is_returned_with_its_reason_then_accepted(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    collecting = await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    first, *rest = [d.key for d in collecting.documents]
    await driver.upload(order.order_id, first, grey=True)
    for key in rest:
        await driver.upload(order.order_id, key)

    returned = await driver.until(
        order.order_id,
        lambda s: s.stage is Stage.DOCUMENT_COLLECTION and any(d.status is DocumentStatus.FAILED for d in s.documents),
        "document returned",
    )
    failed = returned.document(first)
    assert failed is not None and failed.status is DocumentStatus.FAILED
    assert "grey" in failed.failure_reason.lower() or "colour" in failed.failure_reason.lower()
    assert failed.failures == 1
    assert any(first in p.description for p in returned.pending_actions)

    await driver.upload(order.order_id, first)
    await driver.confirm(order.order_id)
    state = await driver.until_stage(order.order_id, Stage.INITIAL_REVIEW)
    assert state.document(first).status is DocumentStatus.VERIFIED  # type: ignore[union-attr]


async def test_upload_at_the_wrong_stage_is_refused_and_changes_nothing(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    before = await driver.state(order.order_id)
    with pytest.raises(ActionRefused, match="documents are accepted while collecting"):
        await driver.upload(order.order_id, before.documents[0].key)
    assert (await driver.state(order.order_id)).timeline == before.timeline


async def test_idle_collection_reminds_then_pauses_and_support_resumes(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    await driver.skip(order.order_id, order.timing.collection_idle_limit + timedelta(hours=1))
    paused = await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION, Status.PAUSED)
    assert paused.waiting_on is WaitingOn.SUPPORT
    assert paused.reminders_sent >= 6  # every 2 days over 14 days
    assert "idle" in paused.paused_reason
    assert any("order-idle" in s for s in mails_to(stack, stack.settings.support_email))

    with pytest.raises(ActionRefused, match="paused"):
        await driver.upload(order.order_id, paused.documents[0].key)

    await driver.resume(order.order_id)
    resumed = await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION, Status.ACTIVE)
    assert resumed.timeline[-1].actor.value == "support"
    assert "resumed" in resumed.timeline[-1].reason
    await driver.through_collection(order.order_id)


async def test_resume_is_refused_when_the_order_is_not_paused(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    with pytest.raises(ActionRefused, match="only a paused order can be resumed"):
        await driver.resume(order.order_id)


async def test_support_extension_moves_the_idle_deadline(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    before = await driver.until(
        order.order_id, lambda s: s.deadline(DeadlineKind.COLLECTION_IDLE) is not None, "collecting with a deadline"
    )
    idle = before.deadline(DeadlineKind.COLLECTION_IDLE)
    assert idle is not None
    await driver.orders.extend(order.order_id, ExtendCollection(actor="support-wang", reason="ID card lost", days=10))
    after = await driver.until(
        order.order_id,
        lambda s: (d := s.deadline(DeadlineKind.COLLECTION_IDLE)) is not None and d.at > idle.at,
        "idle deadline moved",
    )
    moved = after.deadline(DeadlineKind.COLLECTION_IDLE)
    assert moved is not None and moved.at - idle.at >= timedelta(days=10)
    assert any("extended by 10" in t.reason for t in after.timeline)


# ---------------------------------------------------------------------------------------------- initial review


async def test_initial_review_rejection_goes_back_to_the_applicant_and_resubmission_is_reviewed_again(
    driver: Driver,
) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    await driver.review(order.order_id, approved=False, reasons=["ID card photo is blurred"])
    correcting = await driver.until_stage(order.order_id, Stage.CORRECTION)
    assert correcting.review_reasons == ["ID card photo is blurred"]
    assert correcting.waiting_on is WaitingOn.APPLICANT

    await driver.upload(order.order_id, correcting.documents[0].key)
    await driver.orders.resubmit(order.order_id, Resubmit(note="new photo"))
    await driver.until_stage(order.order_id, Stage.INITIAL_REVIEW)
    await driver.review(order.order_id, approved=True)
    await driver.until_stage(order.order_id, Stage.SMS_VERIFICATION)


async def test_rejection_without_a_reason_is_refused(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    with pytest.raises(ActionRefused, match="at least one reason"):
        await driver.review(order.order_id, approved=False, reasons=[])


async def test_initial_review_slower_than_two_business_days_is_escalated(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    await driver.skip(order.order_id, timedelta(days=5))
    escalated = await driver.until(order.order_id, lambda s: s.escalated, "escalated")
    assert escalated.stage is Stage.INITIAL_REVIEW
    assert any("initial-review-escalated" in s for s in mails_to(stack, stack.settings.support_email))
    await driver.review(order.order_id, approved=True)
    await driver.until_stage(order.order_id, Stage.SMS_VERIFICATION)


# ---------------------------------------------------------------------------------------------- SMS verification


async def test_sms_window_expires_after_24h_and_order_is_resubmitted(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    await driver.review(order.order_id)
    first = await driver.until_stage(order.order_id, Stage.SMS_VERIFICATION)
    expiry = first.deadline(DeadlineKind.SMS_EXPIRY)
    assert expiry is not None and expiry.at - first.updated_at == timedelta(hours=24)

    await driver.skip(order.order_id, timedelta(hours=25))
    again = await driver.until(order.order_id, lambda s: len(s.submissions) == 2 and s.stage is Stage.SMS_VERIFICATION)
    assert again.submissions[0].outcome == "expired"
    assert again.auto_resubmissions == 1
    assert again.submissions[1].idempotency_key != again.submissions[0].idempotency_key
    await driver.enter_code(order.order_id)
    await driver.until_stage(order.order_id, Stage.ADMINISTRATION_REVIEW)


async def test_five_wrong_codes_return_the_order_and_it_is_resubmitted(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    await driver.review(order.order_id)
    await driver.until_stage(order.order_id, Stage.SMS_VERIFICATION)
    lefts = []
    for _ in range(4):
        result = await driver.enter_code(order.order_id, wrong=True)
        lefts.append(result.attempts_left)
    assert lefts == [4, 3, 2, 1]
    await driver.enter_code(order.order_id, wrong=True)
    state = await driver.until(order.order_id, lambda s: len(s.submissions) == 2)
    assert state.submissions[0].outcome == "returned"
    assert state.submissions[0].wrong_codes == 5


async def test_resend_sends_a_new_code_that_verifies(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    await driver.review(order.order_id)
    await driver.until_stage(order.order_id, Stage.SMS_VERIFICATION)
    result = await driver.orders.sms_verification(
        order.order_id, SmsVerificationEvent(event=SmsEventKind.RESEND_REQUESTED)
    )
    assert "new code" in result.message
    await driver.enter_code(order.order_id)
    await driver.until_stage(order.order_id, Stage.ADMINISTRATION_REVIEW)


async def test_resubmissions_exhausted_pause_for_support_who_resumes(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE], max_auto_resubmissions=1)
    await driver.place(order)
    await driver.through_collection(order.order_id)
    await driver.review(order.order_id)
    await driver.until_stage(order.order_id, Stage.SMS_VERIFICATION)
    await driver.skip(order.order_id, timedelta(hours=25))
    await driver.until(order.order_id, lambda s: len(s.submissions) == 2)
    await driver.skip(order.order_id, timedelta(hours=25))
    paused = await driver.until_stage(order.order_id, Stage.SMS_VERIFICATION, Status.PAUSED)
    assert "exhausted" in paused.paused_reason
    assert paused.waiting_on is WaitingOn.SUPPORT
    assert any("resubmissions-exhausted" in s for s in mails_to(stack, stack.settings.support_email))

    await driver.resume(order.order_id, reason="applicant is ready now")
    # The third submission is listed as soon as it starts and is submitted a moment later; until() fails the test
    # if support's resume never leads to it.
    resumed = await driver.until(
        order.order_id,
        lambda s: len(s.submissions) == 3 and s.submissions[2].submitted_at is not None and s.status is Status.ACTIVE,
    )
    assert resumed.stage is Stage.SMS_VERIFICATION
    await driver.enter_code(order.order_id)
    await driver.until_stage(order.order_id, Stage.ADMINISTRATION_REVIEW)


# ---------------------------------------------------------------------------------------------- administration review


async def test_review_approved_on_business_day_one(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.to_administration_review(order.order_id)
    await driver.skip(order.order_id, timedelta(days=1))
    await approve(driver, order.order_id)
    final = await driver.state(order.order_id)
    assert not final.overdue


async def test_review_approved_on_business_day_twenty_is_not_overdue(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    state = await driver.to_administration_review(order.order_id)
    due = state.deadline(DeadlineKind.REVIEW_DUE)
    assert due is not None
    poll = order.timing.review_poll_interval
    await driver.skip(order.order_id, due.at - state.updated_at - poll * 2)
    assert not (await driver.state(order.order_id)).overdue
    await driver.decide(order.order_id, approved=True)
    await driver.skip(order.order_id, poll + timedelta(hours=1))
    final = await driver.until_stage(order.order_id, Stage.COMPLETED)
    assert not final.overdue


async def test_review_past_the_twentieth_business_day_is_overdue_escalated_and_still_polled(
    driver: Driver, stack: Stack
) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    state = await driver.to_administration_review(order.order_id)
    due = state.deadline(DeadlineKind.REVIEW_DUE)
    assert due is not None
    await driver.skip(order.order_id, due.at - state.updated_at + timedelta(days=1))
    overdue = await driver.until(order.order_id, lambda s: s.overdue, "overdue")
    assert overdue.stage is Stage.ADMINISTRATION_REVIEW
    assert any("review-overdue" in s for s in mails_to(stack, stack.settings.support_email))
    handle: WorkflowHandle = await driver.orders.handle(order.order_id)  # type: ignore[type-arg]
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(__import__("models.search").search.OVERDUE) is True
    await approve(driver, order.order_id)
    assert (await driver.state(order.order_id)).overdue


async def test_administration_rejection_is_fixed_resubmitted_and_approved(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.to_administration_review(order.order_id)
    await driver.decide(order.order_id, approved=False, reasons=["website name not allowed"])
    await driver.skip(order.order_id, order.timing.review_poll_interval * 2)
    correcting = await driver.until_stage(order.order_id, Stage.CORRECTION)
    assert correcting.rejection_reasons == ["website name not allowed"]
    contact = order.contact_person()
    assert any(
        "website name not allowed" in m.body for m in stack.smtp.messages_to(contact.email) if "correction" in m.subject
    )

    await driver.orders.resubmit(order.order_id)
    await driver.review(order.order_id)
    await driver.enter_code(order.order_id)
    await driver.until_stage(order.order_id, Stage.ADMINISTRATION_REVIEW)
    await approve(driver, order.order_id)
    final = await driver.state(order.order_id)
    assert [s.outcome for s in final.submissions] == ["rejected", "approved"]


# ---------------------------------------------------------------------------------------------- abandon


@pytest.mark.parametrize("stage", ["document_collection", "confirmation", "initial_review", "correction", "paused"])
async def test_abandon_at_each_unlocked_stage(driver: Driver, stack: Stack, stage: str) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    oid = order.order_id
    await driver.until_stage(oid, Stage.DOCUMENT_COLLECTION)
    if stage == "confirmation":
        await driver.upload_missing(oid)
        await driver.until_stage(oid, Stage.CONFIRMATION)
    elif stage == "initial_review":
        await driver.through_collection(oid)
    elif stage == "correction":
        await driver.through_collection(oid)
        await driver.review(oid, approved=False, reasons=["blurred"])
        await driver.until_stage(oid, Stage.CORRECTION)
    elif stage == "paused":
        await driver.skip(oid, order.timing.collection_idle_limit + timedelta(hours=1))
        await driver.until_stage(oid, Stage.DOCUMENT_COLLECTION, Status.PAUSED)
    result = await driver.abandon(oid, reason=f"abandoned at {stage}")
    assert result.stage is Stage.ABANDONED
    final = await driver.state(oid)
    assert final.status is Status.ABANDONED
    assert final.timeline[-1].actor_name == "support-wang"
    assert final.timeline[-1].reason == f"abandoned at {stage}"


async def test_abandon_signal_from_the_temporal_cli_path_works(driver: Driver, client) -> None:  # type: ignore[no-untyped-def]
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    handle = await driver.orders.handle(order.order_id)
    await handle.signal("abandon", SupportAction(actor="support-zhao", reason="duplicate order"))
    final = await driver.until_stage(order.order_id, Stage.ABANDONED)
    assert final.timeline[-1].actor_name == "support-zhao"


async def test_abandon_is_refused_while_the_administration_has_the_order(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)
    await driver.review(order.order_id)
    await driver.until_stage(order.order_id, Stage.SMS_VERIFICATION)
    with pytest.raises(ActionRefused, match="locked"):
        await driver.abandon(order.order_id)
    # The signal path is refused the same way and changes nothing.
    handle = await driver.orders.handle(order.order_id)
    await handle.signal("abandon", SupportAction(actor="support-zhao", reason="try anyway"))
    await driver.enter_code(order.order_id)
    state = await driver.until_stage(order.order_id, Stage.ADMINISTRATION_REVIEW)
    with pytest.raises(ActionRefused, match="locked"):
        await driver.abandon(order.order_id)
    assert state.status is Status.ACTIVE


# ---------------------------------------------------------------------------------------------- one order per filing


async def test_second_order_for_the_same_filing_is_refused_naming_the_first(driver: Driver) -> None:
    first = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(first)
    second = first.model_copy(update={"order_id": first.order_id + "-b"})
    with pytest.raises(OrderConflict, match=first.order_id) as refused:
        await driver.place(second)
    assert refused.value.existing_order_id == first.order_id
    assert "R-LOCK-1" in str(refused.value)
    # Placing the same order again is idempotent.
    again = await driver.place(first)
    assert again.order_id == first.order_id


async def test_closed_order_stays_addressable_after_the_next_order_of_its_filing_starts(driver: Driver) -> None:
    first = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(first)
    await driver.until_stage(first.order_id, Stage.DOCUMENT_COLLECTION)
    await driver.abandon(first.order_id)
    second = first.model_copy(update={"order_id": first.order_id + "-next"})
    await driver.place(second)
    await driver.until_stage(second.order_id, Stage.DOCUMENT_COLLECTION)
    old = await driver.state(first.order_id)
    assert old.order_id == first.order_id and old.stage is Stage.ABANDONED
    with pytest.raises(ActionRefused, match="ended"):
        await driver.resume(first.order_id)


async def test_sms_channel_delivers_stage_notices(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    mobile = order.contact_person().mobile
    texts = await _eventually(lambda: [m for m in stack.sms.messages_to(mobile) if "12381" not in m.from_])
    assert texts and Channel.SMS.value
    assert order.order_id in texts[0].body


async def _eventually(fn, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = fn()
        if value or loop.time() > end:
            return value
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------- document reuse


async def test_images_of_an_approved_order_are_reused_by_the_next_order_when_enabled(driver: Driver) -> None:
    # Each order has its own virtual clock: the first order is approved in real time (a one-second poll, no
    # fast-forward), so its approval is not in the second order's future.
    first = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    first = first.model_copy(
        update={"timing": first.timing.model_copy(update={"review_poll_interval": timedelta(seconds=1)})}
    )
    await driver.place(first)
    await driver.to_administration_review(first.order_id)
    await driver.decide(first.order_id, approved=True)
    await driver.until_stage(first.order_id, Stage.COMPLETED)
    archived = {d.key: d.ref for d in (await driver.state(first.order_id)).documents}

    reuse = first.model_copy(
        update={
            "order_id": first.order_id + "-reuse",
            "options": first.options.model_copy(update={"reuse_images": True}),
        }
    )
    await driver.place(reuse)
    state = await driver.until_stage(reuse.order_id, Stage.CONFIRMATION)
    assert all(d.status is DocumentStatus.REUSED for d in state.documents)
    assert {d.key: d.ref for d in state.documents} == archived

    without = first.model_copy(update={"order_id": first.order_id + "-fresh"})
    await driver.abandon(reuse.order_id)
    await driver.place(without)
    fresh = await driver.until_stage(without.order_id, Stage.DOCUMENT_COLLECTION)
    assert all(d.status is DocumentStatus.MISSING for d in fresh.documents)
