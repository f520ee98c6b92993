"""Record the histories the replay tests keep: one order per path of the pipeline, run by the current workflow.

    python -m tests.replay.record                      # v1, into tests/replay/histories/v1/
    python -m tests.replay.record --version v2         # after a workflow change: a new folder, the old ones stay
    python -m tests.replay.record --version v2 --replace --only happy-path   # re-record one path of v2

Each path plays the same people as the workflow tests (tests/workflows/driver.py) against the same harness (a real
dev server with time skipping, loopback simulators, every real activity; tests/replay/harness.py), then writes the
order's history as ``WorkflowHistory.to_json()``: ``<path>.json``, or ``<path>.run-<n>.json`` for each run of a
continued-as-new chain. ``INDEX.md`` lists every file with its path, size and the commit it was recorded at.
The procedure around it is docs/replay.md.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory

from models.documents import DocumentStatus
from models.messages import ExtendCollection, Resubmit, SmsEventKind, SmsVerificationEvent, SupportAction
from models.order import ChangeField, PlaceOrder
from models.stages import Stage, Status
from models.state import DeadlineKind
from starter.client import ActionRefused
from tests.replay.harness import Harness, running_harness
from tests.workflows.driver import TEST_TIMING, Driver, new_order

HISTORIES = Path(__file__).parent / "histories"
REPO = Path(__file__).resolve().parents[2]
PATH_TIMEOUT = 300.0
SECOND = timedelta(seconds=1)
# Code whose change can change the workflow's commands; the index says when any of it was uncommitted.
WORKFLOW_SOURCES = ("workflows", "models")

Play = Callable[[Harness], Awaitable[str]]


@dataclass(frozen=True)
class RecordedPath:
    name: str
    description: str
    play: Play


PATHS: dict[str, RecordedPath] = {}


def path(name: str) -> Callable[[Play], Play]:
    """Register a path: ``play`` drives one order through it and returns the order id."""

    def register(play: Play) -> Play:
        if name in PATHS:
            raise ValueError(f"path {name!r} registered twice")
        PATHS[name] = RecordedPath(name, (play.__doc__ or "").strip().splitlines()[0], play)
        return play

    return register


def person_change() -> PlaceOrder:
    return new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])


async def placed(h: Harness, order: PlaceOrder | None = None, **kwargs: Any) -> str:
    order = order or person_change()
    await h.driver.place(order, **kwargs)
    await h.driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    return order.order_id


async def verdict(d: Driver, oid: str, *, approved: bool, reasons: list[str] | None = None) -> None:
    """The administration decides; the next poll (one poll interval later) sees it.

    The verdict is given only once the order is idle — its poll has asked and been told "not yet" — so the poll
    sees it after the clock moves, never before (a poll still in flight could otherwise end the order before
    ``skip`` runs)."""
    await d.until_idle(await d.orders.handle(oid))
    await d.decide(oid, approved=approved, reasons=reasons)
    await d.skip(oid, d.placed[oid].timing.review_poll_interval * 2)


async def approve(d: Driver, oid: str) -> None:
    await verdict(d, oid, approved=True)
    await d.until_stage(oid, Stage.COMPLETED)


async def to_sms_verification(d: Driver, oid: str) -> None:
    await d.through_collection(oid)
    await d.review(oid)
    await d.until_stage(oid, Stage.SMS_VERIFICATION)


# ------------------------------------------------------------------------------------------------ the paths


@path("happy-path")
async def happy_path(h: Harness) -> str:
    """Every stage from placement to approval and the record update."""
    oid = await placed(h)
    await h.driver.to_administration_review(oid)
    await approve(h.driver, oid)
    return oid


@path("validation-failure")
async def validation_failure(h: Harness) -> str:
    """An invalid order ends at validation with every reason."""
    order = new_order(changes=[ChangeField.DOMAIN_ADD, ChangeField.PROVINCE, ChangeField.DOMAIN_CHANGE])
    await h.driver.place(order)
    await h.driver.until_stage(order.order_id, Stage.INVALID)
    return order.order_id


@path("document-returned-then-accepted")
async def document_returned(h: Harness) -> str:
    """A greyscale photo fails authenticity, is returned, uploaded again and accepted; on to initial review."""
    d = h.driver
    oid = await placed(h)
    first, *rest = [doc.key for doc in (await d.state(oid)).documents]
    await d.upload(oid, first, grey=True)
    for key in rest:
        await d.upload(oid, key)
    await d.until(
        oid,
        lambda s: s.stage is Stage.DOCUMENT_COLLECTION and any(x.status is DocumentStatus.FAILED for x in s.documents),
        "document returned",
    )
    await d.upload(oid, first)
    await d.confirm(oid)
    await d.until_stage(oid, Stage.INITIAL_REVIEW)
    return oid


@path("idle-pause-then-resume")
async def idle_pause(h: Harness) -> str:
    """No upload for 14 days: reminders, then paused for support, who resumes it; collection completes."""
    d = h.driver
    oid = await placed(h)
    await d.skip(oid, d.placed[oid].timing.collection_idle_limit + timedelta(hours=1))
    await d.until_stage(oid, Stage.DOCUMENT_COLLECTION, Status.PAUSED)
    await d.resume(oid)
    await d.until_stage(oid, Stage.DOCUMENT_COLLECTION, Status.ACTIVE)
    await d.through_collection(oid)
    return oid


@path("initial-review-reject-resubmit")
async def initial_review_reject(h: Harness) -> str:
    """The reviewer rejects with a reason; the applicant uploads a fix and resubmits; approved on the second look."""
    d = h.driver
    oid = await placed(h)
    await d.through_collection(oid)
    await d.review(oid, approved=False, reasons=["ID card photo is blurred"])
    correcting = await d.until_stage(oid, Stage.CORRECTION)
    await d.upload(oid, correcting.documents[0].key)
    await d.orders.resubmit(oid, Resubmit(note="new photo"))
    await d.until_stage(oid, Stage.INITIAL_REVIEW)
    await d.review(oid, approved=True)
    await d.until_stage(oid, Stage.SMS_VERIFICATION)
    return oid


@path("initial-review-escalation")
async def initial_review_escalation(h: Harness) -> str:
    """The initial review takes longer than 2 business days: support is alerted, the review still lands."""
    d = h.driver
    oid = await placed(h)
    await d.through_collection(oid)
    await d.skip(oid, timedelta(days=5))
    await d.until(oid, lambda s: s.escalated, "escalated")
    await d.review(oid, approved=True)
    await d.until_stage(oid, Stage.SMS_VERIFICATION)
    return oid


@path("sms-expiry-auto-resubmission")
async def sms_expiry(h: Harness) -> str:
    """The 24-hour SMS window lapses; the order is resubmitted automatically and verified."""
    d = h.driver
    oid = await placed(h)
    await to_sms_verification(d, oid)
    await d.skip(oid, timedelta(hours=25))
    await d.until(oid, lambda s: len(s.submissions) == 2 and s.stage is Stage.SMS_VERIFICATION)
    await d.enter_code(oid)
    await d.until_stage(oid, Stage.ADMINISTRATION_REVIEW)
    return oid


@path("five-wrong-codes")
async def five_wrong_codes(h: Harness) -> str:
    """Five wrong codes return the order; it is resubmitted automatically and verified."""
    d = h.driver
    oid = await placed(h)
    await to_sms_verification(d, oid)
    for _ in range(5):
        await d.enter_code(oid, wrong=True)
    await d.until(oid, lambda s: len(s.submissions) == 2 and s.stage is Stage.SMS_VERIFICATION)
    await d.enter_code(oid)
    await d.until_stage(oid, Stage.ADMINISTRATION_REVIEW)
    return oid


@path("resubmissions-exhausted-paused-resumed")
async def resubmissions_exhausted(h: Harness) -> str:
    """Two SMS windows lapse with one automatic resubmission allowed: paused; support resumes; verified."""
    d = h.driver
    order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE], max_auto_resubmissions=1)
    oid = await placed(h, order)
    await to_sms_verification(d, oid)
    await d.skip(oid, timedelta(hours=25))
    await d.until(oid, lambda s: len(s.submissions) == 2)
    await d.skip(oid, timedelta(hours=25))
    await d.until_stage(oid, Stage.SMS_VERIFICATION, Status.PAUSED)
    await d.resume(oid, reason="applicant is ready now")
    await d.until(oid, lambda s: len(s.submissions) == 3 and s.status is Status.ACTIVE)
    await d.enter_code(oid)
    await d.until_stage(oid, Stage.ADMINISTRATION_REVIEW)
    return oid


@path("resend")
async def resend(h: Harness) -> str:
    """The applicant asks for a new code, which verifies."""
    d = h.driver
    oid = await placed(h)
    await to_sms_verification(d, oid)
    await d.orders.sms_verification(oid, SmsVerificationEvent(event=SmsEventKind.RESEND_REQUESTED))
    await d.enter_code(oid)
    await d.until_stage(oid, Stage.ADMINISTRATION_REVIEW)
    return oid


@path("review-approved-day-1")
async def review_day_one(h: Harness) -> str:
    """The administration approves on the first business day of its review."""
    d = h.driver
    oid = await placed(h)
    await d.to_administration_review(oid)
    await d.skip(oid, timedelta(days=1))
    await approve(d, oid)
    return oid


@path("review-overdue-day-21")
async def review_overdue(h: Harness) -> str:
    """No verdict by the 20th business day: overdue, support alerted, still polled, then approved."""
    d = h.driver
    oid = await placed(h)
    state = await d.to_administration_review(oid)
    due = state.deadline(DeadlineKind.REVIEW_DUE)
    assert due is not None
    await d.skip(oid, due.at - state.updated_at + timedelta(days=1))
    await d.until(oid, lambda s: s.overdue, "overdue")
    await approve(d, oid)
    return oid


async def _until_alerted(d: Driver, oid: str, activity: str) -> None:
    """Let an outage go on past the order's patience and then its alert limit, until support was alerted."""
    await d.until_dependency_wait(oid, activity)
    await d.until_dependency_alerted(oid, activity)


@path("outage-at-validation")
async def validation_outage(h: Harness) -> str:
    """RDAP is down at validation: the wait shows, support is alerted, validation completes once it is back."""
    d = h.driver
    order = person_change()
    h.stack.rdap.fail_next(10_000)
    try:
        await d.place(order)
        await _until_alerted(d, order.order_id, "validate_order")
    finally:
        h.stack.rdap.fail_next(0)
    await d.skip(order.order_id, timedelta(minutes=10))
    await d.until(order.order_id, lambda s: s.stage is Stage.DOCUMENT_COLLECTION and not s.dependency_waits)
    await d.abandon(order.order_id)
    await d.until_stage(order.order_id, Stage.ABANDONED)
    return order.order_id


@path("outage-in-review-poll")
async def review_outage(h: Harness) -> str:
    """The administration's API fails while it reviews: the poll reports an outage (wait, one alert), the wait
    clears when it answers again, then it approves."""
    d = h.driver
    oid = await placed(h)
    await d.to_administration_review(oid)
    h.stack.regulator.fail_next(10_000, 503, method="GET")
    try:
        await _until_alerted(d, oid, "poll_review")
    finally:
        h.stack.regulator.clear_faults()
    await d.skip(oid, timedelta(minutes=10))
    await d.until(oid, lambda s: not s.dependency_waits, "the wait cleared")
    await approve(d, oid)
    return oid


@path("administration-rejection-correction-approval")
async def administration_rejection(h: Harness) -> str:
    """The administration rejects; the applicant corrects and resubmits; reviewed, verified and approved."""
    d = h.driver
    oid = await placed(h)
    await d.to_administration_review(oid)
    await verdict(d, oid, approved=False, reasons=["website name not allowed"])
    await d.until_stage(oid, Stage.CORRECTION)
    await d.orders.resubmit(oid)
    await d.review(oid)
    await d.enter_code(oid)
    await d.until_stage(oid, Stage.ADMINISTRATION_REVIEW)
    await approve(d, oid)
    return oid


async def _abandon_at(h: Harness, stage: str, *, by_signal: bool) -> str:
    d = h.driver
    oid = await placed(h)
    if stage == "confirmation":
        await d.upload_missing(oid)
        await d.until_stage(oid, Stage.CONFIRMATION)
    elif stage == "initial-review":
        await d.through_collection(oid)
    elif stage == "correction":
        await d.through_collection(oid)
        await d.review(oid, approved=False, reasons=["blurred"])
        await d.until_stage(oid, Stage.CORRECTION)
    elif stage == "paused":
        await d.skip(oid, d.placed[oid].timing.collection_idle_limit + timedelta(hours=1))
        await d.until_stage(oid, Stage.DOCUMENT_COLLECTION, Status.PAUSED)
    action = SupportAction(actor="support-wang", reason=f"abandoned at {stage}")
    if by_signal:
        # What support types into `temporal workflow signal`: no answer, the order just ends.
        handle = await d.orders.handle(oid)
        await handle.signal("abandon", action)
    else:
        await d.orders.abandon(oid, action)
    await d.until_stage(oid, Stage.ABANDONED)
    return oid


def _register_abandon_paths() -> None:
    for stage in ("collection", "confirmation", "initial-review", "correction", "paused"):
        for how in ("update", "signal"):

            async def play(h: Harness, stage: str = stage, by_signal: bool = how == "signal") -> str:
                return await _abandon_at(h, stage, by_signal=by_signal)

            message = "the `abandon` signal" if how == "signal" else "the `abandon_order` update"
            play.__doc__ = f"Support abandons the order at {stage.replace('-', ' ')} ({message})."
            path(f"abandon-at-{stage}-by-{how}")(play)


_register_abandon_paths()


@path("abandon-refused-while-locked")
async def abandon_refused(h: Harness) -> str:
    """Abandon is refused (update and signal) once the administration has the order; the order carries on."""
    d = h.driver
    oid = await placed(h)
    await to_sms_verification(d, oid)
    try:
        await d.abandon(oid)
    except ActionRefused:
        pass
    else:
        raise AssertionError("abandon was not refused at sms_verification")
    handle = await d.orders.handle(oid)
    await handle.signal("abandon", SupportAction(actor="support-zhao", reason="try anyway"))
    await d.enter_code(oid)
    await d.until_stage(oid, Stage.ADMINISTRATION_REVIEW)
    try:
        await d.abandon(oid)
    except ActionRefused:
        pass
    else:
        raise AssertionError("abandon was not refused at administration_review")
    return oid


@path("extension")
async def extension(h: Harness) -> str:
    """Support gives the applicant 10 more days (R-ID-1); the idle clock moves; collection completes."""
    d = h.driver
    oid = await placed(h)
    await d.until(oid, lambda s: s.deadline(DeadlineKind.COLLECTION_IDLE) is not None, "collecting with a deadline")
    await d.orders.extend(oid, ExtendCollection(actor="support-wang", reason="ID card lost", days=10))
    await d.until(oid, lambda s: any("extended by 10" in t.reason for t in s.timeline), "extension recorded")
    await d.through_collection(oid)
    return oid


@path("continue-as-new")
async def continue_as_new(h: Harness) -> str:
    """history_limit=50: the order continues as new several times on its way to approval (every run is kept)."""
    d = h.driver
    order = person_change()
    oid = await placed(h, order, history_limit=50)
    for doc in (await d.state(oid)).documents:
        await d.upload(oid, doc.key)
    await d.confirm(oid)
    await d.review(oid)
    await d.enter_code(oid)
    await d.until_stage(oid, Stage.ADMINISTRATION_REVIEW)
    await approve(d, oid)
    final = await d.state(oid)
    assert final.runs > 1, "the history limit should have forced a continue-as-new"
    return oid


@path("image-reuse")
async def image_reuse(h: Harness) -> str:
    """A second order of an approved filing reuses its images, skips collection and is approved."""
    d = h.driver
    # Each order has its own virtual clock: the first order's approval must not lie in the second one's future, or
    # its images are not "approved before" the second order. So the first one (not recorded) is approved in real
    # time, polled every second, with no clock moved.
    polled_every_second = TEST_TIMING.model_copy(update={"review_poll_interval": SECOND})
    first = person_change().model_copy(update={"timing": polled_every_second})
    await placed(h, first)
    await d.to_administration_review(first.order_id)
    await d.decide(first.order_id, approved=True)
    await d.until_stage(first.order_id, Stage.COMPLETED)
    reuse = first.model_copy(
        update={
            "order_id": first.order_id + "-reuse",
            "options": first.options.model_copy(update={"reuse_images": True}),
            "timing": TEST_TIMING,
        }
    )
    await d.place(reuse)
    state = await d.until_stage(reuse.order_id, Stage.CONFIRMATION)
    assert all(doc.status is DocumentStatus.REUSED for doc in state.documents)
    await d.confirm(reuse.order_id)
    await d.review(reuse.order_id)
    await d.enter_code(reuse.order_id)
    await d.until_stage(reuse.order_id, Stage.ADMINISTRATION_REVIEW)
    await approve(d, reuse.order_id)
    return reuse.order_id


# ------------------------------------------------------------------------------------------------ recording


@dataclass(frozen=True)
class Recorded:
    file: str
    path: str
    description: str
    workflow_id: str
    events: int
    size: int
    commit: str


async def settle(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until the order is quiet (no workflow task or short activity in flight, history not growing), so the
    recorded history ends between two steps rather than in the middle of one."""
    last = -1
    while True:
        desc = (await handle.describe()).raw_description
        length = desc.workflow_execution_info.history_length
        busy = desc.HasField("pending_workflow_task") or any(
            a.activity_type.name != "poll_review" for a in desc.pending_activities
        )
        if length == last and not busy:
            return
        last = length
        await asyncio.sleep(0.3)


async def runs_of(h: Harness, order_id: str) -> list[WorkflowHistory]:
    """Every run of the order, first to last: a continued-as-new chain is followed from its first run."""
    latest = await h.orders.handle(order_id)
    await settle(latest)
    history = await latest.fetch_history()
    first_run = history.events[0].workflow_execution_started_event_attributes.first_execution_run_id
    runs: list[WorkflowHistory] = []
    run_id: str | None = first_run
    while run_id:
        history = await h.env.client.get_workflow_handle(latest.id, run_id=run_id).fetch_history()
        runs.append(history)
        last = history.events[-1]
        continued = last.HasField("workflow_execution_continued_as_new_event_attributes")
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id if continued else None
    return runs


def save(folder: Path, entry: RecordedPath, runs: list[WorkflowHistory], commit: str) -> list[Recorded]:
    """Write one path's runs, replacing what an earlier recording of the same path left."""
    for stale in folder.glob(f"{entry.name}*.json"):
        if re.fullmatch(rf"{re.escape(entry.name)}(\.run-\d+)?\.json", stale.name):
            stale.unlink()
    saved = []
    for n, history in enumerate(runs, start=1):
        file = f"{entry.name}.json" if len(runs) == 1 else f"{entry.name}.run-{n}.json"
        text = history.to_json() + "\n"
        (folder / file).write_text(text, encoding="utf-8")
        saved.append(
            Recorded(file, entry.name, entry.description, history.workflow_id, len(history.events), len(text), commit)
        )
    return saved


def git_commit() -> str:
    """HEAD, plus the workflow sources that differed from it (a history of uncommitted code says so)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout

    commit = git("rev-parse", "--short=12", "HEAD").strip()
    dirty = git("status", "--porcelain", "--", *WORKFLOW_SOURCES).splitlines()
    if dirty:
        changed = ", ".join(sorted(line[3:] for line in dirty))
        return f"{commit} + uncommitted {changed}"
    return commit


async def record(version: str, names: list[str], folder: Path) -> list[Recorded]:
    commit = git_commit()
    if "uncommitted" in commit:
        print(f"warning: recording uncommitted workflow code ({commit}); the index will say so", file=sys.stderr)
    recorded: list[Recorded] = []
    async with running_harness() as h:
        for name in names:
            entry = PATHS[name]
            started = asyncio.get_running_loop().time()
            order_id = await asyncio.wait_for(entry.play(h), PATH_TIMEOUT)
            runs = await runs_of(h, order_id)
            saved = save(folder, entry, runs, commit)
            recorded += saved
            write_index(folder, version, saved)  # after every path, so an interrupted recording leaves a true index
            took = asyncio.get_running_loop().time() - started
            counts = "+".join(str(len(r.events)) for r in runs)
            print(f"{version}/{name}: {len(runs)} run(s), {counts} events, {took:.1f}s", flush=True)
    return recorded


# ------------------------------------------------------------------------------------------------ the index

INDEX_HEAD = """# Recorded histories — {version}

Histories of the workflow version `{version}`, replayed by `tests/replay/test_replay.py` on every test run. Never
edit or delete these files while orders of this version may still be running (docs/replay.md). Payloads are
encrypted with the tests' codec key (`tests/conftest.py`), which must stay listed for them to decode.

Recorded with `python -m tests.replay.record --version {version}`; last written {when}.

| file | path | what the order does | events | bytes | workflow id | commit |
|---|---|---|---:|---:|---|---|
"""
ROW = re.compile(r"^\| `(?P<file>[^`]+)` \|")


def write_index(folder: Path, version: str, recorded: list[Recorded]) -> None:
    """INDEX.md lists every history of the folder; rows of paths not re-recorded this time are kept."""
    index = folder / "INDEX.md"
    rows: dict[str, str] = {}
    if index.exists():
        for line in index.read_text(encoding="utf-8").splitlines():
            match = ROW.match(line)
            if match and (folder / match["file"]).exists():
                rows[match["file"]] = line
    for r in recorded:
        rows[r.file] = (
            f"| `{r.file}` | {r.path} | {r.description} | {r.events} | {r.size} | `{r.workflow_id}` | `{r.commit}` |"
        )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = INDEX_HEAD.format(version=version, when=when) + "\n".join(rows[f] for f in sorted(rows)) + "\n"
    index.write_text(body, encoding="utf-8")


# ------------------------------------------------------------------------------------------------ command line


def versions() -> list[str]:
    found = [p.name for p in HISTORIES.glob("v*") if p.is_dir() and re.fullmatch(r"v\d+", p.name)]
    return sorted(found, key=lambda v: int(v[1:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.replay.record", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="v1", help="the version folder to write (vN; default v1)")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(PATHS),
        metavar="PATH",
        help="record just this path (repeatable): " + ", ".join(sorted(PATHS)),
    )
    parser.add_argument(
        "--replace", action="store_true", help="overwrite histories already in the folder (only for unreleased ones)"
    )
    args = parser.parse_args(argv)
    version: str = args.version
    if not re.fullmatch(r"v\d+", version):
        parser.error(f"--version must look like v1, v2, …; got {version!r}")
    folder = HISTORIES / version
    if folder.exists() and any(folder.glob("*.json")) and not args.replace:
        latest = versions()[-1] if versions() else version
        parser.error(
            f"{folder.relative_to(REPO)} already holds histories. A changed workflow gets a new folder: "
            f"--version v{int(latest[1:]) + 1}. (Overwrite with --replace only if {version} was never released.)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = args.only or list(PATHS)
    recorded = asyncio.run(record(version, names, folder))
    total = sum(r.size for r in recorded)
    print(f"wrote {len(recorded)} file(s), {total / 1024:.0f} KiB, to {folder.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
