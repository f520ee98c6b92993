"""An isolated stack for fault-injection tests: its own SMS sink, SMTP sink and regulator simulator (so a fault
injected here touches no other test's orders), its own task queue and worker, and a short client timeout so a
hanging party costs seconds of real time. RDAP, the face vendor, the document store and Temporal are the
session's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.testing import WorkflowEnvironment

from models.state import DependencyWait, OrderState
from simulators.regulator import RegulatorSimulator
from simulators.sms_sink import SmsSink
from simulators.smtp_sink import SmtpSink
from starter.client import OrderClient
from store import db
from tests.conftest import REGULATOR_KEY, TWILIO_SID, TWILIO_TOKEN, Stack
from tests.workflows.driver import Driver

# Long enough for loopback under a loaded CI machine, short enough that a hanging party costs little real time.
CLIENT_TIMEOUT_SECONDS = 2.0


@dataclass
class FaultStack:
    stack: Stack
    driver: Driver
    orders: OrderClient

    @property
    def sms(self) -> SmsSink:
        return self.stack.sms

    @property
    def smtp(self) -> SmtpSink:
        return self.stack.smtp

    @property
    def regulator(self) -> RegulatorSimulator:
        return self.stack.regulator

    def clear_faults(self) -> None:
        self.sms.clear_faults()
        self.smtp.clear_faults()
        self.regulator.clear_faults()

    def mail(self, to: str, subject_part: str) -> list[str]:
        return [m.subject for m in self.smtp.messages_to(to) if subject_part in m.subject]

    async def delivered_once(self, order_id: str, to: str, subject_part: str, timeout: float = 60) -> None:
        """Wait for the mail to ``to`` whose subject holds ``subject_part``; once the order is idle, exactly one."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self.mail(to, subject_part):
            assert loop.time() < end, f"no mail {subject_part!r} reached {to}"
            await asyncio.sleep(0.05)
        await self.driver.until_idle(await self.orders.handle(order_id))
        assert len(self.mail(to, subject_part)) == 1, self.mail(to, subject_part)

    def texts(self, to: str, sender: str | None = None) -> list[str]:
        sender = sender or self.stack.settings.twilio_from_number
        return [m.body for m in self.sms.messages_to(to) if m.from_ == sender]

    def support_alerts(self, what: str, order_id: str) -> list[str]:
        """Support's mail about ``what`` (e.g. ``dependency-down-regulator``) for one order."""
        return [s for s in self.mail(self.stack.settings.support_email, what) if s.endswith(f"order {order_id}")]

    async def wait_shown(self, order_id: str, activity: str) -> tuple[OrderState, DependencyWait]:
        """Let the order's patience run out while its activity keeps failing; return the wait its state shows."""
        placed = await self.driver.state(order_id)
        state, wait = await self.driver.until_dependency_wait(order_id, activity)
        assert placed.placed_at <= wait.since <= state.updated_at
        return state, wait

    async def recovered(self, order_id: str, predicate: Callable[[OrderState], bool], what: str) -> OrderState:
        """Move the order's clock past the longest backoff so the next attempt runs, then wait for ``predicate``."""
        await self.driver.skip(order_id, timedelta(minutes=6))
        return await self.driver.until(order_id, predicate, what)


@asynccontextmanager
async def fault_stack(env: WorkflowEnvironment, shared: Stack, **settings: Any) -> AsyncIterator[FaultStack]:
    """Start the isolated stack and a worker for it; ``settings`` override the worker's (e.g. ``database_url``)."""
    from worker import build_activities, build_worker

    sms = SmsSink(TWILIO_SID, TWILIO_TOKEN)
    await sms.start()
    smtp = SmtpSink()
    await smtp.start()
    regulator = RegulatorSimulator.with_twilio(REGULATOR_KEY, TWILIO_SID, TWILIO_TOKEN, sms.url, mode="manual")
    await regulator.start()
    config = shared.settings.model_copy(
        update={
            "smtp_port": smtp.port,
            "twilio_base_url": sms.url,
            "regulator_url": regulator.url,
            "task_queue": f"icp-faults-{uuid.uuid4().hex[:8]}",
            "http_timeout_seconds": CLIENT_TIMEOUT_SECONDS,
        }
        | settings
    )
    stack = Stack(settings=config, sms=sms, smtp=smtp, regulator=regulator, rdap=shared.rdap, face=shared.face)
    wiring = build_activities(config)
    # The client finds orders through the session's SQLite read model, falling back to visibility for an order it
    # does not hold (the database test's worker writes elsewhere): lookups work while the worker's database is down.
    lookup = db.create_engine(shared.settings.database_url)
    orders = OrderClient(env.client, task_queue=config.task_queue, read_model=db.session_factory(lookup))
    try:
        async with build_worker(env.client, config, wiring):
            yield FaultStack(stack=stack, driver=Driver(env, orders, stack), orders=orders)
    finally:
        await wiring.close()
        await lookup.dispose()
        for part in (regulator, smtp, sms):
            await part.stop()
