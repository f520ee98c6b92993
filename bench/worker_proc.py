"""``python -m bench.worker_proc``: the real worker as its own process, for the benchmarks.

Configured like production (``ICPFLOW_*`` variables), plus:

- ``BENCH_METRICS_PORT``: the SDK's metrics for Prometheus on 127.0.0.1 (the Temporal runtime of this process);
- ``BENCH_MAX_CACHED_WORKFLOWS``: the worker's workflow cache (default: the SDK's);
- ``BENCH_BASELINE=1``: also run the baseline workflow on ``<task queue>-baseline`` in this process;
- ``BENCH_WORKFLOW_RUNNER``: ``sandboxed`` (default: production's sandbox, ``worker.workflow_runner``) or
  ``unsandboxed`` — to measure what the sandbox costs, never to run production;
- ``BENCH_CONTROL_DIR``: ``ready`` is written there once both workers poll; on SIGUSR1 the worker runs
  ``gc.collect()`` and writes ``gc-<n>.json`` with its RSS before and after (KiB), and after ``malloc_trim(0)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner

from bench.metrics import HISTOGRAM_BUCKETS_MS
from bench.rig import baseline_queue, rss_kib
from models.settings import Settings


async def main() -> None:
    settings = Settings()
    control = Path(os.environ["BENCH_CONTROL_DIR"])
    metrics_port = os.environ.get("BENCH_METRICS_PORT")
    if metrics_port:
        # Set before the client connects: the client's runtime is the one whose metrics the worker reports.
        Runtime.set_default(
            Runtime(
                telemetry=TelemetryConfig(
                    metrics=PrometheusConfig(
                        bind_address=f"127.0.0.1:{metrics_port}",
                        histogram_bucket_overrides=HISTOGRAM_BUCKETS_MS,
                    )
                )
            )
        )
    from bench.baseline import baseline_worker
    from starter.client import connect
    from worker import build_activities, build_worker

    options: dict[str, Any] = {}
    runner = os.environ.get("BENCH_WORKFLOW_RUNNER", "sandboxed")
    if runner == "unsandboxed":
        options["workflow_runner"] = UnsandboxedWorkflowRunner()
    if "BENCH_MAX_CACHED_WORKFLOWS" in os.environ:
        options["max_cached_workflows"] = int(os.environ["BENCH_MAX_CACHED_WORKFLOWS"])
    client = await connect(settings)
    wiring = build_activities(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gc_requests = 0

    def collect() -> None:
        nonlocal gc_requests
        gc_requests += 1
        before = rss_kib(os.getpid())
        collected = gc.collect()
        after = rss_kib(os.getpid())
        # Then hand the allocator's free pages back to the system: what remains is memory in use, without the
        # high-water marks activities leave in glibc's per-thread arenas (Pillow decodes megabytes per document).
        trimmed = after
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            trimmed = rss_kib(os.getpid())
        report = {
            "rss_before_kib": before,
            "rss_after_kib": after,
            "rss_after_trim_kib": trimmed,
            "collected": collected,
        }
        tmp = control / f".gc-{gc_requests}.json"
        tmp.write_text(json.dumps(report))
        tmp.replace(control / f"gc-{gc_requests}.json")

    loop.add_signal_handler(signal.SIGUSR1, collect)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(build_worker(client, settings, wiring, **options))
        if os.environ.get("BENCH_BASELINE") == "1":
            await stack.enter_async_context(baseline_worker(client, baseline_queue(settings), **options))
        (control / "ready").write_text(str(os.getpid()))
        await stop.wait()
    await wiring.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main())
