"""api_latency: create-order and get-order through the HTTP API at 20 concurrent clients, while orders run through
the pipeline in the background at half the throughput scenario's ceiling.

The stack is production's shape on one machine: the dev server, the real worker as a subprocess, the API as a
uvicorn subprocess on loopback (``bench.rig.ApiProcess``), the simulators. In the background the bench driver takes
orders to approval (``PipelineDriver.to_approval``, open loop) at half the best pipeline orders/s of
``throughput`` (read from its result in the same output folder; without one, ``DEFAULT_CEILING``, the figure the
README reports for this machine). Meanwhile 20 clients, each in a closed loop, ``POST /v1/orders`` (backend token)
then ``GET /v1/orders/{id}`` (the workflow's ``state`` query); only the requests of the measured window count.
Placed orders wait in document collection with the parking timing (no reminders or idle pauses during the run).

A create is: the read-model look-up by order id, a describe of the filing's workflow, the start, and the first
``state`` query (which waits for the worker's first workflow task): its latency is mostly the worker's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx

from bench import latency
from bench.driver import PipelineDriver, bench_order, parking_timing
from bench.report import stem
from bench.rig import ApiProcess, WorkerProcess, api_stack, cpu_seconds
from bench.scenarios import Context, Row, Scenario
from models.timing import TimingPolicy

BACKEND = {"Authorization": "Bearer dev-backend"}
CLIENTS = 20
DEFAULT_CEILING = 1.0  # pipeline orders/s at the best step on this 2-core machine (README)
GOAL_CREATE_P99_MS = 50.0
# The API's orders take contact mobiles far from the background driver's (both draw from bench_order's numbers).
API_NUMBERS_FROM = 4000


def ceiling(ctx: Context) -> tuple[float, str]:
    path = ctx.out_dir / f"{stem('throughput', ctx.size)}.json"
    try:
        best = json.loads(path.read_text())["best"]
        return float(best["pipeline_orders_per_s"]), str(path)
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_CEILING, f"default ({DEFAULT_CEILING} orders/s): no throughput result at {path}"


async def run(ctx: Context) -> dict[str, Any]:
    window: float = ctx.options.get("window_s") or (3.0 if ctx.tiny else 45.0)
    warmup = 1.0 if ctx.tiny else 8.0
    clients = 2 if ctx.tiny else CLIENTS
    top, source = ceiling(ctx)
    rate = top / 2
    timing = TimingPolicy.compressed()
    async with api_stack(ctx.work_dir, kind=ctx.read_model, sms_window=timing.sms_window, runner=ctx.runner) as stack:
        driver = PipelineDriver(stack.client, stack.settings, stack.outside, timing)
        figures = await _measure(stack.api, driver, clients, rate, warmup, window, stack.worker)
        setup = stack.describe()
    return {
        **figures,
        "goal": {"create_p99_ms": GOAL_CREATE_P99_MS},
        "setup": setup
        | {
            "clients": clients,
            "window_s": window,
            "warmup_s": warmup,
            "background": {
                "rate_orders_per_s": round(rate, 3),
                "ceiling_orders_per_s": top,
                "ceiling_from": source,
                "how": "open loop: a new order taken to approval every 1/rate s by the bench driver",
            },
        },
    }


async def _measure(
    api: ApiProcess,
    driver: PipelineDriver,
    clients: int,
    rate: float,
    warmup: float,
    window: float,
    worker: WorkerProcess,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    begin, end = t0 + warmup, t0 + warmup + window
    over = False
    background: set[asyncio.Task[Any]] = set()
    approved = failed = 0
    create_ms: list[float] = []
    get_ms: list[float] = []
    errors: list[str] = []
    background_errors: list[str] = []
    numbers = itertools.count(API_NUMBERS_FROM)
    timing = parking_timing()

    async def one_background_order() -> None:
        nonlocal approved, failed
        try:
            await driver.to_approval(driver.new_order())
            approved += 1
        except Exception as e:  # counted and sampled, not fatal: the figure is the API's latency
            # Cancelled at the end of the run, an order waiting on an update raises the Temporal client's
            # WorkflowUpdateRPCTimeoutOrCancelledError rather than CancelledError: that is not a failure.
            if not over:
                failed += 1
                background_errors.append(f"{type(e).__name__}: {e}"[:200])

    async def feeder() -> None:
        while not over:
            task = asyncio.create_task(one_background_order())
            background.add(task)
            task.add_done_callback(background.discard)
            await asyncio.sleep(1 / rate)

    async def user(http: httpx.AsyncClient) -> None:
        while not over:
            order = bench_order(next(numbers), timing)
            try:
                t = time.perf_counter()
                created = await http.post("/v1/orders", json=order.model_dump(mode="json"), headers=BACKEND)
                c = (time.perf_counter() - t) * 1000
                created.raise_for_status()
                t = time.perf_counter()
                got = await http.get(f"/v1/orders/{order.order_id}", headers=BACKEND)
                g = (time.perf_counter() - t) * 1000
                got.raise_for_status()
            except httpx.HTTPError as e:
                if not over:
                    errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            if begin <= loop.time() <= end:
                create_ms.append(c)
                get_ms.append(g)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=api.url, timeout=120, limits=limits) as http:
        feeding = asyncio.create_task(feeder())
        users = [asyncio.create_task(user(http)) for _ in range(clients)]
        await asyncio.sleep(warmup)
        cpu0 = (cpu_seconds(api.pid), cpu_seconds(worker.pid))
        await asyncio.sleep(window)
        cpu1 = (cpu_seconds(api.pid), cpu_seconds(worker.pid))
        over = True
        for task in [feeding, *users, *background]:
            task.cancel()
        await asyncio.gather(feeding, *users, *background, return_exceptions=True)
    return {
        "create": latency.summary(create_ms),
        "get": latency.summary(get_ms),
        "creates_per_s": round(len(create_ms) / window, 2),
        "errors": len(errors),
        "error_samples": errors[:5],
        "background_approved": approved,
        "background_failed": failed,
        "background_error_samples": background_errors[:5],
        "api_cpu_s_in_window": round(cpu1[0] - cpu0[0], 2),
        "worker_cpu_s_in_window": round(cpu1[1] - cpu0[1], 2),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    bg = result["setup"]["background"]
    return [
        (
            "create p50/p95/p99",
            latency.row_text(result["create"]),
            f"goal p99 ≤ {GOAL_CREATE_P99_MS:g} ms; {result['creates_per_s']} creates/s, {result['errors']} errors",
        ),
        ("get p50/p95/p99", latency.row_text(result["get"]), "live state query"),
        (
            "background pipeline",
            f"{bg['rate_orders_per_s']} orders/s",
            f"half of {bg['ceiling_orders_per_s']}; {result['background_approved']} approved in the run",
        ),
    ]


SCENARIO = Scenario(
    name="api_latency",
    summary="create-order and get-order latency through the API at 20 clients, pipeline at half its ceiling behind",
    run=run,
    rows=rows,
    needs=("api", "worker", "temporal"),
    result_keys=("create", "get", "creates_per_s", "background_approved"),
)
