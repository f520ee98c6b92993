"""``python -m tests.reliability.crash_worker``: the production worker in a process of its own that SIGKILLs
itself at a chosen point — the crash matrix's victim.

It is the worker ``worker.py`` runs (``build_activities`` + ``build_worker``, configured only by ``ICPFLOW_*``
variables) plus one test interceptor; production code carries no test hook. Extra variables:

- ``CRASH_DIR`` (required): ``ready-<pid>`` is written there once the worker polls; ``kills.jsonl`` gets one line
  per order caught at a point, written as the order arrives there: a caught order is held until the
  process dies, so it dies inside the point, whether this point's gate, another's or the test kills the process;
  ``settles.jsonl`` gets one line per notice marked sent, with when the provider answered and when the outbox
  commit finished — the at-least-once window of every notice, measured; ``settling.jsonl`` one line as that
  commit begins, so a notice whose commit landed just before a kill (and whose ``settles`` line did not) is
  still known to have been committed by a worker that then died.
- ``CRASH_POINTS``: where to die, ``name=spec`` pairs separated by ``;`` (unset or empty: nowhere, the worker
  only measures). Each point has a gate of its own; ``name`` is what ``kills.jsonl`` records. The specs:

  ``activity:<name>:before|after[:<stage>]``
      inside an activity, before its body runs or after it returned (its effect done, its result not yet
      reported); ``<stage>`` restricts ``record_transition`` to the transition into that stage.
  ``notification-window:<event key prefix>``
      after the provider accepted a notice and before its outbox row is marked sent (the documented at-least-once
      window); the channel per order is ``window_channel(order_id)``, so both email and SMS are covered.
  ``continue-as-new``
      inside the workflow task that continues an order as new (a workflow outbound interceptor), before the
      command reaches the server.

- ``CRASH_GATHER`` (default 20) and ``CRASH_GATHER_SECONDS`` (default 10; at most 1.5 for ``continue-as-new``,
  whose hold blocks a workflow thread and the SDK calls a workflow task held 2 s a deadlock): orders reaching a
  point are held there until that many have arrived or that long has passed since the first one, then the process
  dies with all of them inside the point. An order already in ``kills.jsonl`` for a point is let through, so a
  worker started again armed catches only orders it has not killed there before — also when the process died of
  something else while the order was held (holding it again would repeat its notice once more).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ContinueAsNewInput,
    ExecuteActivityInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from activities.notifications import NotificationActivities
from models.settings import Settings
from store.tables import OutboxStatus

KILLS = "kills.jsonl"
SETTLES = "settles.jsonl"
SETTLING = "settling.jsonl"
# Longer than any gather: a held call never returns, the process dies first.
HOLD_FOREVER_S = 3600.0


def window_channel(order_id: str) -> str:
    """The channel whose outbox commit an order is killed before, at the notification point: half the orders by
    email, half by SMS (deterministic, so the test knows which delivery may be repeated)."""
    return "sms" if hashlib.sha256(order_id.encode()).digest()[0] % 2 else "email"


@dataclass(frozen=True)
class Fault:
    name: str  # the point's name, as kills.jsonl records it
    kind: str  # "activity", "notification-window" or "continue-as-new"
    activity: str = ""
    phase: str = ""
    stage: str = ""
    event_prefix: str = ""

    @classmethod
    def parse(cls, name: str, spec: str) -> Fault:
        kind, _, rest = spec.partition(":")
        if kind == "activity":
            activity_name, phase, *stage = rest.split(":")
            if phase not in ("before", "after"):
                raise ValueError(f"crash point {spec!r}: the phase is before or after")
            return cls(name, kind, activity=activity_name, phase=phase, stage=stage[0] if stage else "")
        if kind == "notification-window":
            return cls(name, kind, event_prefix=rest)
        if kind == "continue-as-new":
            return cls(name, kind)
        raise ValueError(f"crash point {spec!r} is not one this worker knows")

    def catches(self, activity_name: str, phase: str, args: Any) -> bool:
        if self.kind != "activity" or self.activity != activity_name or self.phase != phase:
            return False
        return not self.stage or any(str(getattr(a, "stage", "")) == self.stage for a in args)


def parse_points(spec: str) -> list[Fault]:
    """``name=spec;name=spec`` → the faults (see the module docstring)."""
    faults = []
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        name, _, point = item.partition("=")
        faults.append(Fault.parse(name, point))
    return faults


class Gate:
    """Holds the orders arriving at the point, then kills the process with all of them inside it.

    Thread-safe: activities arrive on the event loop, continue-as-new on workflow threads (the sandbox runs each
    workflow task on a thread of its own). The kill itself runs on a timer thread, so it happens even while every
    workflow thread is held."""

    def __init__(self, control: Path, point: str, gather: int, gather_seconds: float) -> None:
        self.path = control / KILLS
        self.point = point
        self.gather = gather
        self.gather_seconds = gather_seconds
        self.done = {r["workflow_id"] for r in read_jsonl(self.path) if r["point"] == point}
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._fired = False

    def wants(self, key: str) -> bool:
        return key not in self.done

    def arrive(self, key: str, record: dict[str, Any]) -> None:
        with self._lock:
            self.held.add(key)
            self.done.add(key)
            # In the kernel before the kill (a SIGKILL loses nothing already written; only a power cut would).
            append_jsonl(
                self.path, {"point": self.point, "workflow_id": key, "pid": os.getpid(), "at": time.time(), **record}
            )
            if len(self.held) >= self.gather:
                threading.Thread(target=self.fire, daemon=True).start()
            elif self._timer is None:
                self._timer = threading.Timer(self.gather_seconds, self.fire)
                self._timer.daemon = True
                self._timer.start()

    async def hold(self, key: str, record: dict[str, Any]) -> NoReturn:
        self.arrive(key, record)
        await asyncio.sleep(HOLD_FOREVER_S)
        raise AssertionError("the crash worker outlived its own kill")

    def hold_thread(self, key: str, record: dict[str, Any]) -> NoReturn:
        self.arrive(key, record)
        time.sleep(HOLD_FOREVER_S)
        raise AssertionError("the crash worker outlived its own kill")

    def fire(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
            os.kill(os.getpid(), signal.SIGKILL)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as out:
        out.write(json.dumps(record) + "\n")


# The workflow interceptor class is instantiated by the SDK, per workflow, without arguments: it finds the gate here.
_CAN_GATE: Gate | None = None

Armed = list[tuple[Fault, Gate]]


class CrashInterceptor(Interceptor):
    def __init__(self, armed: Armed) -> None:
        self.armed = [(f, g) for f, g in armed if f.kind == "activity"]
        self.continue_as_new = any(f.kind == "continue-as-new" for f, _ in armed)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityCrash(next, self.armed)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _WorkflowCrash if self.continue_as_new else None


class _ActivityCrash(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, armed: Armed) -> None:
        super().__init__(next)
        self.armed = armed

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        await self._maybe_hold(info, "before", input.args)
        result = await super().execute_activity(input)
        await self._maybe_hold(info, "after", input.args)
        return result

    async def _maybe_hold(self, info: activity.Info, phase: str, args: Any) -> None:
        workflow_id = info.workflow_id or ""
        for fault, gate in self.armed:
            if fault.catches(info.activity_type, phase, args) and gate.wants(workflow_id):
                record = {"run_id": info.workflow_run_id, "activity": info.activity_type, "attempt": info.attempt}
                await gate.hold(workflow_id, record)


class _WorkflowCrash(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_ContinueAsNewCrash(outbound))


class _ContinueAsNewCrash(WorkflowOutboundInterceptor):
    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        info = workflow.info()
        gate = _CAN_GATE
        if gate is not None and gate.wants(info.workflow_id) and not workflow.unsafe.is_replaying():
            # This workflow task is issuing the continue-as-new: the process dies before the command is sent.
            gate.hold_thread(info.workflow_id, {"run_id": info.run_id})
        super().continue_as_new(input)


def patch_settle(control: Path, armed: Armed) -> None:
    """Wrap the outbox's settle step (test-side, in this process only) to measure the at-least-once window of
    every notice and, at the notification point, to hold the activity inside it."""
    original = NotificationActivities._settle
    settles = control / SETTLES
    settling = control / SETTLING
    windows = [(f, g) for f, g in armed if f.kind == "notification-window"]

    async def settle(
        self: NotificationActivities,
        session: Any,
        key: tuple[str, str, str],
        *,
        status: OutboxStatus,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        answered = time.time()  # the provider's answer came back just now: settle runs right after send()
        order_id, event_key, channel = key
        for fault, gate in windows:
            info = activity.info()
            workflow_id = info.workflow_id or ""
            if (
                status is OutboxStatus.SENT
                and event_key.startswith(fault.event_prefix)
                and channel == window_channel(order_id)
                and gate.wants(workflow_id)
            ):
                record = {"run_id": info.workflow_run_id, "order_id": order_id, "event_key": event_key}
                await gate.hold(workflow_id, record | {"channel": channel})
        sent: dict[str, Any] = {"order_id": order_id, "event_key": event_key, "channel": channel}
        sent |= {"provider_id": provider_id, "pid": os.getpid(), "answered": answered}
        if status is OutboxStatus.SENT:
            append_jsonl(settling, sent)
        await original(self, session, key, status=status, provider_id=provider_id, error=error)
        if status is OutboxStatus.SENT:
            append_jsonl(settles, sent | {"committed": time.time()})

    NotificationActivities._settle = settle  # type: ignore[method-assign]


async def main() -> None:
    global _CAN_GATE
    from starter.client import connect
    from worker import build_activities, build_worker

    settings = Settings()
    control = Path(os.environ["CRASH_DIR"])
    gather = int(os.environ.get("CRASH_GATHER", "20"))
    gather_seconds = float(os.environ.get("CRASH_GATHER_SECONDS", "10"))
    armed: Armed = []
    for fault in parse_points(os.environ.get("CRASH_POINTS", "")):
        # A held workflow task blocks its thread; the SDK calls one held 2 s a deadlock and fails the task.
        seconds = min(gather_seconds, 1.5) if fault.kind == "continue-as-new" else gather_seconds
        gate = Gate(control, fault.name, gather, seconds)
        armed.append((fault, gate))
        if fault.kind == "continue-as-new":
            _CAN_GATE = gate
    patch_settle(control, armed)
    client = await connect(settings)
    wiring = build_activities(settings)
    worker = build_worker(client, settings, wiring, interceptors=[CrashInterceptor(armed)])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        (control / f"ready-{os.getpid()}").write_text(",".join(f.name for f, _ in armed))
        await stop.wait()
    with contextlib.suppress(Exception):
        await wiring.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main())
