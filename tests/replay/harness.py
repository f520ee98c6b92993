"""The workflow tests' harness outside pytest: the same dev server, simulators, read model and worker.

``tests/conftest.py`` builds these as session fixtures; the history recorder (``python -m tests.replay.record``)
is a plain script, so it builds them here, in the same way: the Temporal CLI dev server with per-workflow time
skipping (off at start) and the tests' encrypting data converter (its test key), every outside party on loopback,
a migrated SQLite read model, and one worker with every real activity. Keep the two in step: a history recorded
here must come from the same workflow, activities and data converter the tests run.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

from models import search
from models.settings import Settings
from simulators.face_vendor import FaceVendorSimulator
from simulators.rdap import RdapSimulator
from simulators.regulator import RegulatorSimulator
from simulators.sms_sink import SmsSink
from simulators.smtp_sink import SmtpSink
from starter.client import OrderClient
from starter.codec import data_converter
from store import db
from tests.conftest import (
    CODEC_KEYS,
    CODEC_SETTINGS,
    REGULATOR_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    Stack,
    temporal_cli,
)
from tests.workflows.driver import Driver


@dataclass
class Harness:
    env: WorkflowEnvironment
    stack: Stack
    orders: OrderClient
    driver: Driver


@asynccontextmanager
async def running_harness(root: Path | None = None) -> AsyncIterator[Harness]:
    """Start everything the workflow tests run against; stop it all on exit. ``root`` holds the read model and
    the document store (a temporary directory by default)."""
    async with AsyncExitStack() as stack_of:
        if root is None:
            root = Path(stack_of.enter_context(tempfile.TemporaryDirectory(prefix="icpflow-replay-")))
        env = await WorkflowEnvironment.start_time_skipping_v2(
            ts_config=TimeSkippingConfig(enabled=False),
            dev_server_existing_path=temporal_cli(),
            dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
            search_attributes=search.ALL,
            data_converter=data_converter(CODEC_SETTINGS),
        )
        stack_of.push_async_callback(env.shutdown)
        stack = await _start_stack(root, stack_of)

        from worker import build_activities, build_worker

        wiring = build_activities(stack.settings)
        stack_of.push_async_callback(wiring.close)
        await stack_of.enter_async_context(build_worker(env.client, stack.settings, wiring))

        engine = db.create_engine(stack.settings.database_url)
        stack_of.push_async_callback(engine.dispose)
        orders = OrderClient(env.client, task_queue=stack.settings.task_queue, read_model=db.session_factory(engine))
        yield Harness(env=env, stack=stack, orders=orders, driver=Driver(env, orders, stack))


async def _start_stack(root: Path, stack_of: AsyncExitStack) -> Stack:
    sms = SmsSink(TWILIO_SID, TWILIO_TOKEN)
    await sms.start()
    stack_of.push_async_callback(sms.stop)
    smtp = SmtpSink()
    await smtp.start()
    stack_of.push_async_callback(smtp.stop)
    regulator = RegulatorSimulator.with_twilio(REGULATOR_KEY, TWILIO_SID, TWILIO_TOKEN, sms.url, mode="manual")
    await regulator.start()
    stack_of.push_async_callback(regulator.stop)
    rdap = RdapSimulator({})
    await rdap.start()
    stack_of.push_async_callback(rdap.stop)
    face = FaceVendorSimulator()
    await face.start()
    stack_of.push_async_callback(face.stop)
    settings = Settings(
        data_dir=root,
        database_url=f"sqlite+aiosqlite:///{root / 'icpflow.db'}",
        smtp_port=smtp.port,
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_base_url=sms.url,
        regulator_url=regulator.url,
        regulator_api_key=REGULATOR_KEY,
        rdap_base_url=rdap.url,
        face_verification_url=face.url,
        document_store_path=root / "documents",
        task_queue=f"icp-replay-{uuid.uuid4().hex[:8]}",
        codec_keys=CODEC_KEYS,
        codec_active_key=CODEC_SETTINGS.codec_active_key,
    )
    await db.upgrade(settings.database_url)
    return Stack(settings=settings, sms=sms, smtp=smtp, regulator=regulator, rdap=rdap, face=face)
