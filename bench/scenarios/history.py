"""history: how many events one order writes, by the length of the administration's review and by the number of
automatic resubmissions (an SMS code left to expire, then the order resubmitted by itself).

Goal: flat in review length — the review poll is one activity retried at the poll interval, so retries add no
events. Each resubmission adds one submission round (a fixed number of events), so that column grows by steps.

Runs on the dev server with per-workflow time skipping v2 (as ``tests/conftest.py``): each order's clock is moved
with ``fast_forward``; the server's own time-skipping bookkeeping events are not counted (production has none),
as in ``tests/workflows/test_history.py``. The worker runs in-process: this scenario counts events, not seconds.
The regulator is in manual mode: the driver approves on the chosen business day.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

from activities.calendar import BusinessCalendar, business_deadline
from bench.driver import PipelineDriver
from bench.rig import DEFAULT_PRAGMAS, TEMPORAL_CLI, Outside, bench_settings, in_process_worker, read_model
from bench.scenarios import Context, Row, Scenario
from models import search
from models.activity_io import BusinessDeadline
from models.stages import Stage
from models.state import OrderState
from models.timing import TimingPolicy
from starter.codec import data_converter

TIME_SKIPPING_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIME_SKIPPING_TRANSITIONED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
}
MAX_RESUBMISSIONS = 3
# Flat means: the longest review writes at most this many events more than the shortest.
FLAT_TOLERANCE = 4


def history_timing() -> TimingPolicy:
    """The compressed profile, polling the regulator once per (compressed) day instead of every second: under time
    skipping each poll costs real time (a worker round trip), and how often the poll retries is exactly what must
    not change the history."""
    compressed = TimingPolicy.compressed()
    return compressed.model_copy(update={"review_poll_interval": timedelta(days=1) * compressed.business_day_scale})


def _cases(ctx: Context) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if ctx.tiny:
        return (1, 5), (0, 1)
    return tuple(ctx.options.get("review_days") or (1, 5, 10, 20)), (0, 1, 3)


async def run(ctx: Context) -> dict[str, Any]:
    review_days, resubmissions = _cases(ctx)
    timing = history_timing()
    outside = await Outside.start(sms_window=timing.sms_window, manual=True)
    try:
        async with read_model(ctx.read_model, ctx.work_dir) as (model_kind, url):
            settings = bench_settings(ctx.work_dir, outside, "", url)
            extra = ["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"]
            for name, value in DEFAULT_PRAGMAS.items():
                extra += ["--sqlite-pragma", f"{name}={value}"]
            env = await WorkflowEnvironment.start_time_skipping_v2(
                ts_config=TimeSkippingConfig(enabled=False),
                dev_server_existing_path=str(TEMPORAL_CLI),
                dev_server_database_filename=str(ctx.work_dir / "temporal.db"),
                dev_server_extra_args=extra,
                search_attributes=search.ALL,
                data_converter=data_converter(settings),
            )
            try:
                async with in_process_worker(env.client, settings):
                    driver = PipelineDriver(env.client, settings, outside, timing, patient=True)
                    calendar = BusinessCalendar.load()
                    cases = [(d, 0) for d in review_days] + [(review_days[0], r) for r in resubmissions if r > 0]
                    ctx.log(f"history: {len(cases)} orders (review days × resubmissions), time-skipped")
                    found = await asyncio.gather(
                        *(_one_order(env, driver, outside, calendar, timing, d, r) for d, r in cases)
                    )
            finally:
                await env.shutdown()
    finally:
        await outside.stop()
    by_case = {(f["review_business_days"], f["resubmissions"]): f for f in found}
    by_review = [by_case[(d, 0)] for d in review_days]
    by_resubmission = [by_case[(review_days[0], r)] for r in resubmissions]
    spread = max(f["events"] for f in by_review) - min(f["events"] for f in by_review)
    steps = [b["events"] - a["events"] for a, b in itertools.pairwise(by_resubmission)]
    return {
        "by_review_days": by_review,
        "by_resubmissions": by_resubmission,
        "review_spread_events": spread,
        "flat_in_review_length": spread <= FLAT_TOLERANCE,
        "events_per_resubmission": [
            round(s / (b["resubmissions"] - a["resubmissions"]), 1)
            for s, (a, b) in zip(steps, itertools.pairwise(by_resubmission), strict=True)
        ],
        "goal": {"flat_in_review_length": True, "tolerance_events": FLAT_TOLERANCE},
        "setup": {
            "server": "dev server, time skipping v2 (fast_forward per order)",
            "worker": "in-process (events are counted, not timed)",
            "timing": "TimingPolicy.compressed(), review poll once per compressed day (10 s)",
            "read_model": model_kind,
            "regulator": "manual: approved by the driver on the chosen business day",
            "driver": "patient: acts only when the order is quiet, so every wait starts its timer",
            "sqlite_pragmas": DEFAULT_PRAGMAS,
            "excluded_events": sorted(EventType.Name(e) for e in TIME_SKIPPING_EVENTS),
        },
    }


async def _one_order(
    env: WorkflowEnvironment,
    driver: PipelineDriver,
    outside: Outside,
    calendar: BusinessCalendar,
    timing: TimingPolicy,
    review_days: int,
    resubmissions: int,
) -> dict[str, Any]:
    order = driver.new_order(max_auto_resubmissions=MAX_RESUBMISSIONS)
    handle = await driver.to_sms_verification(order)
    for n in range(resubmissions):
        # The applicant never enters the code: the window lapses and the order resubmits itself.
        await env.fast_forward(handle, timing.sms_window + timedelta(seconds=1))
        await _until(handle, lambda s, n=n: s.stage is Stage.SMS_VERIFICATION and len(s.submissions) == n + 2)
    await driver.enter_code(order, handle)
    review = await _until(handle, lambda s: s.stage is Stage.ADMINISTRATION_REVIEW)
    started = next(t.at for t in reversed(review.timeline) if t.stage is Stage.ADMINISTRATION_REVIEW)
    poll = timing.review_poll_interval
    last_day_ends = business_deadline(
        calendar, BusinessDeadline(start=started, business_days=review_days, scale=timing.business_day_scale)
    ).at
    # Approve within the chosen business day, early enough that the next poll still falls inside it.
    skip = max(last_day_ends - review.updated_at - poll * 3, poll)
    await env.fast_forward(handle, skip)
    submission = review.current_submission
    assert submission is not None
    await outside.decide(submission.submission_id)
    await env.fast_forward(handle, poll * 2)
    final = await _until(handle, lambda s: s.stage.terminal)
    await handle.result()
    counted = await _count_events(handle)
    return {
        "review_business_days": review_days,
        "resubmissions": resubmissions,
        "order_id": order.order_id,
        "final_stage": final.stage.value,
        "submissions": len(final.submissions),
        "virtual_review_s": round(skip.total_seconds() + (poll * 2).total_seconds(), 1),
        **counted,
    }


async def _until(handle: WorkflowHandle[Any, Any], predicate: Any, timeout: float = 120) -> OrderState:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state: OrderState = await handle.query("state", result_type=OrderState)
        if predicate(state):
            return state
        if loop.time() > deadline:
            raise TimeoutError(f"{handle.id} stuck at {state.stage.value} ({state.status.value})")
        await asyncio.sleep(0.1)


async def _count_events(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    history = await handle.fetch_history()
    kinds = Counter(
        EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        for e in history.events
        if e.event_type not in TIME_SKIPPING_EVENTS
    )
    return {
        "events": sum(kinds.values()),
        "activities": kinds["ACTIVITY_TASK_SCHEDULED"],
        "timers": kinds["TIMER_STARTED"],
        "workflow_tasks": kinds["WORKFLOW_TASK_SCHEDULED"],
        "updates": kinds["WORKFLOW_EXECUTION_UPDATE_ACCEPTED"],
    }


def rows(result: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for f in result["by_review_days"]:
        out.append((f"events, review of {f['review_business_days']} business day(s)", str(f["events"]), ""))
    out.append(
        (
            "spread over review lengths",
            f"{result['review_spread_events']} events",
            f"goal: flat (≤ {FLAT_TOLERANCE}) — {'met' if result['flat_in_review_length'] else 'NOT met'}",
        )
    )
    for f in result["by_resubmissions"]:
        out.append((f"events, {f['resubmissions']} resubmission(s)", str(f["events"]), ""))
    return out


def chart(result: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    top = max(f["events"] for f in result["by_review_days"] + result["by_resubmissions"]) * 1.15
    days = [f["review_business_days"] for f in result["by_review_days"]]
    left.plot(days, [f["events"] for f in result["by_review_days"]], marker="o")
    left.set_xlabel("administration review (business days)")
    left.set_ylabel("history events per order")
    left.set_ylim(0, top)
    left.set_title("flat in review length")
    resub = [f["resubmissions"] for f in result["by_resubmissions"]]
    bars = right.bar([str(r) for r in resub], [f["events"] for f in result["by_resubmissions"]])
    right.bar_label(bars)
    right.set_ylim(0, top)
    right.set_xlabel("automatic resubmissions (SMS expired)")
    right.set_title("one step per resubmission")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


SCENARIO = Scenario(
    name="history",
    summary="events per order by review length and by resubmissions (time-skipping dev server)",
    run=run,
    rows=rows,
    chart=chart,
    result_keys=("by_review_days", "by_resubmissions", "review_spread_events", "flat_in_review_length"),
)
