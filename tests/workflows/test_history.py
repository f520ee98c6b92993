"""The workflow's history stays bounded however long the review takes, and continue-as-new carries the whole order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType

from models.order import ChangeField
from models.stages import Stage, Status
from models.state import DeadlineKind
from starter.client import OrderClient
from tests.workflows.driver import Driver, new_order

pytestmark = pytest.mark.integration

TIME_SKIPPING_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIME_SKIPPING_TRANSITIONED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
}


@pytest.fixture
async def driver(temporal_env, orders, stack) -> Driver:  # type: ignore[no-untyped-def]
    return Driver(temporal_env, orders, stack)


async def history_length(orders: OrderClient, order_id: str) -> int:
    handle = await orders.handle(order_id)
    events = (await handle.fetch_history()).events
    # The time-skipping test server records its own clock jumps in the history; production has no such events.
    return sum(1 for e in events if e.event_type not in TIME_SKIPPING_EVENTS)


async def approved_after(driver: Driver, business_days: int) -> tuple[int, int]:
    """(events of the whole order, events from the start of the administration review to the end) for an order the
    administration approves on the given business day of its review."""
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    review = await driver.to_administration_review(order.order_id)
    await driver.until_idle(await driver.orders.handle(order.order_id))
    before_review = await history_length(driver.orders, order.order_id)
    if business_days > 1:
        due = review.deadline(DeadlineKind.REVIEW_DUE)
        assert due is not None and business_days == order.timing.review_business_days
        # Decide early enough on the last day that the next poll still comes before the deadline.
        await driver.skip(order.order_id, due.at - review.updated_at - order.timing.review_poll_interval * 3)
    else:
        await driver.skip(order.order_id, timedelta(hours=12))
    await driver.decide(order.order_id, approved=True)
    await driver.skip(order.order_id, order.timing.review_poll_interval * 2)
    await driver.until_stage(order.order_id, Stage.COMPLETED)
    await driver.until_idle(await driver.orders.handle(order.order_id))
    total = await history_length(driver.orders, order.order_id)
    return total, total - before_review


async def test_history_is_flat_in_review_length_and_under_400_events(driver: Driver) -> None:
    one_day, review_one = await approved_after(driver, 1)
    twenty_days, review_twenty = await approved_after(driver, 20)
    print(
        f"history events: review of 1 business day {one_day} (review part {review_one}), "
        f"of 20 business days {twenty_days} (review part {review_twenty})"
    )
    # The review itself adds the same events however long it lasts; the rest of an order varies by a few events
    # with how the server batches concurrent messages into workflow tasks.
    assert review_twenty - review_one <= 2
    assert abs(twenty_days - one_day) <= 8
    assert twenty_days < 400 and one_day < 400


async def test_continue_as_new_carries_state_and_drops_no_message(driver: Driver) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order, history_limit=50)
    collecting = await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    keys = [d.key for d in collecting.documents]
    assert len(keys) >= 3
    # Uploads arrive back to back while runs roll over; every one of them must land.
    for key in keys:
        await driver.upload(order.order_id, key)
    await driver.confirm(order.order_id)
    await driver.review(order.order_id)
    await driver.enter_code(order.order_id)
    await driver.until_stage(order.order_id, Stage.ADMINISTRATION_REVIEW)
    await driver.decide(order.order_id, approved=True)
    await driver.skip(order.order_id, order.timing.review_poll_interval * 2)
    final = await driver.until_stage(order.order_id, Stage.COMPLETED)
    assert final.status is Status.APPROVED
    assert final.runs > 1, "the history limit should have forced at least one continue-as-new"
    assert {d.key for d in final.documents if d.ref is not None} == set(keys)
    seqs = [t.seq for t in final.timeline]
    assert seqs == list(range(1, len(seqs) + 1)), "the timeline is carried whole across runs"
