"""One trace from the API call into the workflow and its activities, exported to an in-process collector."""

from __future__ import annotations

import uuid

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from models.order import ChangeField
from models.stages import Stage
from starter import tracing
from starter.api import create_app
from starter.client import OrderClient, connect
from tests.conftest import Stack
from tests.starter.test_api import BACKEND, BASE, body, dev_settings
from tests.workflows.driver import Driver, new_order


async def test_a_trace_spans_api_workflow_and_activities(
    temporal_env: WorkflowEnvironment, stack: Stack, orders: OrderClient
) -> None:
    from worker import build_activities, build_worker

    collector = InMemorySpanExporter()
    settings = dev_settings(
        stack,
        tracing_enabled=True,
        task_queue=f"icp-traced-{uuid.uuid4().hex[:8]}",
        temporal_address=temporal_env.client.service_client.config.target_host,
    )
    provider = tracing.install_tracer_provider(settings, exporter=collector)
    client = await connect(settings)  # tracing on: the contrib plugin is on this client and its worker
    wiring = build_activities(settings)
    traced = OrderClient(client, task_queue=settings.task_queue, read_model=orders.read_model)
    app = create_app(settings, order_client=traced, sessions=orders.read_model)
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    async with build_worker(client, settings, wiring):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60) as http:
            created = await http.post("/v1/orders", json=body(order), headers=BACKEND)
            assert created.status_code == 201, created.text
        await Driver(temporal_env, traced, stack).until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    await wiring.close()
    provider.force_flush()
    spans = collector.get_finished_spans()
    api = next(s for s in spans if s.name.startswith("POST /v1/orders") and s.parent is None)
    trace = [s for s in spans if s.context.trace_id == api.context.trace_id]
    names = {s.name for s in trace}
    assert any(n.startswith("StartWorkflow:ModificationOrderWorkflow") for n in names), names
    assert any(n.startswith("RunActivity:validate_order") for n in names), names
    assert any(n.startswith("RunActivity:record_transition") for n in names), names
