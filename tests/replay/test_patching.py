"""The documented way to change the workflow (docs/replay.md) works, and skipping it does not.

The change under test is a realistic one: tell the applicant, once they have confirmed, that the order went to the
provider's reviewers — one more ``send_notification`` activity at the end of ``_confirm``. Both variants below make
it, registered under the production workflow name, as the next release would:

* ``GuardedNotice`` behind ``workflow.patched("extra-confirmation-notice")``: every recorded history replays, because
  an order that confirmed before the change has no patch marker and takes the old branch;
* ``UnguardedNotice`` without the guard: every recorded order that confirmed now fails with a nondeterminism error
  (the history says the next command was the initial-review deadline; the code says it is a notification), and the
  others still replay — so the guard is exactly what keeps the running orders alive.
"""

from __future__ import annotations

from pathlib import Path

from temporalio import workflow
from temporalio.client import WorkflowHistory

# The sandbox imports this module again for each replayed workflow. Like workflows/order.py, it passes through
# everything but the workflow code, which is imported afresh and runs sandboxed, as in production.
with workflow.unsafe.imports_passed_through():
    import pytest

    from models.stages import Stage
    from models.state import OrderState
    from tests.replay.test_replay import history_files, label, load, replay
    from workflows import notices
    from workflows.inputs import WORKFLOW_TYPE, OrderInput
from workflows.order import ModificationOrderWorkflow

PATCH_ID = "extra-confirmation-notice"


def confirmation_notice(order_id: str) -> notices.Text:
    return notices.stage_entered(order_id, Stage.INITIAL_REVIEW)


@workflow.defn(name=WORKFLOW_TYPE)
class GuardedNotice(ModificationOrderWorkflow):
    # A subclass must declare its own @workflow.run (the SDK's rule); handlers and @workflow.init are inherited.
    @workflow.run
    async def run(self, input: OrderInput) -> OrderState:
        return await super().run(input)

    async def _confirm(self) -> None:
        await super()._confirm()
        if workflow.patched(PATCH_ID):
            await self._notify("confirmation-received", confirmation_notice(self.order.order_id))


@workflow.defn(name=WORKFLOW_TYPE)
class UnguardedNotice(ModificationOrderWorkflow):
    @workflow.run
    async def run(self, input: OrderInput) -> OrderState:
        return await super().run(input)

    async def _confirm(self) -> None:
        await super()._confirm()
        await self._notify("confirmation-received", confirmation_notice(self.order.order_id))


def confirmed_in(history: WorkflowHistory) -> bool:
    """Did this run accept the applicant's ``confirm``? Then it went through the changed code."""
    return any(
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name == "confirm"
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    )


def test_the_recorded_histories_exercise_the_changed_code() -> None:
    confirmed = [f for f in history_files() if confirmed_in(load(f))]
    assert confirmed, "no recorded history passes confirmation: the patching tests would prove nothing"
    assert len(confirmed) < len(history_files()), "every history confirms: nothing shows the change is that narrow"


@pytest.mark.parametrize("file", history_files(), ids=label)
async def test_a_change_behind_workflow_patched_replays_every_recorded_history(file: Path) -> None:
    failure = await replay(GuardedNotice, file)
    assert failure is None, f"{label(file)}: {type(failure).__name__}: {failure}"


@pytest.mark.parametrize("file", history_files(), ids=label)
async def test_the_same_change_without_the_guard_breaks_every_order_that_confirmed(file: Path) -> None:
    failure = await replay(UnguardedNotice, file)
    if confirmed_in(load(file)):
        assert isinstance(failure, workflow.NondeterminismError), (
            f"{label(file)} went through _confirm, so the unguarded change must not replay; got {failure!r}"
        )
    else:
        assert failure is None, f"{label(file)} never confirmed, so it must replay: {failure!r}"
