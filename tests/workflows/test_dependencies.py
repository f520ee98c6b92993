"""Outside parties failing: the order waits and shows what it waits on; a permanent failure is recorded and the
order goes on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.order import ChangeField
from models.stages import Stage
from tests.conftest import Stack
from tests.workflows.driver import Driver, new_order

pytestmark = pytest.mark.integration


@pytest.fixture
async def driver(temporal_env, orders, stack) -> Driver:  # type: ignore[no-untyped-def]
    return Driver(temporal_env, orders, stack)


async def test_unreachable_mobile_is_recorded_and_the_applicant_is_told_by_email(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    contact = order.contact_person()
    stack.sms.unreachable.add(contact.mobile)
    try:
        await driver.place(order)
        state = await driver.until(
            order.order_id, lambda s: s.stage is Stage.DOCUMENT_COLLECTION and bool(s.notification_failures)
        )
    finally:
        stack.sms.unreachable.discard(contact.mobile)
    failure = state.notification_failures[0]
    assert (failure.channel == "sms" and "21614" in failure.reason) or "not a valid mobile" in failure.reason
    assert any("document collection" in m.subject for m in stack.smtp.messages_to(contact.email))
    await driver.upload_missing(order.order_id)
    await driver.until_stage(order.order_id, Stage.CONFIRMATION)


async def test_rdap_outage_is_waited_out_and_visible_in_the_state(driver: Driver, stack: Stack) -> None:
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    stack.rdap.fail_next(10_000)
    try:
        await driver.place(order)
        await driver.skip(order.order_id, order.timing.dependency_patience + timedelta(minutes=1))
        waiting = await driver.until(order.order_id, lambda s: bool(s.dependency_waits), "a dependency wait")
        wait = waiting.dependency_waits[0]
        assert (wait.dependency, wait.activity) == ("rdap", "validate_order")
        assert waiting.placed_at <= wait.since <= waiting.updated_at
        assert "503" in wait.last_error or "unavailable" in wait.last_error.lower()
        assert waiting.stage is Stage.VALIDATION
        for _ in range(12):  # the outage goes on: past the alert limit support hears of it, once
            await driver.skip(order.order_id, order.timing.dependency_alert_after / 4)
            alerted = await driver.state(order.order_id)
            if any(w.alerted for w in alerted.dependency_waits):
                break
        assert alerted.dependency_waits[0].alerted
        assert any("dependency-down-rdap" in m.subject for m in stack.smtp.messages_to(stack.settings.support_email))
    finally:
        stack.rdap.fail_next(0)
    await driver.skip(order.order_id, timedelta(minutes=10))
    recovered = await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    assert recovered.dependency_waits == []
