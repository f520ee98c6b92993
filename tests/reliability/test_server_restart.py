"""The Temporal dev server itself SIGKILLed mid-run and started again on the same SQLite file and port: the worker
process keeps running and reconnects, and every order resumes from wherever it was — waiting for documents, for
the initial review, for its SMS code, or busy with activities right after its code was entered — and is approved,
with every notice delivered once and the read model (SQLite here) equal to each workflow's state."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from bench.rig import Outside, bench_settings
from models.stages import Stage, Status
from models.state import OrderState
from store import db
from tests.reliability.crash_checks import check_deliveries, check_read_model, check_submissions
from tests.reliability.crash_driver import Group
from tests.reliability.crash_rig import CRASH_TIMING, SMS_WINDOW, CrashWorker, DevServer, supervise

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORDERS_PER_STAGE = 5


@pytest.mark.timeout(600)
async def test_dev_server_killed_and_restarted_on_its_file_every_order_resumes(tmp_path: Path) -> None:
    outside = await Outside.start(sms_window=SMS_WINDOW)
    server = DevServer(tmp_path / "temporal")
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'icpflow.db'}"
    await db.upgrade(database_url)
    settings = bench_settings(tmp_path, outside, "", database_url, task_queue="server-restart")
    worker: CrashWorker | None = None
    stop = asyncio.Event()
    supervisor: asyncio.Task[None] | None = None
    try:
        client = await server.start(settings)
        settings = settings.model_copy(update={"temporal_address": server.address})
        worker = CrashWorker(settings, tmp_path / "worker")
        await worker.start()
        supervisor = asyncio.create_task(supervise(worker, rearm=False, stop=stop))
        collecting, reviewing, verifying, busy = (
            Group(client, settings, outside, CRASH_TIMING, ORDERS_PER_STAGE) for _ in range(4)
        )
        groups = (collecting, reviewing, verifying, busy)
        await asyncio.gather(*(g.place() for g in groups))
        await asyncio.gather(*(g.until(Stage.DOCUMENT_COLLECTION) for g in groups))
        await asyncio.gather(*(g.upload() for g in groups[1:]))
        await asyncio.gather(*(g.confirm() for g in groups[1:]))
        await asyncio.gather(reviewing.until(Stage.INITIAL_REVIEW), *(g.review() for g in groups[2:]))
        await asyncio.gather(*(g.until(Stage.SMS_VERIFICATION) for g in groups[2:]))

        # The busy group's codes go in; the server dies while those orders verify, transition, notify and poll.
        entering = asyncio.ensure_future(busy.enter_codes())
        await busy.until(Stage.ADMINISTRATION_REVIEW, busy.orders[:1])
        server.kill()
        killed_at = time.monotonic()
        stages_at_kill = {
            g_name: [o.order_id for o in g.orders]
            for g_name, g in zip(("collecting", "reviewing", "verifying", "busy"), groups, strict=True)
        }
        await asyncio.sleep(2.0)
        client_after = await server.start(settings)
        print(
            f"\ndev server down {time.monotonic() - killed_at:.1f} s; orders by where they were: "
            + ", ".join(f"{k} {len(v)}" for k, v in stages_at_kill.items())
        )

        # Everyone goes on through the same client as before the restart: it reconnects by itself.
        await entering
        await collecting.upload()
        await collecting.confirm()
        await asyncio.gather(collecting.review(), reviewing.review())
        await asyncio.gather(*(g.enter_codes() for g in groups[:3]))
        finals: dict[str, OrderState] = {}
        for g in groups:
            finals |= await g.finished()
        for order_id, final in finals.items():
            assert (final.stage, final.status) == (Stage.COMPLETED, Status.APPROVED), (order_id, final.stage)
        assert worker.deaths == [], "the worker process died with the server instead of reconnecting"
        assert (await client_after.get_workflow_handle(busy.handle(busy.orders[0]).id).describe()).status

        engine = db.create_engine(database_url)
        try:
            sessions = db.session_factory(engine)
            orders = [o for g in groups for o in g.orders]
            report = await check_deliveries(sessions, outside, orders, worker)
            await check_read_model(sessions, finals)
        finally:
            await engine.dispose()
        await check_submissions(outside, orders)
        print(
            f"{len(finals)} orders approved after the restart; {report.delivered} notices delivered, "
            f"{len(report.duplicates)} twice; backend calls retried {sum(g.retries for g in groups)} times"
        )
    finally:
        stop.set()
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        if worker is not None:
            await worker.stop()
        await server.stop()
        await outside.stop()
