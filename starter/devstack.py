"""The local stack behind ``make run``, ``make demo`` and ``icpflow dev up``.

One command brings up everything an order needs, each part a child process logging to ``.data/logs/<name>.log``:
the Temporal dev server (state in ``.data/temporal.db``), the simulators (regulator in auto mode, SMS and mail
sinks, RDAP, face vendor), the worker and the HTTP API. Every port is checked before anything starts, each part
must be healthy before the next one starts, and whatever happens — Ctrl-C, SIGTERM, a part dying, a failed demo —
every child is stopped (SIGTERM to its process group, SIGKILL after a grace period): nothing is left running.

Then a demo order is placed and played through the API, as the backend would (``starter.demo``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
from rich.console import Console

from models import search
from models.settings import Settings
from store import db

HOST = "127.0.0.1"
API_PORT = 8000
TEMPORAL_UI_PORT = 8233
MAIL_VIEW_PORT = 8026  # passed to `python -m simulators --mail-view-port`
STOP_GRACE_SECONDS = 10.0

console = Console(highlight=False)


@dataclass(frozen=True)
class Options:
    exit_after_demo: bool = False
    demo: bool = True
    demo_timeout: float = 480.0
    time_factor: str = "1/8640"
    stop_grace: float = STOP_GRACE_SECONDS


# ================================================================================================= ports


@dataclass(frozen=True)
class PortClaim:
    port: int
    service: str  # who wants it, for the message


class PortsInUse(Exception):
    """Some port the stack needs is taken; nothing was started."""

    def __init__(self, taken: Sequence[PortClaim]) -> None:
        self.taken = list(taken)
        super().__init__(
            "; ".join(
                f"port {c.port} ({c.service}) is already in use — stop whatever holds it "
                f"(`ss -ltnp 'sport = :{c.port}'` shows it) or an earlier `icpflow dev up`"
                for c in self.taken
            )
        )


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when a server could not listen on ``host:port`` now (someone else is listening there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port left in TIME_WAIT by a previous run is free for our servers, which set it too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def check_ports(claims: Iterable[PortClaim], host: str = HOST) -> None:
    """Raise :class:`PortsInUse` naming every claimed port that is taken."""
    taken = [c for c in claims if port_in_use(c.port, host)]
    if taken:
        raise PortsInUse(taken)


def port_of(url: str, default: int) -> int:
    return urlsplit(url if "//" in url else f"//{url}").port or default


# ============================================================================================ child processes


class ServiceFailed(Exception):
    """A part of the stack did not come up, or died."""


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if ``dev up`` itself is killed, so not even SIGKILL leaves orphans."""
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class ChildProcess:
    """One part of the stack: a process in its own process group (so a stop reaches its children too), with its
    output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,  # its own process group: Ctrl-C reaches `dev up`, which stops children in order
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; returns the exit code. Idempotent."""
        if self.process is None:
            return None
        try:
            if self.process.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.process.wait(timeout=5)
            # The leader may be gone while something it started still runs in its group.
            self._signal(signal.SIGKILL)
            return self.process.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def stop_all(children: Sequence[ChildProcess], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop children in reverse start order (the API before the worker before Temporal)."""
    for child in reversed(children):
        child.stop(grace)


# ================================================================================================= health


async def tcp_open(port: int, host: str = HOST) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def http_ok(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def temporal_ready(settings: Settings) -> bool:
    from starter.client import connect

    try:
        client = await connect(settings)
    except RuntimeError:
        return False
    # The dev server answers before its namespace is registered; a visibility call proves it is usable.
    try:
        async for _ in client.list_workflows("WorkflowType = 'ModificationOrderWorkflow'", limit=1):
            break
    except Exception:
        return False
    return True


async def worker_polling(settings: Settings) -> bool:
    """True once some worker polls the order task queue."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from starter.client import connect

    try:
        client = await connect(settings)
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(name=settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
    except Exception:
        return False
    return len(response.pollers) > 0


@dataclass
class Service:
    """How to start one part, which ports it takes, and how to tell it is ready."""

    name: str
    argv: list[str]
    ports: list[PortClaim]
    ready: Callable[[], Awaitable[bool]]
    ready_timeout: float = 60.0
    child: ChildProcess | None = field(default=None, repr=False)


async def wait_ready(service: Service, child: ChildProcess) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + service.ready_timeout
    while not await service.ready():
        if not child.running():
            raise ServiceFailed(
                f"{service.name} exited with status {child.exit_code()} while starting; its log "
                f"({child.log_path}) ends with:\n{child.log_tail()}"
            )
        if loop.time() > deadline:
            raise ServiceFailed(
                f"{service.name} was not ready after {service.ready_timeout:.0f} s; its log ({child.log_path}) "
                f"ends with:\n{child.log_tail()}"
            )
        await asyncio.sleep(0.25)


# ================================================================================================= the stack


def api_available() -> bool:
    """The HTTP API ships with the project; until its module exists the demo drives Temporal directly."""
    spec = find_spec("starter.api")
    # A folder without __init__ (work in progress) is a namespace package: no origin, no create_app.
    return spec is not None and spec.origin is not None and find_spec("uvicorn") is not None


class DevStack:
    def __init__(self, settings: Settings, options: Options, *, bin_dir: Path | None = None) -> None:
        self.settings = settings
        self.options = options
        self.bin_dir = bin_dir or Path(sys.executable).parent
        self.data_dir = settings.data_dir
        self.logs = self.data_dir / "logs"
        self.children: list[ChildProcess] = []
        self.with_api = api_available()

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{API_PORT}"

    def services(self) -> list[Service]:
        s = self.settings
        python = sys.executable
        temporal_port = port_of(s.temporal_address, 7233)
        temporal = Service(
            "Temporal",
            [
                str(self.bin_dir / "temporal"),
                "server",
                "start-dev",
                "--db-filename",
                str(self.data_dir / "temporal.db"),
                "--ip",
                HOST,
                "--port",
                str(temporal_port),
                "--ui-port",
                str(TEMPORAL_UI_PORT),
                "--namespace",
                s.temporal_namespace,
                "--log-level",
                "warn",
                *search.dev_server_args(),
            ],
            [PortClaim(temporal_port, "Temporal frontend"), PortClaim(TEMPORAL_UI_PORT, "Temporal UI")],
            lambda: temporal_ready(s),
            ready_timeout=90,
        )
        sim_ports = [
            PortClaim(port_of(s.regulator_url, 8301), "regulator simulator"),
            PortClaim(port_of(s.rdap_base_url, 8302), "RDAP simulator"),
            PortClaim(port_of(s.face_verification_url, 8303), "face vendor simulator"),
            PortClaim(port_of(s.twilio_base_url or "", 8304), "SMS sink"),
            PortClaim(s.smtp_port, "SMTP sink"),
            PortClaim(MAIL_VIEW_PORT, "mail view"),
        ]

        async def simulators_ready() -> bool:
            return all([await tcp_open(c.port) for c in sim_ports])

        simulators = Service(
            "simulators",
            [
                python,
                "-m",
                "simulators",
                "--time-factor",
                self.options.time_factor,
                "--approve-ratio",
                "1.0",  # the demo order is always approved
                "--mail-view-port",
                str(MAIL_VIEW_PORT),
            ],
            sim_ports,
            simulators_ready,
        )
        worker = Service(
            "worker", [python, "-m", "starter.cli", "worker"], [], lambda: worker_polling(s), ready_timeout=60
        )
        services = [temporal, simulators, worker]
        if self.with_api:
            services.append(
                Service(
                    "API",
                    [python, "-m", "starter.cli", "api", "--host", HOST, "--port", str(API_PORT)],
                    [PortClaim(API_PORT, "icpflow API")],
                    lambda: http_ok(f"{self.api_url}/healthz"),
                )
            )
        return services

    async def up(self) -> None:
        """Check every port, migrate, then start each part and wait until it is ready. Raises
        :class:`PortsInUse` (nothing started) or :class:`ServiceFailed`."""
        services = self.services()
        check_ports([claim for service in services for claim in service.ports])
        self.logs.mkdir(parents=True, exist_ok=True)
        console.print(f"[dim]migrating {self.settings.database_url}[/dim]")
        await db.upgrade(self.settings.database_url)
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        for service in services:
            started = time.monotonic()
            child = ChildProcess(service.name, service.argv, self.logs / f"{_slug(service.name)}.log", env)
            self.children.append(child)
            child.start()
            await wait_ready(service, child)
            console.print(
                f"[green]✓[/green] {service.name:<11} ready in {time.monotonic() - started:4.1f} s  "
                f"[dim](pid {child.pid}, log {child.log_path})[/dim]"
            )

    def down(self) -> None:
        if self.children:
            console.print("[dim]stopping the stack…[/dim]")
        stop_all(self.children, self.options.stop_grace)
        self.children.clear()

    def dead_child(self) -> ChildProcess | None:
        return next((c for c in self.children if not c.running()), None)

    def print_urls(self) -> None:
        s = self.settings
        sms = (s.twilio_base_url or f"http://{HOST}:8304").rstrip("/")
        rows = []
        if self.with_api:
            # Without configured tokens the API takes the development ones; the dashboard keeps ?token= in a cookie.
            dev_tokens = not os.environ.get("ICPFLOW_API_TOKENS")
            rows += [
                ("API docs", f"{self.api_url}/docs"),
                ("dashboard", f"{self.api_url}/dashboard" + ("?token=dev-viewer" if dev_tokens else "")),
            ]
            if dev_tokens:
                rows.append(("API tokens", "dev-backend, dev-support, dev-viewer (Authorization: Bearer …)"))
        rows += [
            ("Temporal UI", f"http://{HOST}:{TEMPORAL_UI_PORT}"),
            ("mail view", f"http://{HOST}:{MAIL_VIEW_PORT}/sim/mail"),
            ("SMS view", f"{sms}/sim/messages"),
            ("regulator", f"{s.regulator_url.rstrip('/')}/sim/submissions"),
            ("logs", str(self.logs)),
        ]
        console.print()
        for label, url in rows:
            console.print(f"  [bold]{label:<12}[/bold] {url}")
        if not self.with_api:
            console.print("  [yellow]the HTTP API (starter.api) is not installed: the demo drives Temporal directly")
        console.print()


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


# ================================================================================================= entry point


async def _session(stack: DevStack) -> int:
    from starter.demo import DemoFailed, play_demo

    try:
        await stack.up()
    except PortsInUse as e:
        for claim in e.taken:
            console.print(
                f"[red]icpflow dev up: port {claim.port} ({claim.service}) is already in use[/red] — stop whatever "
                f"holds it (`ss -ltnp 'sport = :{claim.port}'`), e.g. an earlier `icpflow dev up`",
                soft_wrap=True,
            )
        return 1
    except ServiceFailed as e:
        console.print(f"[red]icpflow dev up: {e}[/red]", soft_wrap=True)
        return 1
    stack.print_urls()
    options = stack.options
    if options.demo:
        try:
            await play_demo(stack.settings, stack.api_url if stack.with_api else None, timeout=options.demo_timeout)
        except DemoFailed as e:
            console.print(f"[red]demo failed: {e}[/red]", soft_wrap=True)
            return 1
    if options.exit_after_demo:
        return 0
    console.print("the stack is up; Ctrl-C stops it")
    while True:
        dead = stack.dead_child()
        if dead is not None:
            console.print(
                f"[red]{dead.name} exited with status {dead.exit_code()}; its log ({dead.log_path}) ends with:"
                f"[/red]\n{dead.log_tail()}",
                soft_wrap=True,
            )
            return 1
        await asyncio.sleep(1)


async def run(settings: Settings, options: Options, stack: DevStack | None = None) -> int:
    """Bring the stack up, play the demo, and stop every child however this ends. Returns the exit status."""
    stack = stack or DevStack(settings, options)
    loop = asyncio.get_running_loop()
    session = asyncio.create_task(_session(stack))
    stopped_by: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        stopped_by.append(sig.name)
        session.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await session
    except asyncio.CancelledError:
        console.print(f"\n[dim]{stopped_by[0] if stopped_by else 'cancelled'}[/dim]")
        return 0 if not options.exit_after_demo else 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        # Blocking on purpose: the stack must be down before this returns, even on the way out of an error.
        stack.down()


def main(settings: Settings, options: Options) -> int:
    try:
        return asyncio.run(run(settings, options))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130
