"""memory: what one parked order costs the worker in RAM.

Orders wait at the SMS-verification wait; the worker (a subprocess, so its RSS is its own) has a workflow cache
large enough to hold them all. Its RSS after ``gc.collect()`` is read from ``/proc/<pid>/status`` (VmRSS) at N₁ and
at N₂ parked orders; (RSS₂ − RSS₁)/(N₂ − N₁) is the cost of one cached, parked order in KiB (goal ≤ 25 KiB), also
given after ``malloc_trim(0)`` (without the free pages glibc's arenas keep after the activities' work). The brief's
N₁ = 2,000 and N₂ = 5,000 are the targets; when the time budget runs out first, the counts reached are used and
the result says so.

How the orders get there: first ``WALKED`` orders are walked through the pipeline (placed, documents uploaded and
verified, confirmed, reviewed, submitted), and their own per-order cost is measured the same way at that small
scale; then the thousands are parked as continued runs of the first walked order's state
(``bench.driver.ContinuedParking``: production's continue-as-new entry point), since walking each costs the worker
about 0.7 s of CPU.

Then a second worker replaces the first with a smaller cache — the SDK's default (1,000) when more orders than
that are parked, else one fifth of them (the default's ratio to 5,000) — and every parked order is touched with a
``state`` query: what RSS the smaller cache saves, and what a message to an evicted order costs (a replay of its
history) compared with one still cached.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from bench.driver import PARKED_SMS_WINDOW, ContinuedParking, PipelineDriver, park, parking_timing
from bench.rig import DevServer, Outside, WorkerProcess, bench_settings, read_model
from bench.scenarios import Context, Row, Scenario
from models.order import PlaceOrder
from models.stages import Stage, Status
from models.state import OrderState

SDK_DEFAULT_CACHE = 1000
GOAL_KIB = 25.0
SETTLE_S = 3.0  # let the last activities of the last parked orders finish before measuring
WALKED = 60  # orders taken to the wait through the pipeline (about 0.7 s of worker CPU each)
WALK_BUDGET_S = 30.0  # per half of them
PARK_CONCURRENCY = 32


async def run(ctx: Context) -> dict[str, Any]:
    targets = ctx.options.get("orders") or ([3, 8] if ctx.tiny else [2000, 5000])
    n1_target, n2_target = targets[0], targets[-1]
    budget: float = ctx.options.get("budget_s") or (60.0 if ctx.tiny else 180.0)
    walked_target = 4 if ctx.tiny else WALKED
    concurrency = 2 if ctx.tiny else 16
    timing = parking_timing()
    outside = await Outside.start(sms_window=PARKED_SMS_WINDOW)
    notes: list[str] = []
    try:
        async with read_model(ctx.read_model, ctx.work_dir) as (model_kind, url):
            server = DevServer(ctx.work_dir)
            settings = bench_settings(ctx.work_dir, outside, server.address, url)
            client = await server.start(settings)
            big_cache = max(n2_target * 2, SDK_DEFAULT_CACHE)
            worker = WorkerProcess(
                settings, ctx.work_dir, max_cached_workflows=big_cache, baseline=False, workflow_runner=ctx.runner
            )
            try:
                await worker.start()
                driver = PipelineDriver(client, settings, outside, timing)

                async def walk_one() -> tuple[PlaceOrder, WorkflowHandle[Any, Any]]:
                    order = driver.new_order()
                    return order, await driver.to_sms_verification(order, poll=0.25)

                loop = asyncio.get_running_loop()
                t0 = loop.time()
                empty = await _measure(worker, server, 0)
                # Walked orders first: the pipeline's own way to the wait, at the scale that fits.
                ctx.log(f"memory: walking {walked_target} orders through the pipeline to the SMS wait")
                half = walked_target // 2
                walked = await park(walk_one, half, concurrency=concurrency, deadline=t0 + WALK_BUDGET_S)
                walked_first = await _measure(worker, server, len(walked))
                walked += await park(
                    walk_one, walked_target - half, concurrency=concurrency, deadline=t0 + 2 * WALK_BUDGET_S
                )
                walked_second = await _measure(worker, server, len(walked))
                walk_s = loop.time() - t0
                template: OrderState = await walked[0][1].query("state", result_type=OrderState)
                parking = ContinuedParking(client, settings, template, timing)
                t1 = loop.time()
                ctx.log(f"memory: parking up to {n1_target} continued runs at the SMS wait (budget {budget:.0f} s)")
                parked = await parking.park(n1_target, concurrency=PARK_CONCURRENCY, deadline=t1 + budget * 0.4)
                rate = len(parked) / max(loop.time() - t1, 1e-9)
                first = await _measure(worker, server, len(walked) + len(parked))
                # Keep N₂/N₁ as the targets' ratio if the budget allows it, else take what fits.
                n2 = min(n2_target, round(len(parked) * n2_target / n1_target))
                if len(parked) < n1_target:
                    notes.append(
                        f"N₁ scaled down: {len(parked)} of {n1_target} orders parked within the budget "
                        f"({rate:.2f} orders/s)"
                    )
                ctx.log(f"memory: {len(parked)} parked ({rate:.1f}/s); parking up to {n2}")
                parked += await parking.park(n2 - len(parked), concurrency=PARK_CONCURRENCY, deadline=t1 + budget)
                if len(parked) < n2_target:
                    notes.append(f"N₂ scaled down: {len(parked)} of {n2_target} orders parked within the budget")
                second = await _measure(worker, server, len(walked) + len(parked))
                parking_s = loop.time() - t1
                await _all_waiting(parked)
                await worker.stop()
                eviction = await _eviction(ctx, settings, worker, walked + parked)
            finally:
                await worker.stop()
                await server.stop()
            server_info = server.describe()
    finally:
        await outside.stop()
    added = second["parked"] - first["parked"]
    per_order = (second["worker_rss_kib"] - first["worker_rss_kib"]) / added if added > 0 else None
    trimmed = (second["worker_rss_after_trim_kib"] - first["worker_rss_after_trim_kib"]) / added if added > 0 else None
    walked_added = walked_second["parked"] - walked_first["parked"]
    walked_per_order = (
        (walked_second["worker_rss_after_trim_kib"] - walked_first["worker_rss_after_trim_kib"]) / walked_added
        if walked_added > 0
        else None
    )
    return {
        "points": [empty, walked_first, walked_second, first, second],
        "kib_per_parked_order": None if per_order is None else round(per_order, 1),
        "kib_per_parked_order_after_trim": None if trimmed is None else round(trimmed, 1),
        "server_kib_per_parked_order": None
        if added <= 0
        else round((second["server_rss_kib"] - first["server_rss_kib"]) / added, 1),
        "walked": {
            "orders": len(walked),
            "kib_per_order_after_trim": None if walked_per_order is None else round(walked_per_order, 1),
            "walk_s": round(walk_s, 1),
            "rate_per_s": round(len(walked) / walk_s, 2) if walk_s else None,
        },
        "n1": first["parked"],
        "n2": second["parked"],
        "targets": [n1_target, n2_target],
        "scaled": bool(notes),
        "notes": notes,
        "parking_rate_per_s": round(len(parked) / parking_s, 2) if parking_s else None,
        "eviction": eviction,
        "goal": {"kib_per_parked_order": GOAL_KIB},
        "setup": {
            "parked_at": "sms_verification",
            "parked_how": "continued runs from a walked template (bench.driver.ContinuedParking), "
            f"after {len(walked)} orders walked through the pipeline",
            "worker": "subprocess; RSS = VmRSS of /proc/<pid>/status after gc.collect() in the worker",
            "max_cached_workflows": big_cache,
            "timing": "TimingPolicy.compressed() with reminders, idle limits and the SMS window set to days",
            "read_model": model_kind,
            "park_concurrency": PARK_CONCURRENCY,
            "walk_concurrency": concurrency,
            "server": server_info,
        },
    }


async def _all_waiting(parked: list[tuple[PlaceOrder, WorkflowHandle[Any, Any]]]) -> None:
    """Every continued run really parked: it ran its first task and waits at the SMS stage (a sample of them)."""
    for _, handle in parked[:: max(len(parked) // 10, 1)]:
        state: OrderState = await handle.query("state", result_type=OrderState)
        assert state.stage is Stage.SMS_VERIFICATION and state.status is Status.ACTIVE, (handle.id, state.stage)


async def _measure(worker: WorkerProcess, server: DevServer, parked: int) -> dict[str, Any]:
    await asyncio.sleep(SETTLE_S if parked else 0.5)
    gc = await worker.collect_garbage()
    return {
        "parked": parked,
        "worker_rss_kib": gc["rss_after_kib"],
        "worker_rss_before_gc_kib": gc["rss_before_kib"],
        "worker_rss_after_trim_kib": gc["rss_after_trim_kib"],
        "server_rss_kib": server.rss_kib(),
    }


async def _eviction(
    ctx: Context,
    settings: Any,
    first_worker: WorkerProcess,
    parked: list[tuple[PlaceOrder, WorkflowHandle[Any, Any]]],
) -> dict[str, Any]:
    """A fresh worker with a smaller cache; touch every parked order; compare cached and evicted look-ups."""
    n = len(parked)
    cache = SDK_DEFAULT_CACHE if n > SDK_DEFAULT_CACHE else max(n // 5, 1)
    worker = WorkerProcess(
        settings,
        ctx.work_dir,
        max_cached_workflows=None if cache == SDK_DEFAULT_CACHE else cache,
        baseline=False,
        workflow_runner=first_worker.workflow_runner,
        metrics_port=first_worker.metrics_port,
    )
    await worker.start()
    try:
        ctx.log(f"memory: new worker, cache {cache}; touching {n} parked orders")
        t0 = time.monotonic()
        sem = asyncio.Semaphore(8)

        async def touch(handle: WorkflowHandle[Any, Any]) -> None:
            async with sem:
                await handle.query("state", result_type=OrderState)

        await asyncio.gather(*(touch(h) for _, h in parked))
        touched_s = time.monotonic() - t0
        await asyncio.sleep(SETTLE_S)
        gc = await worker.collect_garbage()
        sample = min(20, max(cache // 2, 1), n)
        # The first orders parked were the first touched: evicted since (when n > cache). The last are cached.
        evicted = await _timed_queries([h for _, h in parked[:sample]]) if n > cache else []
        cached = await _timed_queries([h for _, h in parked[-sample:]])
    finally:
        await worker.stop()
    return {
        "cache": cache,
        "cache_is_sdk_default": cache == SDK_DEFAULT_CACHE,
        "parked": n,
        "worker_rss_kib": gc["rss_after_kib"],
        "worker_rss_after_trim_kib": gc["rss_after_trim_kib"],
        "touch_all_s": round(touched_s, 1),
        "query_cached_ms_p50": _p50(cached),
        "query_evicted_ms_p50": _p50(evicted),
        "query_evicted_ms_max": round(max(evicted), 1) if evicted else None,
    }


async def _timed_queries(handles: list[WorkflowHandle[Any, Any]]) -> list[float]:
    times = []
    for handle in handles:
        t = time.perf_counter()
        await handle.query("state", result_type=OrderState)
        times.append((time.perf_counter() - t) * 1000)
    return times


def _p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def rows(result: dict[str, Any]) -> list[Row]:
    first, second = result["points"][-2], result["points"][-1]
    verdict = ""
    if result["kib_per_parked_order"] is not None:
        verdict = "met" if result["kib_per_parked_order"] <= GOAL_KIB else "NOT met"
    out: list[Row] = [
        (
            "KiB per parked order (worker, cached)",
            str(result["kib_per_parked_order"]),
            f"goal ≤ {GOAL_KIB:.0f} — {verdict}; N₁={result['n1']}, N₂={result['n2']}"
            + (" (scaled down)" if result["scaled"] else ""),
        ),
        (
            "KiB per parked order, after malloc_trim",
            str(result["kib_per_parked_order_after_trim"]),
            "RSS less the allocator's free pages (activity high-water marks)",
        ),
        (
            "KiB per walked order, after malloc_trim",
            str(result["walked"]["kib_per_order_after_trim"]),
            f"{result['walked']['orders']} orders walked through the pipeline to the wait (small N: rough)",
        ),
        ("worker RSS at N₁ | N₂", f"{first['worker_rss_kib'] // 1024} | {second['worker_rss_kib'] // 1024} MiB", ""),
        ("server RSS at N₁ | N₂", f"{first['server_rss_kib'] // 1024} | {second['server_rss_kib'] // 1024} MiB", ""),
    ]
    e = result["eviction"]
    out.append(
        (
            f"cache {e['cache']}{' (SDK default)' if e['cache_is_sdk_default'] else ''}: worker RSS",
            f"{e['worker_rss_kib'] // 1024} MiB",
            f"query p50 cached {e['query_cached_ms_p50']} ms, evicted {e['query_evicted_ms_p50']} ms (replay)",
        )
    )
    return out


def chart(result: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = result["points"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([p["parked"] for p in points], [p["worker_rss_kib"] / 1024 for p in points], marker="o", label="worker")
    ax.plot([p["parked"] for p in points], [p["server_rss_kib"] / 1024 for p in points], marker="s", label="dev server")
    e = result["eviction"]
    ax.scatter(
        [e["parked"]], [e["worker_rss_kib"] / 1024], marker="x", color="red", label=f"worker, cache {e['cache']}"
    )
    ax.set_xlabel("orders parked at the SMS wait")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.set_title(f"{result['kib_per_parked_order']} KiB per parked order (worker)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


SCENARIO = Scenario(
    name="memory",
    summary="worker RSS per order parked at the SMS wait (cache holding all), and with a smaller cache",
    run=run,
    rows=rows,
    chart=chart,
    result_keys=("points", "kib_per_parked_order", "n1", "n2", "eviction"),
)
