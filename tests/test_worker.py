"""The worker as a real process: SIGKILL it mid-pipeline, start a new one, and the order finishes with every
notification sent exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.testing import WorkflowEnvironment

from models.messages import SmsEventKind, SmsVerificationEvent
from models.order import ChangeField
from models.stages import Stage
from starter.client import OrderClient, WorkersUnavailable
from store import db
from store.tables import OutboxRow
from tests.conftest import Stack
from tests.workflows.driver import Driver, new_order

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """``python worker.py`` configured only through ICPFLOW_* variables, as production runs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")], env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
async def crash_rig(
    temporal_env: WorkflowEnvironment, stack: Stack, tmp_path: Path
) -> AsyncIterator[tuple[WorkerProcess, Driver, str]]:
    task_queue = f"icp-crash-{uuid.uuid4().hex[:8]}"
    s = stack.settings
    env = {
        **os.environ,
        "ICPFLOW_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "ICPFLOW_TASK_QUEUE": task_queue,
        "ICPFLOW_DATABASE_URL": s.database_url,
        "ICPFLOW_SMTP_PORT": str(s.smtp_port),
        "ICPFLOW_TWILIO_ACCOUNT_SID": s.twilio_account_sid,
        "ICPFLOW_TWILIO_AUTH_TOKEN": s.twilio_auth_token.get_secret_value(),
        "ICPFLOW_TWILIO_BASE_URL": s.twilio_base_url or "",
        "ICPFLOW_REGULATOR_URL": s.regulator_url,
        "ICPFLOW_REGULATOR_API_KEY": s.regulator_api_key.get_secret_value(),
        "ICPFLOW_RDAP_BASE_URL": s.rdap_base_url,
        "ICPFLOW_FACE_VERIFICATION_URL": s.face_verification_url,
        "ICPFLOW_DOCUMENT_STORE_PATH": str(s.document_store_path),
        "ICPFLOW_CODEC_KEYS": s.codec_keys.get_secret_value() if s.codec_keys else "",
        "ICPFLOW_CODEC_ACTIVE_KEY": s.codec_active_key or "",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.start()
    engine = db.create_engine(s.database_url)
    orders = OrderClient(temporal_env.client, task_queue=task_queue, read_model=db.session_factory(engine))
    try:
        yield worker, Driver(temporal_env, orders, stack), s.database_url
    finally:
        worker.stop()
        await engine.dispose()


async def until_polled(driver: Driver, order_id: str) -> None:
    """Updates need a live worker: wait until the new process answers a query for the order."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 60
    while True:
        try:
            await driver.state(order_id)
            return
        except Exception:
            if loop.time() > end:
                raise
            await asyncio.sleep(0.2)


async def until_quiet(driver: Driver, order_id: str) -> None:
    """Wait until the order has no activity in flight: the kill then lands while it waits, not mid-send (killing
    mid-activity is the crash matrix's business; here it would only add an activity timeout to the run)."""
    handle = await driver.orders.handle(order_id)
    for _ in range(600):
        desc = await handle.describe()
        running = [
            a
            for a in desc.raw_description.pending_activities
            if a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        ]
        if not running:  # a poll waiting for its next retry counts as quiet
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the order never went quiet")


async def retry_while_workers_down(action: Callable[[], Awaitable[Any]]) -> Any:
    for _ in range(300):
        try:
            return await action()
        except WorkersUnavailable:
            await asyncio.sleep(0.2)
    raise AssertionError("no worker came back")


async def test_worker_killed_mid_pipeline_order_finishes_on_a_new_worker_notifying_once(
    crash_rig: tuple[WorkerProcess, Driver, str], stack: Stack
) -> None:
    worker, driver, database_url = crash_rig
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
    oid = order.order_id
    await driver.place(order)
    await driver.until_stage(oid, Stage.DOCUMENT_COLLECTION)

    await until_quiet(driver, oid)
    worker.kill()  # 1: while the order waits for documents
    worker.start()
    await until_polled(driver, oid)
    await retry_while_workers_down(lambda: driver.upload_missing(oid))
    await driver.until_stage(oid, Stage.CONFIRMATION)
    await driver.confirm(oid)
    await driver.review(oid)
    code = await driver.current_code(oid)

    await until_quiet(driver, oid)
    worker.kill()  # 2: while the SMS code is outstanding
    worker.start()
    await until_polled(driver, oid)
    event = SmsVerificationEvent(event=SmsEventKind.CODE_ENTERED, code=code)
    await retry_while_workers_down(lambda: driver.orders.sms_verification(oid, event))
    await driver.until_stage(oid, Stage.ADMINISTRATION_REVIEW)

    submission = (await driver.state(oid)).current_submission
    assert submission is not None
    await until_quiet(driver, oid)
    worker.kill()  # 3: while the review poll is retrying
    await driver.decide(oid, approved=True, submission_id=submission.submission_id)
    worker.start()
    await driver.skip(oid, order.timing.review_poll_interval * 2)
    final = await driver.until_stage(oid, Stage.COMPLETED)
    assert final.status.value == "approved"

    # Every notification of this order went out exactly once per channel: the outbox has one sent row per key and
    # the sinks received each message once.
    engine = db.create_engine(database_url)
    async with db.session_factory(engine)() as session:
        rows = (await session.execute(select(OutboxRow).where(OutboxRow.order_id == oid))).scalars().all()
    await engine.dispose()
    assert rows, "no notification was recorded"
    assert all(r.status == "sent" for r in rows), [(r.event_key, r.channel, r.status) for r in rows]
    contact = order.contact_person()
    subjects = Counter(m.subject for m in stack.smtp.messages_to(contact.email))
    emailed = [r for r in rows if r.channel == "email"]
    assert sum(subjects.values()) == len(emailed), subjects
    texts = [m for m in stack.sms.messages_to(contact.mobile) if "12381" not in m.from_]
    assert len(texts) == len([r for r in rows if r.channel == "sms"])
