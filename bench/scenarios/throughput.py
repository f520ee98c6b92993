"""throughput: orders per second through the whole pipeline, against a no-op baseline of the same shape.

At each concurrency of a ramp, closed-loop "users" each take one order after another from placement to approval;
the real pipeline (A) and the baseline (B, ``bench/baseline.py``) alternate A B A B on the same server and the same
worker process, so a drift of the machine (other processes, a warming cache) hits both. A round warms up for about
one order's latency, then counts the orders finishing inside its window; what still runs at its end is terminated.

Reported per step: orders/s of each, the ratio pipeline ÷ baseline (goal ≥ 0.9), placement-to-approval latency
p50/p95, the worker's workflow-task schedule-to-start latency (from its SDK metrics) and the CPU seconds the worker
and the server spent per order. The ramp stops at the first step whose pipeline schedule-to-start p95 passes 1 s
(the worker no longer keeps up with its workflow tasks), or once throughput stops growing (a step adds < 10 % over
the best before it: the bottleneck is elsewhere, and more concurrency only adds latency), or at its time budget.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any, Protocol

from bench import metrics
from bench.baseline_io import BaselineInput
from bench.driver import BaselineDriver, PipelineDriver
from bench.rig import (
    DevServer,
    Outside,
    WorkerProcess,
    baseline_queue,
    bench_settings,
    cpu_seconds,
    read_model,
)
from bench.scenarios import Context, Row, Scenario
from bench.shape import compare, shape_of
from models.state import OrderState
from models.timing import TimingPolicy

SATURATED_MS = 1000.0  # workflow-task schedule-to-start p95 past which the ramp stops
GOAL_RATIO = 0.9
WARMUP_MAX_S = 20.0
ROUND_GAP_S = 1.0  # after terminating a round's leftovers, let their last activity attempts end
PLATEAU_GAIN = 1.1  # a step must add 10 % over the best before it, or the ramp stops


class Runner(Protocol):
    """What a round drives: the pipeline, the baseline — and, later, the HTTP API."""

    def new_order(self) -> Any: ...

    def workflow_id(self, order: Any) -> str: ...

    async def to_approval(self, order: Any) -> Any: ...


async def run(ctx: Context) -> dict[str, Any]:
    ramp: list[int] = ctx.options.get("concurrency") or ([1] if ctx.tiny else [1, 2, 4, 8, 16, 32])
    window: float = ctx.options.get("window_s") or (4.0 if ctx.tiny else 12.0)
    budget: float = ctx.options.get("budget_s") or (120.0 if ctx.tiny else 240.0)
    rounds = ("pipeline", "baseline") if ctx.tiny else ("pipeline", "baseline", "pipeline", "baseline")
    timing = TimingPolicy.compressed()
    outside = await Outside.start(sms_window=timing.sms_window)
    started = time.monotonic()
    try:
        async with read_model(ctx.read_model, ctx.work_dir) as (model_kind, url):
            server = DevServer(ctx.work_dir)
            settings = bench_settings(ctx.work_dir, outside, server.address, url)
            client = await server.start(settings)
            worker = WorkerProcess(settings, ctx.work_dir, baseline=True, workflow_runner=ctx.runner)
            try:
                await worker.start()
                runners: dict[str, tuple[Runner, str]] = {
                    "pipeline": (PipelineDriver(client, settings, outside, timing), settings.task_queue),
                    "baseline": (
                        BaselineDriver(client, baseline_queue(settings), BaselineInput.like(timing)),
                        baseline_queue(settings),
                    ),
                }
                ctx.log("throughput: warm-up, one order of each, and their shapes")
                shape, latency = await _shapes(client, runners)
                steps: list[dict[str, Any]] = []
                stop_reason = f"ramp ended at {ramp[-1]}"
                for concurrency in ramp:
                    measured = []
                    for kind in rounds:
                        runner, queue = runners[kind]
                        last_c, last_latency = latency[kind]
                        # Steady state comes about one order's latency after the users start.
                        warmup = min(max(last_latency * concurrency / last_c, 2.0), WARMUP_MAX_S)
                        r = await _round(client, runner, queue, concurrency, warmup, window, worker, server)
                        measured.append((kind, r))
                        if r["latencies"]:
                            latency[kind] = (concurrency, statistics.median(r["latencies"]))
                    step = _step(concurrency, window, measured)
                    steps.append(step)
                    ctx.log(
                        f"throughput: c={concurrency} pipeline {step['pipeline']['orders_per_s']}/s, baseline "
                        f"{step['baseline']['orders_per_s']}/s, ratio {step['ratio']}, WFT schedule-to-start p95 "
                        f"{step['pipeline']['wft_schedule_to_start_p95_ms']} ms"
                    )
                    p95 = step["pipeline"]["wft_schedule_to_start_p95_ms"]
                    if p95 is not None and p95 > SATURATED_MS:
                        stop_reason = f"workflow-task schedule-to-start p95 {p95:.0f} ms > 1 s at c={concurrency}"
                        break
                    plateau = _plateau(steps)
                    if plateau:
                        stop_reason = plateau
                        break
                    if time.monotonic() - started > budget:
                        stop_reason = f"time budget ({budget:.0f} s) spent after c={concurrency}"
                        break
            finally:
                await worker.stop()
                await server.stop()
            server_info = server.describe()
    finally:
        await outside.stop()
    return {
        "steps": steps,
        "stop_reason": stop_reason,
        "best": _best(steps),
        "shape": shape,
        "goal": {"ratio": GOAL_RATIO, "saturation_wft_schedule_to_start_p95_ms": SATURATED_MS},
        "setup": {
            "window_s": window,
            "warmup": "about one order's latency at that concurrency (2–20 s), not counted",
            "rounds_per_step": list(rounds),
            "ramp": ramp,
            "timing": "TimingPolicy.compressed()",
            "worker": "subprocess (python -m bench.worker_proc): real activities + baseline, own GIL and event loop",
            "why_subprocess": "the driver and simulators must not share the worker's interpreter, and its metrics "
            "and CPU time must be its own",
            "driver": "closed loop; stage waits poll describe (server-side), updates go to the workflow handle; "
            "orders still running when a round ends are terminated, not counted",
            "read_model": model_kind,
            "server": server_info,
            "outside": outside.describe(),
        },
    }


async def _shapes(
    client: Any, runners: dict[str, tuple[Runner, str]]
) -> tuple[dict[str, Any], dict[str, tuple[int, float]]]:
    """One order of each, alone: their histories' shapes, and their latency (the first warm-up estimate)."""
    found, latency = {}, {}
    for kind, (runner, _) in runners.items():
        order = runner.new_order()
        t = time.monotonic()
        await runner.to_approval(order)
        latency[kind] = (1, time.monotonic() - t)
        found[kind] = await shape_of(client.get_workflow_handle(runner.workflow_id(order)))
    return compare(found["pipeline"], found["baseline"]), latency


async def _round(
    client: Any,
    runner: Runner,
    queue: str,
    concurrency: int,
    warmup: float,
    window: float,
    worker: WorkerProcess,
    server: DevServer,
) -> dict[str, Any]:
    """``concurrency`` users for ``warmup`` + ``window`` seconds; only what finishes inside the window counts."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    begin, end = t0 + warmup, t0 + warmup + window
    latencies: list[float] = []
    in_flight: set[str] = set()
    failures: list[str] = []
    drifted = 0
    over = False

    async def user() -> None:
        nonlocal drifted
        while not over:
            order = runner.new_order()
            workflow_id = runner.workflow_id(order)
            in_flight.add(workflow_id)
            start = loop.time()
            try:
                final = await runner.to_approval(order)
            except Exception as e:  # one failed order is a figure, not the end of the run
                if not over:  # the client turns a cancelled call into an error of its own
                    failures.append(f"{type(e).__name__}: {e}"[:300])
                continue
            in_flight.discard(workflow_id)
            done = loop.time()
            if begin <= done <= end:
                latencies.append(done - start)
                if isinstance(final, OrderState) and (final.reminders_sent or final.escalated):
                    drifted += 1  # a timer fired: this order took a longer path than the happy one

    users = [asyncio.create_task(user()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    before = metrics.scrape(worker.metrics_url)
    cpu_before = (cpu_seconds(worker.pid), cpu_seconds(server.pid))
    await asyncio.sleep(max(end - loop.time(), 0))
    after = metrics.scrape(worker.metrics_url)
    cpu_after = (cpu_seconds(worker.pid), cpu_seconds(server.pid))
    over = True
    for task in users:
        task.cancel()
    await asyncio.gather(*users, return_exceptions=True)
    # The next round must start on an idle worker: what is still running is stopped, not waited for.
    await asyncio.gather(
        *(client.get_workflow_handle(w).terminate("bench round over") for w in in_flight), return_exceptions=True
    )
    await asyncio.sleep(ROUND_GAP_S)
    sts = metrics.histogram(after, metrics.SCHEDULE_TO_START, task_queue=queue).minus(
        metrics.histogram(before, metrics.SCHEDULE_TO_START, task_queue=queue)
    )
    counted = max(len(latencies), 1)
    return {
        "orders": len(latencies),
        "latencies": latencies,
        "warmup_s": round(warmup, 1),
        "terminated": len(in_flight),
        "wft_schedule_to_start": sts,
        "worker_cpu_s": cpu_after[0] - cpu_before[0],
        "server_cpu_s": cpu_after[1] - cpu_before[1],
        "worker_cpu_ms_per_order": (cpu_after[0] - cpu_before[0]) / counted * 1000,
        "failures": failures,
        "drifted": drifted,
    }


def _plateau(steps: list[dict[str, Any]]) -> str | None:
    """Throughput that stopped growing: more concurrency now only adds latency."""
    if len(steps) < 3:
        return None
    best_before = max(s["pipeline"]["orders_per_s"] for s in steps[:-1])
    now = steps[-1]["pipeline"]["orders_per_s"]
    if now < best_before * PLATEAU_GAIN:
        c = steps[-1]["concurrency"]
        return (
            f"pipeline throughput plateaued at c={c} ({now} orders/s, best before {best_before}): more concurrency "
            "only adds latency"
        )
    return None


def _step(concurrency: int, window: float, measured: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    step: dict[str, Any] = {"concurrency": concurrency}
    for kind in ("pipeline", "baseline"):
        rounds = [r for k, r in measured if k == kind]
        latencies = sorted(x for r in rounds for x in r["latencies"])
        orders = sum(r["orders"] for r in rounds)
        sts = rounds[0]["wft_schedule_to_start"]
        for r in rounds[1:]:
            sts = _add(sts, r["wft_schedule_to_start"])
        counted = max(orders, 1)
        step[kind] = {
            "orders": orders,
            "orders_per_s": round(orders / (window * len(rounds)), 3),
            "per_round_orders_per_s": [round(r["orders"] / window, 3) for r in rounds],
            "latency_p50_s": _q(latencies, 0.5),
            "latency_p95_s": _q(latencies, 0.95),
            "wft_schedule_to_start_p50_ms": _round_or_none(sts.quantile(0.5)),
            "wft_schedule_to_start_p95_ms": _round_or_none(sts.quantile(0.95)),
            "worker_cpu_ms_per_order": round(sum(r["worker_cpu_s"] for r in rounds) / counted * 1000, 1),
            "server_cpu_ms_per_order": round(sum(r["server_cpu_s"] for r in rounds) / counted * 1000, 1),
            "failures": [f for r in rounds for f in r["failures"]][:10],
            "failed": sum(len(r["failures"]) for r in rounds),
            "took_a_longer_path": sum(r["drifted"] for r in rounds),
            "warmup_s": [r["warmup_s"] for r in rounds],
            "terminated_at_round_end": [r["terminated"] for r in rounds],
        }
    base = step["baseline"]["orders_per_s"]
    step["ratio"] = round(step["pipeline"]["orders_per_s"] / base, 3) if base else None
    worker_base = step["baseline"]["worker_cpu_ms_per_order"]
    step["worker_cpu_ratio"] = (
        round(worker_base / step["pipeline"]["worker_cpu_ms_per_order"], 3)
        if step["pipeline"]["worker_cpu_ms_per_order"]
        else None
    )
    return step


def _best(steps: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The step with the most pipeline orders/s among those the worker kept up with (p95 ≤ 1 s)."""
    healthy = [
        s
        for s in steps
        if s["pipeline"]["wft_schedule_to_start_p95_ms"] is not None
        and s["pipeline"]["wft_schedule_to_start_p95_ms"] <= SATURATED_MS
    ] or steps
    if not healthy:
        return None
    best = max(healthy, key=lambda s: s["pipeline"]["orders_per_s"])
    return {
        "concurrency": best["concurrency"],
        "pipeline_orders_per_s": best["pipeline"]["orders_per_s"],
        "baseline_orders_per_s": best["baseline"]["orders_per_s"],
        "ratio": best["ratio"],
        "latency_p50_s": best["pipeline"]["latency_p50_s"],
        "latency_p95_s": best["pipeline"]["latency_p95_s"],
        "worker_cpu_ratio": best["worker_cpu_ratio"],
    }


def _add(a: metrics.Histogram, b: metrics.Histogram) -> metrics.Histogram:
    return metrics.Histogram(
        buckets={le: a.buckets.get(le, 0.0) + b.buckets.get(le, 0.0) for le in set(a.buckets) | set(b.buckets)},
        count=a.count + b.count,
        total=a.total + b.total,
    )


def _q(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return round(sorted_values[0], 3)
    return round(statistics.quantiles(sorted_values, n=100, method="inclusive")[int(q * 100) - 1], 3)


def _round_or_none(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def rows(result: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for s in result["steps"]:
        p, b = s["pipeline"], s["baseline"]
        out.append(
            (
                f"c={s['concurrency']}: orders/s pipeline | baseline",
                f"{p['orders_per_s']} | {b['orders_per_s']}",
                f"ratio {s['ratio']} (goal ≥ {GOAL_RATIO}); p50/p95 {p['latency_p50_s']}/{p['latency_p95_s']} s; "
                f"WFT s2s p95 {p['wft_schedule_to_start_p95_ms']} ms",
            )
        )
    best = result.get("best")
    if best:
        verdict = "met" if best["ratio"] is not None and best["ratio"] >= GOAL_RATIO else "NOT met"
        out.append(
            (
                "best (worker keeping up)",
                f"{best['pipeline_orders_per_s']} orders/s at c={best['concurrency']}",
                f"ratio {best['ratio']} — goal {verdict}; worker CPU ratio {best['worker_cpu_ratio']}",
            )
        )
    out.append(("stopped", result["stop_reason"], ""))
    shape = result["shape"]
    out.append(
        (
            "baseline mirrors the order",
            "yes" if shape["matches"] else f"NO: {', '.join(shape['mismatched'])}",
            ", ".join(f"{k} {v}" for k, v in shape["pipeline"].items()),
        )
    )
    return out


def chart(result: dict[str, Any], path: Path) -> bool:
    steps = result["steps"]
    if not steps:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = [s["concurrency"] for s in steps]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(c, [s["pipeline"]["orders_per_s"] for s in steps], marker="o", label="pipeline")
    left.plot(c, [s["baseline"]["orders_per_s"] for s in steps], marker="s", label="baseline (no-op, same shape)")
    left.set_xscale("log", base=2)
    left.set_xlabel("concurrent orders (closed loop)")
    left.set_ylabel("orders/s")
    left.set_ylim(bottom=0)
    ratio_axis = left.twinx()
    ratio_axis.plot(c, [s["ratio"] or 0 for s in steps], color="grey", linestyle="--", label="ratio")
    ratio_axis.axhline(GOAL_RATIO, color="grey", linewidth=0.5)
    ratio_axis.set_ylim(0, 1.2)
    ratio_axis.set_ylabel("pipeline ÷ baseline")
    left.legend(loc="upper left", fontsize=8)
    right.plot(c, [s["pipeline"]["latency_p50_s"] or 0 for s in steps], marker="o", label="p50")
    right.plot(c, [s["pipeline"]["latency_p95_s"] or 0 for s in steps], marker="o", label="p95")
    right.set_xscale("log", base=2)
    right.set_xlabel("concurrent orders")
    right.set_ylabel("placement → approval (s)")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


SCENARIO = Scenario(
    name="throughput",
    summary="orders/s of the real pipeline vs a no-op baseline of the same shape, over a concurrency ramp",
    run=run,
    rows=rows,
    chart=chart,
    result_keys=("steps", "best", "stop_reason", "shape"),
)
