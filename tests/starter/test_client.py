"""The client facade: how it reads an order's state."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from models.order import ChangeField
from models.stages import Stage, Status
from starter.client import OrderClient
from tests.conftest import Stack
from tests.workflows.driver import Driver, new_order

pytestmark = pytest.mark.integration


async def test_an_ended_orders_state_is_its_result_and_needs_no_worker(
    temporal_env: WorkflowEnvironment, stack: Stack, orders: OrderClient
) -> None:
    """A query on a closed workflow makes a worker replay its whole history; the final state is the workflow's
    result, read from the close event. With no worker polling the order's queue, only the result can answer."""
    from worker import build_activities, build_worker

    settings = stack.settings.model_copy(update={"task_queue": f"icp-client-{uuid.uuid4().hex[:8]}"})
    own = OrderClient(temporal_env.client, task_queue=settings.task_queue, read_model=orders.read_model)
    driver = Driver(temporal_env, own, stack)
    order = new_order(changes=[ChangeField.DOMAIN_ADD, ChangeField.PROVINCE, ChangeField.DOMAIN_CHANGE])
    wiring = build_activities(settings)
    async with build_worker(temporal_env.client, settings, wiring):
        await driver.place(order)
        handle = await own.handle(order.order_id)
        for _ in range(600):
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.1)
    await wiring.close()
    # The worker is gone: nothing polls this task queue any more.
    final = await asyncio.wait_for(own.state(order.order_id), timeout=30)
    assert (final.stage, final.status) == (Stage.INVALID, Status.INVALID)
    assert {v.rule_id for v in final.violations} >= {"R-DOM-1", "R-PROV-1"}
