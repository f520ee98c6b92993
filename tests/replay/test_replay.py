"""Every recorded history of every released workflow version replays on the current workflow code.

A running order is replayed by whichever worker picks it up next, on whatever code that worker has: if today's
``ModificationOrderWorkflow`` would issue different commands than the version that wrote an order's history, that
order gets stuck with a nondeterminism error. These tests replay the histories kept under ``histories/vN/`` (one
order per path of the pipeline, recorded by ``python -m tests.replay.record``) with the production data converter,
one test per file, so a failure names the version and the path. What to do when one fails: docs/replay.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from starter.codec import data_converter
from tests.conftest import CODEC_SETTINGS
from workflows.order import ModificationOrderWorkflow

HISTORIES = Path(__file__).parent / "histories"
CHAIN_RUN = re.compile(r"^(?P<path>[a-z0-9-]+)(\.run-(?P<run>\d+))?\.json$")

# The paths every version must record (the reliability issue's list). A path may be added, never dropped: an order
# on a dropped path would no longer be proven to survive the next deploy.
REQUIRED_PATHS = frozenset(
    {
        "happy-path",
        "validation-failure",
        "document-returned-then-accepted",
        "idle-pause-then-resume",
        "initial-review-reject-resubmit",
        "initial-review-escalation",
        "sms-expiry-auto-resubmission",
        "five-wrong-codes",
        "resubmissions-exhausted-paused-resumed",
        "resend",
        "review-approved-day-1",
        "review-overdue-day-21",
        "administration-rejection-correction-approval",
        *(
            f"abandon-at-{stage}-by-{how}"
            for stage in ("collection", "confirmation", "initial-review", "correction", "paused")
            for how in ("update", "signal")
        ),
        "abandon-refused-while-locked",
        "extension",
        "continue-as-new",
        "image-reuse",
        "outage-at-validation",
        "outage-in-review-poll",
    }
)


def version_folders() -> list[Path]:
    """``histories/v1``, ``v2``, … in version order."""
    folders = [p for p in HISTORIES.iterdir() if p.is_dir() and re.fullmatch(r"v\d+", p.name)]
    return sorted(folders, key=lambda p: int(p.name[1:]))


def history_files() -> list[Path]:
    return [f for folder in version_folders() for f in sorted(folder.glob("*.json"))]


def label(file: Path) -> str:
    return f"{file.parent.name}/{file.name}"


def path_name(file: Path) -> str:
    match = CHAIN_RUN.match(file.name)
    assert match, f"{label(file)}: history files are named <path>.json or <path>.run-<n>.json"
    return match["path"]


def load(file: Path) -> WorkflowHistory:
    # The workflow id is not part of to_json(); the workflow's commands never depend on it.
    return WorkflowHistory.from_json(label(file), file.read_text(encoding="utf-8"))


def production_converter() -> DataConverter:
    """The converter the client facade and the worker use (pydantic JSON, encrypted), with the tests' codec key:
    the recorded histories were written by the test harness with that key."""
    return data_converter(CODEC_SETTINGS)


async def replay(workflow: type, file: Path) -> BaseException | None:
    """Replay one history with ``workflow``; the failure (nondeterminism or another error), or None."""
    replayer = Replayer(workflows=[workflow], data_converter=production_converter())
    result = await replayer.replay_workflow(load(file), raise_on_replay_failure=False)
    return result.replay_failure


@pytest.mark.parametrize("file", history_files(), ids=label)
async def test_recorded_history_replays_on_the_current_workflow(file: Path) -> None:
    failure = await replay(ModificationOrderWorkflow, file)
    if failure is not None:
        pytest.fail(
            f"{label(file)} ({path_name(file)}) no longer replays: {type(failure).__name__}: {failure}\n"
            "An order of that version would be stuck on this code. Guard the change with workflow.patched(...) "
            "(docs/replay.md).",
            pytrace=False,
        )


def test_the_latest_version_records_every_path_of_the_pipeline() -> None:
    from tests.replay.record import PATHS

    assert set(PATHS) == REQUIRED_PATHS, "the recorder and this list must name the same paths"
    folders = version_folders()
    assert folders, f"no recorded histories under {HISTORIES}: run python -m tests.replay.record"
    latest = folders[-1]
    recorded = {path_name(f) for f in latest.glob("*.json")}
    missing = sorted(REQUIRED_PATHS - recorded)
    assert not missing, f"{latest.name} has no history for: {', '.join(missing)}"


@pytest.mark.parametrize("folder", version_folders(), ids=lambda p: p.name)
def test_version_folder_holds_exactly_what_its_index_lists(folder: Path) -> None:
    """A deleted (or stray) history is noticed: INDEX.md is the folder's manifest."""
    index = folder / "INDEX.md"
    assert index.exists(), f"{folder.name}/INDEX.md is missing"
    listed = set(re.findall(r"^\| `([^`]+\.json)` \|", index.read_text(encoding="utf-8"), flags=re.MULTILINE))
    present = {f.name for f in folder.glob("*.json")}
    assert listed, f"{folder.name}/INDEX.md lists no history"
    assert not listed - present, f"{folder.name}: listed but missing: {sorted(listed - present)}"
    assert not present - listed, f"{folder.name}: present but not in INDEX.md: {sorted(present - listed)}"
    runs: dict[str, list[int]] = {}
    for name in present:
        match = CHAIN_RUN.match(name)
        assert match, f"{folder.name}/{name}: history files are named <path>.json or <path>.run-<n>.json"
        if match["run"]:
            runs.setdefault(match["path"], []).append(int(match["run"]))
    for chain, numbers in runs.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), f"{folder.name}/{chain}: a run of the chain is gone"
        assert f"{chain}.json" not in present, f"{folder.name}/{chain}: both a single history and runs"
