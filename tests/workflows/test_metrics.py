"""icpflow's own metrics come out of the worker's Prometheus endpoint next to the SDK's runtime metrics."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment

from models.order import ChangeField
from models.stages import Stage
from starter.client import OrderClient
from tests.conftest import CODEC_SETTINGS, Stack
from tests.workflows.driver import Driver, new_order

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_stage_durations_and_sdk_metrics_are_exported_for_prometheus(
    temporal_env: WorkflowEnvironment, stack: Stack, orders: OrderClient
) -> None:
    from starter.codec import data_converter
    from worker import build_activities, build_worker

    address = f"127.0.0.1:{free_port()}"
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        data_converter=data_converter(CODEC_SETTINGS),
        runtime=runtime,
    )
    settings = stack.settings.model_copy(update={"task_queue": f"icp-metrics-{uuid.uuid4().hex[:8]}"})
    wiring = build_activities(settings)
    own = OrderClient(temporal_env.client, task_queue=settings.task_queue, read_model=orders.read_model)
    driver = Driver(temporal_env, own, stack)
    async with build_worker(client, settings, wiring):
        order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
        await driver.place(order)
        await driver.through_collection(order.order_id)
        await driver.until_idle(await own.handle(order.order_id))
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://{address}/metrics")).text
    await wiring.close()
    assert "icpflow_stage_duration_bucket{" in text
    for stage in (Stage.VALIDATION, Stage.DOCUMENT_COLLECTION, Stage.CONFIRMATION):
        assert f'stage="{stage.value}"' in text, f"no stage duration for {stage.value}"
    # The SDK's own metrics come out of the same endpoint.
    assert "temporal_workflow_task_schedule_to_start_latency" in text
    assert "temporal_activity_execution_latency" in text
