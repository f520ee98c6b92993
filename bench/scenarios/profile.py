"""profile: where the worker's CPU goes for one order, sampled with py-spy attached to the worker process.

Orders go from placement to approval at a small concurrency (the worker busy but not saturated) while py-spy
samples every thread of the worker subprocess (idle threads excluded). Each sample is charged to one category, the
first in ``CATEGORIES`` that any frame of its stack matches (so the shares add up to 100 %: a socket write inside
the face vendor's HTTP call is charged to the HTTP clients, pydantic inside a workflow task to pydantic), and the
most frequent functions of icpflow and the sandbox are listed by inclusive share (with everything they call).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.driver import PipelineDriver
from bench.rig import DevServer, Outside, WorkerProcess, bench_settings, cpu_seconds, read_model, spawn
from bench.scenarios import Context, Row, Scenario
from models.timing import TimingPolicy

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE_HZ = 200

# In priority order: a sample goes to the first category any of its frames matches. Paths as py-spy prints them.
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("document checks: colour test (activities/documents.py is_colour)", r"^is_colour "),
        ("document checks: Pillow decode/resize", r"\(PIL/"),
        ("payload encryption (AES-GCM codec)", r"\(starter/codec\.py|\(cryptography/"),
        ("pydantic (validation, serialisation)", r"\(pydantic(_core)?/|temporalio/contrib/pydantic"),
        ("TLS context per HTTP client (ssl.create_default_context)", r"^create_default_context \(ssl\.py"),
        ("HTTP clients (httpx, twilio, aiohttp)", r"\((httpx|httpcore|twilio|aiohttp)/"),
        ("SMTP and e-mail rendering", r"\((aiosmtplib|email)/"),
        ("SQLAlchemy + asyncpg/aiosqlite (read model, outbox)", r"\((sqlalchemy|asyncpg|aiosqlite)/"),
        ("workflow sandbox (module re-imports, proxies)", r"\(temporalio/worker/workflow_sandbox/"),
        ("workflow code (workflows/)", r"\(workflows/"),
        ("activity code (activities/, store/)", r"\((activities|store)/"),
        ("Temporal SDK: workflow activations", r"\(temporalio/worker/_workflow"),
        ("Temporal SDK: activity dispatch", r"\(temporalio/worker/_activity"),
        ("Temporal SDK: bridge to Core (protobuf, payloads)", r"\(temporalio/(bridge|api|converter)|\(google/protobuf"),
        ("asyncio event loop and sockets", r"\((asyncio|selectors)/|\(selectors\.py|\(socket\.py"),
        ("threads (to_thread, executors)", r"\((concurrent|threading)|threading\.py"),
    )
)


async def run(ctx: Context) -> dict[str, Any]:
    orders = 2 if ctx.tiny else int((ctx.options.get("orders") or [30])[-1])
    concurrency = 1 if ctx.tiny else 4
    timing = TimingPolicy.compressed()
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)", "orders": 0, "categories": [], "top": []}
    spy_bin = str(PY_SPY) if PY_SPY.exists() else str(shutil.which("py-spy"))
    raw = ctx.work_dir / "py-spy.txt"
    outside = await Outside.start(sms_window=timing.sms_window)
    try:
        async with read_model(ctx.read_model, ctx.work_dir) as (model_kind, url):
            server = DevServer(ctx.work_dir)
            settings = bench_settings(ctx.work_dir, outside, server.address, url)
            client = await server.start(settings)
            worker = WorkerProcess(settings, ctx.work_dir, baseline=False, workflow_runner=ctx.runner)
            try:
                await worker.start()
                driver = PipelineDriver(client, settings, outside, timing)
                await driver.to_approval(driver.new_order())  # warm: imports, connections, first sandbox
                cpu0 = cpu_seconds(worker.pid)
                spy_args = ["record", "-p", str(worker.pid), "-o", str(raw), "--format", "raw", "--nonblocking"]
                spy = spawn([spy_bin, *spy_args, "--rate", str(RATE_HZ)], log=ctx.work_dir / "py-spy.log")
                await asyncio.sleep(1.0)  # py-spy attaches
                ctx.log(f"profile: {orders} orders at concurrency {concurrency}, py-spy at {RATE_HZ} Hz")
                queue = list(range(orders))

                async def user() -> None:
                    while queue:
                        queue.pop()
                        await driver.to_approval(driver.new_order())

                await asyncio.gather(*(user() for _ in range(concurrency)))
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 30)
                worker_cpu_ms = (cpu_seconds(worker.pid) - cpu0) / orders * 1000
            finally:
                await worker.stop()
                await server.stop()
    finally:
        await outside.stop()
    stacks = parse_raw(raw.read_text() if raw.exists() else "")
    return {
        "orders": orders,
        "worker_cpu_ms_per_order": round(worker_cpu_ms, 1),
        **summarise(stacks),
        "setup": {
            "sampler": f"py-spy record --format raw --rate {RATE_HZ} --nonblocking, attached to the worker subprocess",
            "concurrency": concurrency,
            "timing": "TimingPolicy.compressed()",
            "read_model": model_kind,
        },
    }


def parse_raw(text: str) -> Counter[tuple[str, ...]]:
    """py-spy's raw (collapsed) output: ``frame;frame;... count`` per line, outermost frame first."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        # "function (file.py:123)" → "function (file.py)": one entry per function, not per line.
        frames = tuple(re.sub(r":\d+\)$", ")", f) for f in stack.split(";"))
        stacks[frames] += int(count)
    return stacks


def summarise(stacks: Counter[tuple[str, ...]], top: int = 15) -> dict[str, Any]:
    total = sum(stacks.values())
    if not total:
        return {"samples": 0, "categories": [], "top": [], "workflow_share": None, "activity_share": None}
    by_category: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    workflow = activity = 0
    for frames, n in stacks.items():
        by_category[_category(frames)] += n
        for frame in set(frames):
            inclusive[frame] += n
        if any("_WorkflowWorker._handle_activation" in f for f in frames):
            workflow += n
        elif any("_ActivityWorker._execute_activity" in f or "_WorkItem.run" in f for f in frames):
            activity += n
    own = [
        (f, n)
        for f, n in inclusive.most_common()
        if re.search(r"\((activities|workflows|store|starter|models|temporalio/worker/workflow_sandbox)/", f)
    ]
    return {
        "samples": total,
        "workflow_share": round(workflow / total, 3),
        "activity_share": round(activity / total, 3),
        "categories": [{"what": c, "share": round(n / total, 3)} for c, n in by_category.most_common()],
        "top": [{"function": f, "inclusive_share": round(n / total, 3)} for f, n in own[:top]],
    }


def _category(frames: tuple[str, ...]) -> str:
    for name, pattern in CATEGORIES:
        if any(pattern.search(frame) for frame in frames):
            return name
    return "other"


def rows(result: dict[str, Any]) -> list[Row]:
    if result.get("skipped"):
        return [("skipped", result["skipped"], "")]
    out: list[Row] = [
        ("worker CPU per order", f"{result['worker_cpu_ms_per_order']} ms", f"{result['orders']} orders sampled"),
        (
            "workflow tasks | activities",
            f"{result['workflow_share']:.0%} | {result['activity_share']:.0%}",
            "share of worker samples",
        ),
    ]
    for c in result["categories"][:8]:
        out.append((c["what"], f"{c['share']:.0%}", ""))
    return out


SCENARIO = Scenario(
    name="profile",
    summary="where the worker's CPU goes for one order (py-spy on the worker subprocess)",
    run=run,
    rows=rows,
    result_keys=("orders", "worker_cpu_ms_per_order", "categories", "top"),
)
