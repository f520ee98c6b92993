"""open_orders: many open orders on one dev server — what the server and the worker hold, and how long a support
action on one of them takes.

Orders wait for the applicant's documents (document collection: the stage most open orders are in, and one support
may still abandon — from submission on an order is locked). The worker runs as a subprocess with the SDK's default
workflow cache, as in production, so past 1,000 open orders most are evicted. Then support abandons some of them
through ``OrderClient.abandon`` (the facade: read-model look-up, describe, update) — orders placed last (cached) and
the first ones (evicted: the worker replays their history first).

The orders support acts on are walked there through the facade (placed, validated, notified); the thousands in
between are continued runs of the first one's state (``bench.driver.ContinuedParking``), since walking each costs
the worker a validation, notices and read-model writes. The target is 20,000 open orders; the scenario stops
parking at its time budget and reports how many it reached.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from temporalio.client import Client, WorkflowHandle

from bench.driver import PARKED_SMS_WINDOW, ContinuedParking, PipelineDriver, park, parking_timing
from bench.rig import DevServer, Outside, WorkerProcess, bench_settings, read_model
from bench.scenarios import Context, Row, Scenario
from models import search
from models.messages import SupportAction
from models.order import PlaceOrder
from models.stages import Stage
from models.state import OrderState
from starter.client import OrderClient
from store import db

SETTLE_S = 3.0
WALK_BUDGET_S = 60.0


async def run(ctx: Context) -> dict[str, Any]:
    target = (ctx.options.get("orders") or [5 if ctx.tiny else 20_000])[-1]
    budget: float = ctx.options.get("budget_s") or (60.0 if ctx.tiny else 360.0)
    concurrency = 2 if ctx.tiny else 32
    samples = 1 if ctx.tiny else 5
    timing = parking_timing()
    outside = await Outside.start(sms_window=PARKED_SMS_WINDOW)
    try:
        async with read_model(ctx.read_model, ctx.work_dir) as (model_kind, url):
            server = DevServer(ctx.work_dir)
            settings = bench_settings(ctx.work_dir, outside, server.address, url)
            client = await server.start(settings)
            worker = WorkerProcess(settings, ctx.work_dir, baseline=False, workflow_runner=ctx.runner)
            engine = db.create_engine(url)
            try:
                await worker.start()
                driver = PipelineDriver(client, settings, outside, timing)

                async def walk_one() -> tuple[PlaceOrder, WorkflowHandle[Any, Any]]:
                    order = driver.new_order()
                    return order, await driver.to_document_collection(order, poll=0.25)

                loop = asyncio.get_running_loop()
                t0 = loop.time()
                # The orders support acts on are walked (placed through the facade: read-model rows and all), the
                # oldest first — evicted by the time support gets to them — and the most recent last.
                oldest = await park(walk_one, samples, concurrency=samples, deadline=t0 + WALK_BUDGET_S)
                template: OrderState = await oldest[0][1].query("state", result_type=OrderState)
                parking = ContinuedParking(client, settings, template, timing)
                bulk = max(target - 3 * samples, 0)
                ctx.log(
                    f"open_orders: parking up to {bulk} continued runs (budget {budget:.0f} s, {concurrency} at once)"
                )
                parked = await parking.park(bulk, concurrency=concurrency, deadline=loop.time() + budget)
                recent = await park(walk_one, 2 * samples, concurrency=samples, deadline=loop.time() + WALK_BUDGET_S)
                placing_s = loop.time() - t0
                walked = len(oldest) + len(recent)
                n = walked + len(parked)
                ctx.log(f"open_orders: {n} open orders in {placing_s:.0f} s")
                await asyncio.sleep(SETTLE_S)
                gc = await worker.collect_garbage()
                server_rss = server.rss_kib()
                db_bytes = sum(p.stat().st_size for p in ctx.work_dir.glob("temporal.db*"))
                waiting = await _count_waiting(client)
                orders = OrderClient(client, task_queue=settings.task_queue, read_model=db.session_factory(engine))
                cached_ms = await _abandon_each(orders, [o for o, _ in recent[samples:]])
                evicted_ms = await _abandon_each(orders, [o for o, _ in oldest]) if n > 1000 + 2 * samples else []
                state_ms = await _state_each(orders, [o for o, _ in recent[:samples]])
            finally:
                await worker.stop()
                await server.stop()
                await engine.dispose()
            server_info = server.describe()
    finally:
        await outside.stop()
    scaled = n < target
    return {
        "open_orders": n,
        "walked": walked,
        "waiting_in_visibility": waiting,
        "target": target,
        "scaled": scaled,
        "notes": [f"scaled down: {n} of {target} orders placed within the {budget:.0f} s budget"] if scaled else [],
        "placing_s": round(placing_s, 1),
        "placing_rate_per_s": round(n / placing_s, 2) if placing_s else None,
        "worker_rss_kib": gc["rss_after_kib"],
        "server_rss_kib": server_rss,
        "server_db_bytes": db_bytes,
        "abandon_ms": {
            "cached": cached_ms,
            "evicted": evicted_ms,
            "cached_p50": _p50(cached_ms),
            "evicted_p50": _p50(evicted_ms),
        },
        "state_query_ms_p50": _p50(state_ms),
        "setup": {
            "parked_at": "document_collection",
            "parked_how": f"{walked} walked through the facade; the rest continued runs of the "
            "first one's state (bench.driver.ContinuedParking)",
            "worker": "subprocess, SDK default workflow cache (1,000)",
            "support_action": "OrderClient.abandon (read-model look-up + describe + update abandon_order)",
            "timing": "TimingPolicy.compressed() with reminders, idle limits and the SMS window set to days",
            "read_model": model_kind,
            "place_concurrency": concurrency,
            "server": server_info,
        },
    }


async def _abandon_each(orders: OrderClient, placed: list[PlaceOrder]) -> list[float]:
    times = []
    for order in placed:
        t = time.perf_counter()
        result = await orders.abandon(order.order_id, SupportAction(actor="bench-support", reason="bench: withdrawn"))
        times.append(round((time.perf_counter() - t) * 1000, 1))
        assert result.stage is Stage.ABANDONED, result
    return times


async def _count_waiting(client: Client) -> int:
    """How many orders the server's visibility lists at document collection and running: all of them parked."""
    count = await client.count_workflows(
        f"{search.STAGE.name} = '{Stage.DOCUMENT_COLLECTION.value}' AND ExecutionStatus = 'Running'"
    )
    return count.count


async def _state_each(orders: OrderClient, placed: list[PlaceOrder]) -> list[float]:
    times = []
    for order in placed:
        t = time.perf_counter()
        await orders.state(order.order_id)
        times.append(round((time.perf_counter() - t) * 1000, 1))
    return times


def _p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def rows(result: dict[str, Any]) -> list[Row]:
    a = result["abandon_ms"]
    return [
        (
            "open orders on one dev server",
            f"{result['open_orders']:,}",
            f"target {result['target']:,}"
            + (" (scaled down: time budget)" if result["scaled"] else "")
            + f"; {result['waiting_in_visibility']:,} running in document collection per the server",
        ),
        ("server RSS | DB size", f"{result['server_rss_kib'] // 1024} MiB | {result['server_db_bytes'] >> 20} MiB", ""),
        ("worker RSS (default cache)", f"{result['worker_rss_kib'] // 1024} MiB", ""),
        (
            "abandon via OrderClient, p50",
            f"{a['cached_p50']} ms",
            f"cached order; evicted: {a['evicted_p50']} ms" if a["evicted"] else "cached order",
        ),
        ("state via OrderClient, p50", f"{result['state_query_ms_p50']} ms", ""),
    ]


SCENARIO = Scenario(
    name="open_orders",
    summary="open orders parked on one dev server: server and worker RSS, time of a support action",
    run=run,
    rows=rows,
    result_keys=("open_orders", "target", "worker_rss_kib", "server_rss_kib", "abandon_ms"),
)
