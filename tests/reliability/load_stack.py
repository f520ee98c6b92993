"""The parts the held-load test runs on, each the real thing in its own process where production has one.

- Temporal: the CLI dev server on a SQLite file (``bench.rig.DevServer``).
- The worker: ``python worker.py``, configured only by ``ICPFLOW_*`` variables, as production runs it.
- The API: ``python -m starter.cli api`` (uvicorn) on loopback, development tokens.
- The outside parties: the simulators on loopback in the test process, answering at once (``bench.rig.Outside``:
  the regulator in ``auto`` mode with a time factor of 1e-10 and every verdict an approval).
- The read model: a database of its own on the machine's PostgreSQL, created and dropped here, else a SQLite file
  (``bench.rig.read_model``).

The worker's and the API's RSS are their own (``/proc/<pid>``): neither shares an interpreter with the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.rig import (
    DevServer,
    Outside,
    bench_settings,
    cpu_seconds,
    free_port,
    read_model,
    rss_kib,
    settings_env,
    spawn,
)
from models.settings import Settings
from models.timing import TimingPolicy

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0  # a loaded 2-core machine imports the worker slowly; generous on purpose


class ChildExited(RuntimeError):
    pass


@dataclass
class Child:
    """One subprocess of the stack, its log, and what ``/proc`` says about it."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(self.argv, log=self.log, cwd=ROOT, env=self.env)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc is not None else None
            raise ChildExited(f"the {self.name} exited ({code}); its log ends with:\n{self.log_tail()}")

    async def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait, timeout)


@dataclass
class LoadStack:
    root: Path
    settings: Settings
    timing: TimingPolicy
    outside: Outside
    client: Client
    server: DevServer
    worker: Child
    api: Child
    api_url: str
    read_model: str
    setup: dict[str, object] = field(default_factory=dict)

    def check_alive(self) -> None:
        self.worker.check_alive()
        self.api.check_alive()


def child_env(settings: Settings) -> dict[str, str]:
    """The test's environment without any ``ICPFLOW_*`` of its own (an outer ``ICPFLOW_API_TOKENS`` would refuse
    the development tokens), plus the stack's settings as ``ICPFLOW_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ICPFLOW_")}
    env.update(settings_env(settings))
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def worker_polls(client: Client, settings: Settings) -> bool:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.temporal_namespace,
            task_queue=TaskQueue(name=settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers) > 0


async def start_worker(root: Path, client: Client, settings: Settings) -> Child:
    worker = Child("worker", [sys.executable, str(ROOT / "worker.py")], child_env(settings), root / "worker.log")
    worker.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    while not await worker_polls(client, settings):
        worker.check_alive()
        if loop.time() > deadline:
            raise TimeoutError(f"the worker did not poll within {START_TIMEOUT_S:g} s:\n{worker.log_tail()}")
        await asyncio.sleep(0.25)
    return worker


async def start_api(root: Path, settings: Settings, attempts: int = 3) -> tuple[Child, str]:
    """``icpflow api`` on a free loopback port, ready once ``/healthz`` answers 200. A port taken by another process
    between choosing and binding it (the machine is shared) ends the child early: retried on a new port."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        argv = [sys.executable, "-m", "starter.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
        api = Child("API", argv, child_env(settings), root / f"api-{attempt}.log")
        api.start()
        url = f"http://127.0.0.1:{port}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            while api.alive():
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        return api, url
                if loop.time() > deadline:
                    await api.stop()
                    raise TimeoutError(f"the API was not healthy within {START_TIMEOUT_S:g} s:\n{api.log_tail()}")
                await asyncio.sleep(0.25)
        if attempt == attempts:
            api.check_alive()
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def load_stack(root: Path, *, read_model_kind: str = "auto") -> AsyncIterator[LoadStack]:
    """Every part started, ready and, on exit, stopped (children first, then the server, the read model's database
    and the simulators)."""
    timing = TimingPolicy.compressed()
    outside = await Outside.start(sms_window=timing.sms_window)
    try:
        async with read_model(read_model_kind, root) as (kind, url):
            server = DevServer(root)
            settings = bench_settings(root, outside, server.address, url, task_queue=f"icp-load-{uuid.uuid4().hex[:8]}")
            children: list[Child] = []
            try:
                client = await server.start(settings)
                worker = await start_worker(root, client, settings)
                children.append(worker)
                api, api_url = await start_api(root, settings)
                children.append(api)
                yield LoadStack(
                    root=root,
                    settings=settings,
                    timing=timing,
                    outside=outside,
                    client=client,
                    server=server,
                    worker=worker,
                    api=api,
                    api_url=api_url,
                    read_model=kind,
                    setup={
                        "server": server.describe(),
                        "outside": outside.describe(),
                        "read_model": kind,
                        "worker": "python worker.py (ICPFLOW_* variables)",
                        "api": "python -m starter.cli api (uvicorn, development tokens)",
                        "timing": "TimingPolicy.compressed()",
                    },
                )
            finally:
                for child in reversed(children):
                    await child.stop()
                await server.stop()
    finally:
        await outside.stop()
