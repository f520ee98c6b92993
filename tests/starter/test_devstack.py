"""The local stack's own machinery (starter/devstack.py), without the stack: ports are checked before anything
starts, a part that dies or hangs is reported, and every child process is stopped however ``dev up`` ends."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.settings import Settings
from starter import devstack
from starter.devstack import ChildProcess, DevStack, Options, PortClaim, PortsInUse, Service, ServiceFailed

PYTHON = sys.executable


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port somebody else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def until(predicate: object, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def settings_in(tmp_path: Path, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "data_dir": tmp_path / ".data",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / '.data' / 'icpflow.db'}",
    }
    return Settings(**(fields | overrides))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- ports


def test_a_port_in_use_is_reported_with_the_service_that_wanted_it(occupied_port: int) -> None:
    assert devstack.port_in_use(occupied_port)

    with pytest.raises(PortsInUse) as raised:
        devstack.check_ports([PortClaim(free_port(), "icpflow API"), PortClaim(occupied_port, "regulator simulator")])

    assert [c.port for c in raised.value.taken] == [occupied_port]
    assert f"port {occupied_port} (regulator simulator) is already in use" in str(raised.value)


def test_a_free_port_passes_the_check() -> None:
    port = free_port()
    assert not devstack.port_in_use(port)
    devstack.check_ports([PortClaim(port, "Temporal UI")])  # no exception


def test_dev_up_refuses_to_start_anything_when_a_port_is_taken(
    occupied_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_in(tmp_path, regulator_url=f"http://127.0.0.1:{occupied_port}")
    stack = DevStack(settings, Options(exit_after_demo=True))

    status = asyncio.run(devstack.run(settings, Options(exit_after_demo=True), stack))

    assert status == 1
    out = capsys.readouterr().out
    assert f"port {occupied_port} (regulator simulator) is already in use" in " ".join(out.split())
    assert stack.children == []
    assert not (tmp_path / ".data" / "logs").exists()  # nothing was started, not even migrated


def test_ports_come_from_the_settings(tmp_path: Path) -> None:
    settings = settings_in(
        tmp_path,
        temporal_address="127.0.0.1:17233",
        regulator_url="http://127.0.0.1:18301",
        rdap_base_url="http://127.0.0.1:18302",
        face_verification_url="http://127.0.0.1:18303",
        twilio_base_url="http://127.0.0.1:18304",
        smtp_port=18025,
    )
    claims = {c.port: c.service for s in DevStack(settings, Options()).services() for c in s.ports}

    assert claims[17233] == "Temporal frontend"
    assert {18301, 18302, 18303, 18304, 18025, devstack.MAIL_VIEW_PORT, devstack.TEMPORAL_UI_PORT} <= set(claims)


def test_temporal_is_started_from_the_venv_binary_with_the_search_attributes(tmp_path: Path) -> None:
    temporal = DevStack(settings_in(tmp_path), Options(), bin_dir=Path("/venv/bin")).services()[0]

    assert temporal.argv[:3] == ["/venv/bin/temporal", "server", "start-dev"]
    assert str(tmp_path / ".data" / "temporal.db") in temporal.argv
    assert "--search-attribute" in temporal.argv and "IcpOrderId=Keyword" in temporal.argv


def test_the_simulators_always_approve_on_the_demo_time_factor(tmp_path: Path) -> None:
    simulators = next(s for s in DevStack(settings_in(tmp_path), Options()).services() if s.name == "simulators")

    assert simulators.argv[1:3] == ["-m", "simulators"]
    assert simulators.argv[simulators.argv.index("--approve-ratio") + 1] == "1.0"
    assert simulators.argv[simulators.argv.index("--time-factor") + 1] == "1/8640"


# ---------------------------------------------------------------------------------------------- child processes


def test_stop_terminates_a_child_and_everything_it_started(tmp_path: Path) -> None:
    # The child starts a grandchild in its process group and reports its pid.
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = ChildProcess("sleeper", [PYTHON, "-c", script], tmp_path / "sleeper.log")
    child.start()
    assert until(lambda: child.log_path.read_text().strip() != "")
    grandchild = int(child.log_path.read_text().split()[0])
    assert child.pid is not None and alive(grandchild)

    child.stop(grace=5)

    assert not child.running()
    assert until(lambda: not alive(grandchild))


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = ChildProcess("stubborn", [PYTHON, "-c", script], tmp_path / "stubborn.log")
    child.start()
    assert until(lambda: "ready" in child.log_path.read_text())
    started = time.monotonic()

    code = child.stop(grace=0.5)

    assert code == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert child.pid is not None and not alive(child.pid)


def test_stop_is_harmless_twice_and_for_a_child_that_never_started(tmp_path: Path) -> None:
    never = ChildProcess("never", [PYTHON, "-c", "pass"], tmp_path / "never.log")
    assert never.stop() is None

    done = ChildProcess("done", [PYTHON, "-c", "pass"], tmp_path / "done.log")
    done.start()
    assert until(lambda: not done.running())
    assert done.stop() == 0
    assert done.stop() == 0


def test_stop_all_stops_children_in_reverse_start_order(tmp_path: Path) -> None:
    stopped: list[str] = []

    class Recording(ChildProcess):
        def stop(self, grace: float = devstack.STOP_GRACE_SECONDS) -> int | None:
            stopped.append(self.name)
            return super().stop(grace)

    children = [Recording(n, [PYTHON, "-c", "import time; time.sleep(60)"], tmp_path / f"{n}.log") for n in "abc"]
    for child in children:
        child.start()

    devstack.stop_all(children, grace=5)

    assert stopped == ["c", "b", "a"]
    assert not any(c.running() for c in children)


async def test_a_service_that_exits_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    service = Service("broken", [PYTHON, "-c", "print('bad config'); raise SystemExit(3)"], [], _never_ready)
    child = ChildProcess(service.name, service.argv, tmp_path / "broken.log")
    child.start()
    try:
        with pytest.raises(ServiceFailed, match=r"(?s)broken exited with status 3 while starting.*bad config"):
            await devstack.wait_ready(service, child)
    finally:
        child.stop()


async def test_a_service_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    service = Service("slow", [PYTHON, "-c", "import time; time.sleep(60)"], [], _never_ready, ready_timeout=0.5)
    child = ChildProcess(service.name, service.argv, tmp_path / "slow.log")
    child.start()
    try:
        with pytest.raises(ServiceFailed, match="slow was not ready after"):
            await devstack.wait_ready(service, child)
    finally:
        child.stop()


async def _never_ready() -> bool:
    return False


async def _ready() -> bool:
    return True


class FakeStack(DevStack):
    """The real stack's lifecycle with harmless parts: one sleeper per name."""

    def __init__(self, settings: Settings, options: Options, parts: dict[str, str]) -> None:
        super().__init__(settings, options)
        self.parts = parts

    def services(self) -> list[Service]:
        return [Service(name, [PYTHON, "-c", code], [], _ready) for name, code in self.parts.items()]


SLEEP = "import time; time.sleep(120)"


def test_ctrl_c_stops_every_child(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    options = Options(demo=False, stop_grace=5)
    stack = FakeStack(settings, options, {"first": SLEEP, "second": SLEEP})
    pids: list[int] = []

    async def interrupt_when_up() -> int:
        loop = asyncio.get_running_loop()

        async def watch() -> None:
            while len(stack.children) < 2 or not all(c.running() for c in stack.children):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            pids.extend(c.pid for c in stack.children if c.pid)
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal does

        watcher = loop.create_task(watch())
        status = await devstack.run(settings, options, stack)
        await watcher
        return status

    status = asyncio.run(interrupt_when_up())

    assert status == 0
    assert len(pids) == 2
    assert all(until(lambda p=p: not alive(p)) for p in pids)
    assert (tmp_path / ".data" / "logs" / "first.log").exists()


def test_a_child_dying_while_the_stack_runs_stops_the_others_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_in(tmp_path)
    options = Options(demo=False, stop_grace=5)
    stack = FakeStack(
        settings, options, {"steady": SLEEP, "fragile": "import time; time.sleep(1.5); print('boom'); exit(4)"}
    )

    status = asyncio.run(devstack.run(settings, options, stack))

    assert status == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "fragile exited with status 4" in out and "boom" in out
    assert stack.children == []  # every child was stopped and forgotten


def test_exit_after_demo_without_a_demo_returns_once_up_and_stops_everything(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    options = Options(demo=False, exit_after_demo=True, stop_grace=5)
    stack = FakeStack(settings, options, {"only": SLEEP})
    seen: list[int] = []
    original = stack.down

    def down() -> None:
        seen.extend(c.pid for c in stack.children if c.pid)
        original()

    stack.down = down  # type: ignore[method-assign]

    assert asyncio.run(devstack.run(settings, options, stack)) == 0
    assert len(seen) == 1 and until(lambda: not alive(seen[0]))


# ---------------------------------------------------------------------------------------------------- simulators


async def test_the_simulators_process_serves_every_outside_party_and_stops_on_sigterm(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("regulator", "rdap", "face", "sms", "smtp", "mail")}
    env = os.environ | {
        "ICPFLOW_REGULATOR_URL": f"http://127.0.0.1:{ports['regulator']}",
        "ICPFLOW_RDAP_BASE_URL": f"http://127.0.0.1:{ports['rdap']}",
        "ICPFLOW_FACE_VERIFICATION_URL": f"http://127.0.0.1:{ports['face']}",
        "ICPFLOW_TWILIO_BASE_URL": f"http://127.0.0.1:{ports['sms']}",
        "ICPFLOW_SMTP_PORT": str(ports["smtp"]),
    }
    argv = [PYTHON, "-m", "simulators", "--approve-ratio", "1.0", "--mail-view-port", str(ports["mail"])]
    child = ChildProcess("simulators", argv, tmp_path / "simulators.log", env)
    child.start()
    try:
        deadline = time.monotonic() + 60
        while not all([await devstack.tcp_open(p) for p in ports.values()]):
            assert child.running(), child.log_tail()
            assert time.monotonic() < deadline, f"the simulators did not come up: {child.log_tail()}"
            await asyncio.sleep(0.1)
        for name in ("rdap", "face"):
            assert await devstack.http_ok(f"http://127.0.0.1:{ports[name]}/healthz"), name
        assert await devstack.http_ok(f"http://127.0.0.1:{ports['rdap']}/domain/example.com")
        assert await devstack.http_ok(f"http://127.0.0.1:{ports['mail']}/sim/mail")
        assert await devstack.http_ok(f"http://127.0.0.1:{ports['sms']}/sim/messages")
    finally:
        code = child.stop(grace=10)
    assert code == 0, child.log_tail()
    log = child.log_path.read_text()
    assert "RDAP" in log and "face vendor" in log
