"""The real processes of the crash tests: a Temporal dev server on a SQLite file that can be SIGKILLed and started
again on the same file and port, and crash workers (``python -m tests.reliability.crash_worker``).

The simulators (``bench.rig.Outside``: regulator in auto mode approving at once, SMS and SMTP sinks, RDAP, face
vendor) run in the test's own event loop, as in the benchmarks.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.rig import DevServer as BenchDevServer
from bench.rig import settings_env, spawn, terminate
from models.settings import Settings
from models.timing import TimingPolicy
from tests.reliability.crash_worker import KILLS, SETTLES, SETTLING, read_jsonl

# Orders flow in real seconds (the compressed demo profile), except that nothing an order waits on while the test
# crashes things may fire by itself: no reminder, no idle pause, no SMS expiry, no overdue review, no dependency
# alert. ``dependency_patience`` is also how long an activity killed with its worker takes to be scheduled again
# (its schedule-to-close timeout): long enough that a busy but live activity is never run twice, short enough to
# keep the matrix quick.
CRASH_TIMING = TimingPolicy.compressed().model_copy(
    update={
        "reminder_interval": timedelta(hours=1),
        "collection_idle_limit": timedelta(hours=2),
        "confirmation_idle_limit": timedelta(hours=2),
        "sms_window": timedelta(hours=1),
        "dependency_patience": timedelta(seconds=30),
        "dependency_alert_after": timedelta(hours=1),
        "business_day_scale": 1 / 864,  # a calendar day is 100 s: 2 business days of initial review ≥ 200 s
    }
)
SMS_WINDOW = timedelta(hours=1)  # the regulator's own window, as long as the orders'
SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal"}


class DevServer(BenchDevServer):
    """The benchmarks' dev server (a SQLite file, icpflow's search attributes) that can also be SIGKILLed and
    started again on the same file and port, so clients and workers reconnect to the same address."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, pragmas=SQLITE_PRAGMAS)
        self.starts = 0

    def args(self) -> list[str]:
        args = super().args()
        if self.starts > 1:
            # The search attributes live in the file already: registering them again is refused.
            args = [a for a in args if a != "--search-attribute" and not a.startswith("Icp")]
        return args

    async def start(self, settings: Settings, attempts: int = 3) -> Client:
        """Start the server, again on the same port after a kill, and return a connected client."""
        self.starts += 1
        return await super().start(settings, attempts=attempts if self.starts == 1 else 1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@dataclass
class CrashWorker:
    """One crash worker process at a time for one task queue; ``start`` again after it died."""

    settings: Settings
    control: Path
    points: str = ""  # CRASH_POINTS (name=spec;…); empty: a plain worker
    gather: int = 20
    gather_seconds: float = 10.0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # When (time.time()) the death of each dead process was noticed, by its pid.
    died: dict[int, float] = field(default_factory=dict)

    @property
    def deaths(self) -> list[float]:
        """When each death was noticed, in order."""
        return sorted(self.died.values())

    @property
    def log(self) -> Path:
        return self.control / "worker.log"

    async def start(self, *, armed: bool = True, timeout: float = 300) -> None:
        self.control.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **settings_env(self.settings),
            "ICPFLOW_LOG_LEVEL": "WARNING",
            "CRASH_DIR": str(self.control),
            "CRASH_POINTS": self.points if armed else "",
            "CRASH_GATHER": str(self.gather),
            "CRASH_GATHER_SECONDS": str(self.gather_seconds),
        }
        self.proc = spawn([sys.executable, "-m", "tests.reliability.crash_worker"], log=self.log, env=env)
        self.starts += 1
        ready = self.control / f"ready-{self.proc.pid}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                if self.proc.returncode == -signal.SIGKILL:
                    return  # armed and killed itself before we even looked: the supervisor starts it again
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the crash worker exited ({self.proc.returncode}):\n{tail}")
            if loop.time() > deadline:
                raise TimeoutError("the crash worker did not start polling in time")
            await asyncio.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL from outside (the workflow-side points: while updates are in flight, while orders wait)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def kills(self) -> list[dict[str, Any]]:
        """Every order the worker caught at its point, as it recorded them just before dying."""
        return read_jsonl(self.control / KILLS)

    def settles(self) -> list[dict[str, Any]]:
        """Every outbox commit of a ``sent`` notice, as the worker recorded it once the commit finished."""
        return read_jsonl(self.control / SETTLES)

    def settling(self) -> list[dict[str, Any]]:
        """Every such commit as it began (a kill can land between the commit and its ``settles`` line)."""
        return read_jsonl(self.control / SETTLING)

    async def stop(self) -> None:
        await terminate(self.proc)


async def supervise(worker: CrashWorker, *, rearm: bool, stop: asyncio.Event) -> None:
    """Start the worker again whenever it dies (by its own hand or the test's), as a process manager would;
    ``rearm``: armed again (it skips the orders it already killed at each point), else plain."""
    while not stop.is_set():
        if worker.proc is not None and worker.proc.poll() is not None:
            worker.died[worker.proc.pid] = time.time()
            await worker.start(armed=rearm)
            continue
        await asyncio.sleep(0.2)
