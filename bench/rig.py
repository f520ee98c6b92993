"""The bench rig: the real parts an order runs on, started and stopped by a scenario.

- ``DevServer``: ``temporal server start-dev`` from the venv on a SQLite file (pragmas recorded in each result),
  as a child process, so its RSS can be read from ``/proc``.
- ``Outside``: the simulators on loopback in the bench process, answering at once: the regulator decides in
  ``auto`` mode with a time factor so small the verdict is due before the first poll (approve ratio 1).
- ``WorkerProcess``: the real worker (``worker.build_activities`` / ``build_worker``, plus the baseline) as a
  subprocess (``python -m bench.worker_proc``): it has its own interpreter, event loop and GIL, as in production,
  so the driver's and simulators' CPU does not count as the worker's, and its RSS is its own.
- ``in_process_worker``: the same worker in the bench's own event loop, for scenarios that count events, not
  seconds or bytes (history, profile).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from temporalio.client import Client
from temporalio.worker import Worker

from models import search
from models.settings import Settings
from simulators.face_vendor import FaceVendorSimulator
from simulators.rdap import RdapSimulator
from simulators.regulator import RegulatorSimulator
from simulators.sms_sink import SmsSink
from simulators.smtp_sink import SmtpSink
from starter.client import connect
from store import db

ROOT = Path(__file__).resolve().parents[1]
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"

# The dev server's CLI accepts only these two pragmas (``--sqlite-pragma``); WAL with NORMAL sync is what a
# single-node SQLite deployment would choose: durable across a process crash, not across a power cut.
DEFAULT_PRAGMAS: dict[str, str] = {"journal_mode": "wal", "synchronous": "normal"}

# The regulator's verdict comes 1–20 business days × time factor after verification: at 1e-10 that is under a
# millisecond, so the first poll finds it decided and the order never waits a poll interval.
INSTANT_TIME_FACTOR = 1e-10

TWILIO_SID = "AC" + "b" * 32
TWILIO_TOKEN = "bench-token"
REGULATOR_KEY = "bench-regulator-key"
# Payloads are encrypted as in production; this key exists only for bench runs.
CODEC_KEYS = json.dumps({"bench-1": base64.b64encode(b"icpflow-bench-key-32-bytes-long!").decode()})
CODEC_ACTIVE = "bench-1"

BASELINE_QUEUE_SUFFIX = "-baseline"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from ``/proc/<pid>/status`` (VmRSS, KiB)."""
    return _status_field(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    return _status_field(pid, "VmHWM")


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise LookupError(f"{name} missing from /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class ServerExited(RuntimeError):
    pass


class DevServer:
    """The Temporal CLI dev server on a SQLite file under ``root``, with icpflow's search attributes."""

    def __init__(
        self,
        root: Path,
        *,
        pragmas: Mapping[str, str] = DEFAULT_PRAGMAS,
        dynamic_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.pragmas = dict(pragmas)
        self.dynamic_config = dict(dynamic_config or {})
        self.port = free_port()
        self.metrics_port = free_port()
        self.db_file = root / "temporal.db"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def args(self) -> list[str]:
        args = [
            str(TEMPORAL_CLI),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(self.metrics_port),
            "--db-filename",
            str(self.db_file),
            "--log-level",
            "error",
            *search.dev_server_args(),
        ]
        for name, value in self.pragmas.items():
            args += ["--sqlite-pragma", f"{name}={value}"]
        for key, value in self.dynamic_config.items():
            args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
        return args

    def describe(self) -> dict[str, Any]:
        """What a result records about the server."""
        return {
            "binary": str(TEMPORAL_CLI),
            "version": _cli_version(),
            "persistence": "sqlite file",
            "sqlite_pragmas": self.pragmas,
            "dynamic_config": self.dynamic_config,
        }

    async def start(self, settings: Settings, attempts: int = 3) -> Client:
        """Start, and connect a client with icpflow's data converter. An early exit (a port taken meanwhile by
        another process) is retried on new ports."""
        for attempt in range(1, attempts + 1):
            try:
                return await self._start_once(settings)
            except ServerExited:
                if attempt == attempts:
                    raise
                self.port, self.metrics_port = free_port(), free_port()
        raise AssertionError("unreachable")

    async def _start_once(self, settings: Settings) -> Client:
        if not TEMPORAL_CLI.exists():
            raise RuntimeError(f"{TEMPORAL_CLI} is missing: install the project (pip install -e .)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(self.args(), log=self.root / "temporal.log", cwd=self.root)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while True:
            if self.proc.poll() is not None:
                tail = (self.root / "temporal.log").read_text(errors="replace")[-2000:]
                raise ServerExited(f"the dev server exited ({self.proc.returncode}):\n{tail}")
            try:
                return await connect(settings.model_copy(update={"temporal_address": self.address}))
            except RuntimeError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    async def stop(self) -> None:
        await terminate(self.proc)
        self.proc = None


@dataclass
class Outside:
    """Every outside party on loopback, in the bench process."""

    sms: SmsSink
    smtp: SmtpSink
    regulator: RegulatorSimulator
    rdap: RdapSimulator
    face: FaceVendorSimulator

    @classmethod
    async def start(cls, *, sms_window: timedelta, manual: bool = False, seed: int = 7) -> Outside:
        """``manual``: verdicts wait for the driver (``decide``); otherwise each is due at once, approved."""
        sms = SmsSink(TWILIO_SID, TWILIO_TOKEN)
        await sms.start()
        smtp = SmtpSink()
        await smtp.start()
        regulator = RegulatorSimulator.with_twilio(
            REGULATOR_KEY,
            TWILIO_SID,
            TWILIO_TOKEN,
            sms.url,
            mode="manual" if manual else "auto",
            time_factor=1.0 if manual else INSTANT_TIME_FACTOR,
            approve_ratio=1.0,
            sms_window=sms_window,
            seed=seed,
        )
        await regulator.start()
        rdap = RdapSimulator({})
        await rdap.start()
        face = FaceVendorSimulator()
        await face.start()
        return cls(sms=sms, smtp=smtp, regulator=regulator, rdap=rdap, face=face)

    async def decide(self, submission_id: str, *, approved: bool = True) -> None:
        """The administration's verdict on a submission under review (manual mode), over its control API."""
        async with httpx.AsyncClient(base_url=self.regulator.url) as http:
            response = await http.post(
                f"/sim/submissions/{submission_id}/decide", json={"decision": "approved" if approved else "rejected"}
            )
            response.raise_for_status()

    def describe(self) -> dict[str, Any]:
        return {
            "regulator": {
                "mode": self.regulator.mode.value,
                "time_factor": self.regulator.time_factor,
                "approve_ratio": self.regulator.approve_ratio,
                "sms_window_s": self.regulator.sms_window.total_seconds(),
            },
            "where": "in the bench process (loopback HTTP/SMTP)",
        }

    async def stop(self) -> None:
        for part in (self.face, self.rdap, self.regulator, self.smtp, self.sms):
            await part.stop()


def bench_settings(
    root: Path, outside: Outside, temporal_address: str, database_url: str, task_queue: str | None = None
) -> Settings:
    """Settings pointing the worker at the simulators, the read model and the dev server."""
    return Settings(
        data_dir=root,
        database_url=database_url,
        temporal_address=temporal_address,
        task_queue=task_queue or f"icp-bench-{uuid.uuid4().hex[:8]}",
        smtp_port=outside.smtp.port,
        twilio_account_sid=TWILIO_SID,
        twilio_auth_token=TWILIO_TOKEN,
        twilio_base_url=outside.sms.url,
        regulator_url=outside.regulator.url,
        regulator_api_key=REGULATOR_KEY,
        rdap_base_url=outside.rdap.url,
        face_verification_url=outside.face.url,
        document_store_path=root / "documents",
        codec_keys=CODEC_KEYS,
        codec_active_key=CODEC_ACTIVE,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as ``ICPFLOW_*`` variables, the way production configures a worker process."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"ICPFLOW_{name.upper()}"] = str(value)
    return env


def baseline_queue(settings: Settings) -> str:
    return settings.task_queue + BASELINE_QUEUE_SUFFIX


class WorkerExited(RuntimeError):
    pass


@dataclass
class WorkerProcess:
    """``python -m bench.worker_proc``: the real worker (and the baseline on its own task queue) in a subprocess.

    The parent talks to it by signals and files in ``control``: ``ready`` once it polls, SIGUSR1 → it collects
    garbage and writes ``gc-<n>.json``. Its SDK metrics are served for Prometheus on ``metrics_port``."""

    settings: Settings
    root: Path
    max_cached_workflows: int | None = None
    baseline: bool = True
    workflow_runner: str = "sandboxed"  # or "unsandboxed": see bench/worker_proc.py
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    name: str = field(default_factory=lambda: f"worker-{uuid.uuid4().hex[:6]}")
    _gc_count: int = 0

    @property
    def control(self) -> Path:
        return self.root / self.name

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    async def start(self, timeout: float = 60, attempts: int = 3) -> None:
        """Start and wait until it polls. A free port can be taken by another process before the worker binds its
        metrics endpoint (the machine may be shared), so an early exit is retried on a new port."""
        for attempt in range(1, attempts + 1):
            try:
                return await self._start_once(timeout)
            except WorkerExited:
                if attempt == attempts:
                    raise
                self.metrics_port = free_port()

    async def _start_once(self, timeout: float) -> None:
        self.control.mkdir(parents=True, exist_ok=True)
        (self.control / "ready").unlink(missing_ok=True)
        env = {
            **os.environ,
            **settings_env(self.settings),
            "BENCH_CONTROL_DIR": str(self.control),
            "BENCH_METRICS_PORT": str(self.metrics_port),
            "BENCH_BASELINE": "1" if self.baseline else "0",
            "BENCH_WORKFLOW_RUNNER": self.workflow_runner,
        }
        if self.max_cached_workflows is not None:
            env["BENCH_MAX_CACHED_WORKFLOWS"] = str(self.max_cached_workflows)
        self.proc = spawn([sys.executable, "-m", "bench.worker_proc"], log=self.root / f"{self.name}.log", env=env)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (self.control / "ready").exists():
            if self.proc.poll() is not None:
                tail = (self.root / f"{self.name}.log").read_text(errors="replace")[-2000:]
                raise WorkerExited(f"the worker exited ({self.proc.returncode}):\n{tail}")
            if loop.time() > deadline:
                raise TimeoutError("the worker did not start polling in time")
            await asyncio.sleep(0.1)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    async def collect_garbage(self, timeout: float = 60) -> dict[str, Any]:
        """Ask the worker to run ``gc.collect()``; returns what it reported (RSS before and after, in KiB)."""
        self._gc_count += 1
        done = self.control / f"gc-{self._gc_count}.json"
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done.exists():
            if loop.time() > deadline:
                raise TimeoutError("the worker did not answer the GC request")
            await asyncio.sleep(0.05)
        report: dict[str, Any] = json.loads(done.read_text())
        return report

    async def stop(self) -> None:
        await terminate(self.proc)
        self.proc = None


@contextlib.asynccontextmanager
async def in_process_worker(
    client: Client, settings: Settings, *, baseline: bool = False, **options: Any
) -> AsyncIterator[Worker]:
    """The real worker in this event loop (and, with ``baseline``, the baseline worker beside it)."""
    from bench.baseline import baseline_worker
    from worker import build_activities, build_worker

    wiring = build_activities(settings)
    worker = build_worker(client, settings, wiring, **options)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(worker)
        if baseline:
            await stack.enter_async_context(baseline_worker(client, baseline_queue(settings), **options))
        try:
            yield worker
        finally:
            pass
    await wiring.close()


POSTGRES_ADMIN_URL = os.environ.get(
    "ICPFLOW_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
READ_MODELS = ("auto", "postgres", "sqlite")


@contextlib.asynccontextmanager
async def read_model(kind: str, root: Path) -> AsyncIterator[tuple[str, str]]:
    """A migrated, empty read model: ``(kind, url)``. ``postgres`` creates a database of its own on the machine's
    PostgreSQL (``ICPFLOW_BENCH_POSTGRES_URL``) and drops it afterwards; ``auto`` takes PostgreSQL when it answers,
    else a SQLite file under ``root``.

    Production runs PostgreSQL. On SQLite every read-model write of every order queues for the file's one write
    lock, which then dominates what the benchmarks see (measured: ``record_transition`` p95 3.7 s at 16 orders in
    flight), so SQLite is a choice to make knowingly."""
    if kind not in READ_MODELS:
        raise ValueError(f"read model {kind!r}: choose one of {', '.join(READ_MODELS)}")
    if kind in ("auto", "postgres"):
        name = f"icpflow_bench_{uuid.uuid4().hex[:10]}"
        admin = create_async_engine(
            POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"timeout": 5}
        )
        try:
            async with admin.connect() as connection:
                await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except (OSError, TimeoutError, DBAPIError) as e:
            await admin.dispose()
            if kind == "postgres":
                raise RuntimeError(f"PostgreSQL at {_safe(POSTGRES_ADMIN_URL)} is unreachable: {e}") from None
        else:
            url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
            try:
                await db.upgrade(url)
                yield "postgres", url
            finally:
                async with admin.connect() as connection:
                    await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await admin.dispose()
            return
    url = f"sqlite+aiosqlite:///{root / 'icpflow.db'}"
    await db.upgrade(url)
    yield "sqlite", url


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait, timeout)


def spawn(
    args: list[str], *, log: Path, cwd: Path = ROOT, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A child process writing to ``log``, ended by the kernel if the bench dies first. Starting it does not block
    (the child runs on its own); callers wait for it to be ready by their own means."""
    with log.open("ab") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, preexec_fn=_die_with_parent
        )


def _die_with_parent() -> None:
    """In the child before exec: ask the kernel to SIGTERM it when the bench dies, so a crashed or killed run
    leaves no dev server or worker behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def _cli_version() -> str:
    try:
        out = subprocess.run([str(TEMPORAL_CLI), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip()


@dataclass
class ApiProcess:
    """The HTTP API as production runs it: ``uvicorn --factory starter.api:create_default_app`` in a subprocess on
    loopback, configured by ``ICPFLOW_*`` variables, with the development tokens (dev-backend, dev-support,
    dev-viewer). Its own interpreter and event loop: the bench's clients do not share its CPU or GIL."""

    settings: Settings
    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_name: str = field(default_factory=lambda: f"api-{uuid.uuid4().hex[:6]}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def describe(self) -> dict[str, Any]:
        return {
            "server": "uvicorn (one process, --no-access-log) on 127.0.0.1",
            "app": "starter.api:create_default_app",
            "tokens": "development tokens (ICPFLOW_API_TOKENS unset)",
        }

    async def start(self, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if k != "ICPFLOW_API_TOKENS"}
        env |= settings_env(self.settings)
        args = [
            sys.executable, "-m", "uvicorn", "--factory", "starter.api:create_default_app",
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self.proc = spawn(args, log=self.root / self.log_name, env=env)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as http:
            while True:
                if self.proc.poll() is not None:
                    tail = (self.root / self.log_name).read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the API exited ({self.proc.returncode}):\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/healthz")).status_code == 200:
                        return
                if loop.time() > deadline:
                    raise TimeoutError("the API did not answer /healthz in time")
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        await terminate(self.proc)
        self.proc = None


@dataclass
class ApiStack:
    """What the HTTP API scenarios run against: the simulators, the read model, the dev server, the real worker
    (subprocess) and the API (subprocess), all started; see :func:`api_stack`."""

    client: Client
    settings: Settings
    outside: Outside
    server: DevServer
    worker: WorkerProcess
    api: ApiProcess
    read_model: str

    def describe(self) -> dict[str, Any]:
        return {
            "api": self.api.describe(),
            "worker": "subprocess (python -m bench.worker_proc), SDK default workflow cache",
            "read_model": self.read_model,
            "server": self.server.describe(),
            "outside": self.outside.describe(),
        }


@contextlib.asynccontextmanager
async def api_stack(root: Path, *, kind: str, sms_window: timedelta, runner: str) -> AsyncIterator[ApiStack]:
    """Start everything an API scenario needs, and stop it all afterwards (also when the scenario fails)."""
    outside = await Outside.start(sms_window=sms_window)
    try:
        async with read_model(kind, root) as (model_kind, url):
            server = DevServer(root)
            settings = bench_settings(root, outside, server.address, url)
            client = await server.start(settings)
            worker = WorkerProcess(settings, root, baseline=False, workflow_runner=runner)
            api = ApiProcess(settings, root)
            try:
                await worker.start()
                await api.start()
                yield ApiStack(client, settings, outside, server, worker, api, model_kind)
            finally:
                await api.stop()
                await worker.stop()
                await server.stop()
    finally:
        await outside.stop()
