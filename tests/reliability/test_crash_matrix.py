"""The crash matrix: the real worker process SIGKILLed at eight points of an order's life, 20 orders at each, a new
process started each time; every order is still approved, every notice reaches the applicant once (twice at most
inside the documented at-least-once window, measured here), the administration sees one submission per order, and
the read model says what each workflow says.

The points are spread over two lanes that run at once, each with 20 orders and its own worker process on its own
task queue, on one Temporal dev server (a SQLite file) and one PostgreSQL read model; the simulators answer in this
process. Every order of a lane passes every point of its lane, so each point sees 20 orders while the machine only
carries 40. A lane's orders move in lockstep and reach each point together: the worker, armed with the lane's
points, holds each arriving order inside the point until all 20 are there (or a few seconds have passed), then
kills itself with all of them inside (tests/reliability/crash_worker.py); started again, it stays armed for the
orders and points it has not killed yet. Two points are workflow-side and killed from the test: while upload updates
are in flight, and while every order waits for its SMS code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from bench.rig import Outside, bench_settings, cpu_seconds
from models.settings import Settings
from models.stages import Stage, Status
from models.state import OrderState
from store import db
from tests.fixtures_db import temporary_postgres_database
from tests.reliability.crash_checks import (
    Deliveries,
    WindowStats,
    check_deliveries,
    check_read_model,
    check_submissions,
    email_acceptance_to_commit,
)
from tests.reliability.crash_driver import Group
from tests.reliability.crash_rig import CRASH_TIMING, SMS_WINDOW, CrashWorker, DevServer, supervise
from tests.reliability.crash_worker import window_channel

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]

# A quick local look: CRASH_MATRIX_ORDERS=3 (orders per lane, hence per point).
ORDERS = int(os.environ.get("CRASH_MATRIX_ORDERS", "20"))
# Continue-as-new past this many events (OrderInput's smallest): an order reaches it while collecting documents.
HISTORY_LIMIT = 50


@dataclass(frozen=True)
class Point:
    name: str
    lane: str
    proves: str
    spec: str = ""  # the crash worker's point (crash_worker.py); empty: the test kills the worker


POINTS = (
    Point(
        "validation",
        "a",
        "validate_order ran (RDAP asked), its result lost: validation runs again and the order goes on",
        "activity:validate_order:after",
    ),
    Point(
        "upload-update",
        "a",
        "upload updates in flight when the worker dies: every document lands once the caller tries again",
    ),
    Point(
        "notification-send",
        "a",
        "the provider accepted the notice, its outbox row not yet marked sent (the at-least-once window): that "
        "notice goes again, once; every other notice exactly once",
        "notification-window:stage:confirmation:",
    ),
    Point(
        "review-poll",
        "a",
        "inside the long review poll: the poll is retried and finds the verdict",
        "activity:poll_review:before",
    ),
    Point(
        "continue-as-new",
        "b",
        "the workflow task issuing continue-as-new: the new process issues it again, the state carried whole",
        "continue-as-new",
    ),
    Point(
        "read-model-write",
        "b",
        "the read-model row and audit event committed, the activity not completed: the retry changes nothing",
        "activity:record_transition:after:initial_review",
    ),
    Point(
        "submission",
        "b",
        "the administration accepted the submission and texted the code, the receipt lost: the retry with the same "
        "idempotency key gets the same submission and no second code",
        "activity:submit_to_administration:after",
    ),
    Point("sms-wait", "b", "every order waiting for its SMS code: the wait and its deadline survive a new process"),
)
LANES = {"a": None, "b": HISTORY_LIMIT}  # lane → history limit of its orders
# A quick local look at one lane: CRASH_MATRIX_LANES=b.
SELECTED = [lane for lane in LANES if lane in os.environ.get("CRASH_MATRIX_LANES", lane)]


@dataclass
class Rig:
    root: Path
    server: DevServer
    client: Client
    outside: Outside
    database_url: str

    def settings(self, name: str) -> Settings:
        return bench_settings(
            self.root / name, self.outside, self.server.address, self.database_url, task_queue=f"crash-{name}"
        )


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    root = tmp_path_factory.mktemp("crash-matrix")
    outside = await Outside.start(sms_window=SMS_WINDOW)
    server = DevServer(root / "temporal")
    try:
        async with temporary_postgres_database() as database_url:
            await db.upgrade(database_url)
            client = await server.start(bench_settings(root, outside, "", database_url))
            yield Rig(root, server, client, outside, database_url)
    finally:
        await server.stop()
        await outside.stop()


@dataclass
class Lane:
    """One lane's run: what each point caught, and what the sinks received."""

    name: str
    group: Group
    worker: CrashWorker
    caught: dict[str, int] = field(default_factory=dict)  # point → orders inside it at a kill
    kills: dict[str, int] = field(default_factory=dict)  # point → worker processes killed there
    steps: list[str] = field(default_factory=list)
    finals: dict[str, OrderState] = field(default_factory=dict)
    deliveries: Deliveries = field(default_factory=Deliveries)
    seconds: float = 0.0


async def run_lane(rig: Rig, lane_name: str) -> Lane:
    points = [p for p in POINTS if p.lane == lane_name]
    settings = rig.settings(f"lane-{lane_name}")
    spec = ";".join(f"{p.name}={p.spec}" for p in points if p.spec)
    worker = CrashWorker(settings, rig.root / f"lane-{lane_name}", spec, gather=ORDERS)
    # Orders are confirmed, reviewed and given their codes as soon as the stage shows, also while due to continue as
    # new: the case that used to hang (workflows/order.py, _continue_as_new_now).
    history_limit = LANES[lane_name]
    group = Group(
        rig.client,
        settings,
        rig.outside,
        CRASH_TIMING,
        ORDERS,
        history_limit=history_limit,
    )
    lane = Lane(lane_name, group, worker)
    names = {p.name for p in points}
    loop = asyncio.get_running_loop()
    started = loop.time()

    def mark(step: str) -> None:
        lane.steps.append(f"{step} {loop.time() - started:.0f}s")

    await worker.start()
    stop = asyncio.Event()
    supervisor = asyncio.create_task(supervise(worker, rearm=True, stop=stop))
    try:
        await group.place()
        await group.until(Stage.DOCUMENT_COLLECTION)
        mark("collecting")
        if "continue-as-new" in names:
            await group.quiet()
            first_runs = {o.order_id: await group.run_id(o) for o in group.orders}
            rounds = await group.replace_until_continued(first_runs)
            mark(f"continued as new ({rounds} rounds)")
        if "upload-update" in names:
            lane.caught["upload-update"] = await kill_while_uploading(group, worker)
            lane.kills["upload-update"] = 1
        await group.upload()
        await group.confirm()
        mark("confirmed")
        await group.review()
        await group.until(Stage.SMS_VERIFICATION)
        mark("sms")
        if "sms-wait" in names:
            await group.quiet()
            worker.kill()
            lane.caught["sms-wait"], lane.kills["sms-wait"] = ORDERS, 1
        await group.enter_codes()
        lane.finals = await group.finished()
        lane.seconds = loop.time() - started
        mark("approved")
        await check_lane(rig, lane, points)
        return lane
    finally:
        stop.set()
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        await worker.stop()


async def check_lane(rig: Rig, lane: Lane, points: list[Point]) -> None:
    group, worker = lane.group, lane.worker
    for order_id, final in lane.finals.items():
        assert (final.stage, final.status) == (Stage.COMPLETED, Status.APPROVED), (order_id, final.stage)
    kills = worker.kills()
    for point in points:
        if not point.spec:
            continue
        records = [k for k in kills if k["point"] == point.name]
        caught = {k["workflow_id"] for k in records}
        lane.caught[point.name] = len(caught)
        lane.kills[point.name] = len({k["pid"] for k in records})
        assert caught == set(group.workflow_ids), (
            f"{point.name}: {len(caught)} of {ORDERS} orders were killed inside the point"
        )
    by_point = {p.name: [k for k in kills if k["point"] == p.name] for p in points}
    if "continue-as-new" in by_point:
        await check_continued_after_the_kill(rig.client, by_point["continue-as-new"], lane.finals)
    engine = db.create_engine(rig.database_url)
    try:
        sessions = db.session_factory(engine)
        lane.deliveries = await check_deliveries(sessions, rig.outside, group.orders, worker)
        await check_read_model(sessions, lane.finals)
    finally:
        await engine.dispose()
    await check_submissions(rig.outside, group.orders)
    if "notification-send" in by_point:
        window = by_point["notification-send"]
        assert all(k["channel"] == window_channel(k["order_id"]) for k in window)
        assert {k["channel"] for k in window} == {"email", "sms"} or ORDERS < 4, "both channels are killed"


async def kill_while_uploading(group: Group, worker: CrashWorker) -> int:
    """Send every document of every order at once and SIGKILL the worker once a third of the updates have been
    answered: the rest are in flight — admitted, queued for the worker or being applied. Returns how many."""
    await group.quiet()
    calls = []
    for order in group.orders:
        for key in await group.document_keys(order):
            calls.append(group.update(order, "upload_document", group.upload_of(order, key)))
    tasks = [asyncio.ensure_future(c) for c in calls]
    for answered, next_done in enumerate(asyncio.as_completed(tasks), start=1):
        with contextlib.suppress(Exception):
            await next_done
        if answered >= len(tasks) // 3:
            break
    in_flight = sum(not t.done() for t in tasks)
    worker.kill()
    # The callers still waiting get an answer from the new process or an error; either way the group's upload
    # step sends again whatever has not landed.
    await asyncio.gather(*tasks, return_exceptions=True)
    assert in_flight > 0, "the kill did not land while upload updates were in flight"
    return in_flight


async def check_continued_after_the_kill(
    client: Client, kills: list[dict[str, Any]], finals: dict[str, OrderState]
) -> None:
    """The run that was continuing as new when its process died did continue as new (on the next process)."""
    for kill in kills:
        desc = await client.get_workflow_handle(kill["workflow_id"], run_id=kill["run_id"]).describe()
        assert desc.status == WorkflowExecutionStatus.CONTINUED_AS_NEW, (kill["workflow_id"], desc.status)
    assert all(f.runs > 1 for f in finals.values())


@pytest.mark.timeout(900)
async def test_worker_killed_at_eight_points_every_order_is_approved_and_notified_once(
    rig: Rig, record_property: Callable[[str, object], None]
) -> None:
    began = time.monotonic()
    outcomes = await asyncio.gather(*(run_lane(rig, name) for name in SELECTED), return_exceptions=True)
    failures = [(name, o) for name, o in zip(SELECTED, outcomes, strict=True) if isinstance(o, BaseException)]
    lanes = [o for o in outcomes if isinstance(o, Lane)]

    print(f"\ncrash matrix: {len(POINTS)} points, {ORDERS} orders each, in {time.monotonic() - began:.0f} s")
    for lane in lanes:
        print(f"lane {lane.name}: worker started {lane.worker.starts} times; " + ", ".join(lane.steps))
    print(f"{'point':<20}{'lane':>5}{'orders':>8}{'kills':>7}{'repeated notices':>18}")
    for lane in lanes:
        for point in (p for p in POINTS if p.lane == lane.name):
            repeated = [d for d in lane.deliveries.duplicates if d.order_id and point.name == "notification-send"]
            print(
                f"{point.name:<20}{lane.name:>5}{lane.caught.get(point.name, 0):>8}{lane.kills.get(point.name, 0):>7}"
                f"{len(repeated) if point.spec.startswith('notification') else '':>18}"
            )
            record_property(f"{point.name}.orders", lane.caught.get(point.name, 0))
            record_property(f"{point.name}.kills", lane.kills.get(point.name, 0))
        record_property(f"lane-{lane.name}.notices", lane.deliveries.notices)
        record_property(f"lane-{lane.name}.repeated", len(lane.deliveries.duplicates))
        print(
            f"lane {lane.name}: {lane.deliveries.notices} notices, {lane.deliveries.delivered} delivered, "
            f"{len(lane.deliveries.duplicates)} repeated inside the at-least-once window; "
            f"backend calls repeated {lane.group.retries} times"
        )

    settles = [s for lane in lanes for s in lane.worker.settles()]
    window = WindowStats.of(settles)
    email_window = WindowStats.of(
        {"answered": 0.0, "committed": ms / 1000} for ms in email_acceptance_to_commit(rig.outside, settles)
    )
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = cpu_seconds(rig.server.proc.pid) if rig.server.proc else 0.0
    print(
        f"CPU: test process {me.ru_utime + me.ru_stime:.0f} s, worker processes "
        f"{children.ru_utime + children.ru_stime:.0f} s, dev server {server_cpu:.0f} s"
    )
    print(f"at-least-once window (provider answer -> outbox commit): {window}")
    print(f"email window (SMTP sink acceptance -> outbox commit): {email_window}")
    record_property("window_median_ms", round(window.median_ms, 1))
    record_property("window_max_ms", round(window.max_ms, 1))
    if failures:
        raise AssertionError("; ".join(f"lane {name}: {err!r}" for name, err in failures)) from failures[0][1]
