"""The baseline: a workflow with the shape of one happy-path order whose every step is a no-op.

It runs the same activities (by name, on its own task queue, each returning at once), upserts the same search
attributes at the same stages, starts its timers at the same waits, and accepts the same updates at the same points
(returning when the stage moves on, as the order's do), with tiny payloads through the same encrypted data
converter. What it costs is what Temporal, the SDK and this machine charge for an order's shape; what the real
pipeline costs on top is icpflow's own work. ``bench.shape`` counts both histories on every run and the result says
whether they still match, so a change to the order workflow that the baseline no longer mirrors shows up at once.

The happy path it mirrors (counted from a real history, 3 documents): 27 activities, 10 search-attribute upserts,
6 updates (3 uploads, confirm, initial review, SMS code), 0 signals, 1 timer (the overdue deadline racing the
review poll; the other waits find their message already there when the applicant answers at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    # Like the order's models, the baseline's live outside the sandbox, so they are not rebuilt per workflow run.
    from bench.baseline_io import BaselineInput, BaselineState, BaselineUpload
    from models import search
    from models.messages import ActionResult
    from models.stages import Stage, Status

BASELINE_WORKFLOW = "BaselineOrderWorkflow"
ACTIVITY_TIMEOUT = timedelta(seconds=60)


@activity.defn(dynamic=True)
async def noop(args: Sequence[RawValue]) -> None:
    """Every activity of the baseline: accepts any arguments, does nothing."""


@workflow.defn(name=BASELINE_WORKFLOW)
class BaselineOrderWorkflow:
    @workflow.init
    def __init__(self, input: BaselineInput) -> None:
        self.input = input
        self.stage = Stage.VALIDATION
        self.uploaded: set[str] = set()
        self.confirmed = False
        self.reviewed = False
        self.verified = False
        self._sms_lock = asyncio.Lock()

    @workflow.run
    async def run(self, input: BaselineInput) -> BaselineState:
        await self._transition(Stage.VALIDATION)
        await self._activity("validate_order")
        await self._activity("required_documents")
        await self._enter(Stage.DOCUMENT_COLLECTION, notify=True)
        await self._wait(lambda: len(self.uploaded) >= input.documents, input.collection_wait)
        await self._enter(Stage.AUTHENTICITY_VERIFICATION, notify=False)
        for _ in range(input.documents):
            await self._activity("verify_document")
        await self._enter(Stage.CONFIRMATION, notify=True)
        await self._wait(lambda: self.confirmed, input.confirmation_wait)
        await self._activity("business_deadline")
        await self._enter(Stage.INITIAL_REVIEW, notify=False)
        await self._wait(lambda: self.reviewed, input.initial_review_wait)
        await self._enter(Stage.SUBMISSION, notify=False)
        await self._activity("submit_to_administration")
        await self._enter(Stage.SMS_VERIFICATION, notify=True)
        await self._wait(lambda: self.verified, input.sms_window)
        await self._activity("business_deadline")
        await self._enter(Stage.ADMINISTRATION_REVIEW, notify=True)
        # The order's poll is one activity racing the overdue timer; so is this one.
        poll = workflow.start_activity("poll_review", "", start_to_close_timeout=ACTIVITY_TIMEOUT)
        await workflow.wait([poll], timeout=input.review_due.total_seconds())
        await poll
        await self._enter(Stage.RECORD_UPDATE, notify=False)
        await self._activity("update_filing_record")
        await self._activity("archive_documents")
        await self._enter(Stage.COMPLETED, notify=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    # -- the order's updates, with validators that refuse what the order would refuse

    @workflow.update
    async def upload_document(self, upload: BaselineUpload) -> ActionResult:
        self.uploaded.add(upload.key)
        return self._result()

    @upload_document.validator
    def _validate_upload(self, upload: BaselineUpload) -> None:
        self._refuse_unless(Stage.DOCUMENT_COLLECTION)

    @workflow.update
    async def confirm(self, _: BaselineUpload | None = None) -> ActionResult:
        self.confirmed = True
        await workflow.wait_condition(lambda: self.stage is not Stage.CONFIRMATION)
        return self._result()

    @confirm.validator
    def _validate_confirm(self, _: BaselineUpload | None = None) -> None:
        self._refuse_unless(Stage.CONFIRMATION)

    @workflow.update
    async def record_initial_review(self, _: BaselineUpload | None = None) -> ActionResult:
        self.reviewed = True
        await workflow.wait_condition(lambda: self.stage is not Stage.INITIAL_REVIEW)
        return self._result()

    @record_initial_review.validator
    def _validate_review(self, _: BaselineUpload | None = None) -> None:
        self._refuse_unless(Stage.INITIAL_REVIEW)

    @workflow.update
    async def sms_verification(self, _: BaselineUpload | None = None) -> ActionResult:
        # As in the order: the code is checked with the administration (an activity) inside the handler.
        async with self._sms_lock:
            await self._activity("verify_sms_code")
            self.verified = True
        await workflow.wait_condition(lambda: self.stage is not Stage.SMS_VERIFICATION)
        return self._result()

    @sms_verification.validator
    def _validate_sms(self, _: BaselineUpload | None = None) -> None:
        self._refuse_unless(Stage.SMS_VERIFICATION)

    @workflow.query
    def state(self) -> BaselineState:
        return BaselineState(
            order_id=self.input.order_id,
            stage=self.stage,
            document_keys=[f"doc-{i}" for i in range(self.input.documents)],
        )

    # -- the order's plumbing, minus the work

    async def _enter(self, stage: Stage, *, notify: bool) -> None:
        await self._transition(stage)
        if notify:
            await self._activity("send_notification")

    async def _transition(self, stage: Stage) -> None:
        self.stage = stage
        workflow.upsert_search_attributes(
            [
                search.ORDER_ID.value_set(self.input.order_id),
                search.STAGE.value_set(stage.value),
                search.PROVINCE.value_set("beijing"),
                search.KIND.value_set("website"),
                search.OVERDUE.value_set(False),
            ]
        )
        await self._activity("record_transition")

    async def _activity(self, name: str) -> None:
        await workflow.execute_activity(name, "", start_to_close_timeout=ACTIVITY_TIMEOUT)

    async def _wait(self, condition: Callable[[], bool], timeout: timedelta) -> None:
        await workflow.wait_condition(condition, timeout=timeout.total_seconds())

    def _refuse_unless(self, stage: Stage) -> None:
        if self.stage is not stage:
            raise ApplicationError(f"the baseline order is at {self.stage.value}", type="ActionRefused")

    def _result(self) -> ActionResult:
        return ActionResult(order_id=self.input.order_id, stage=self.stage, status=Status.ACTIVE)


def baseline_worker(client: Client, task_queue: str, **options: Any) -> Worker:
    """The baseline's worker: same client (so the same data converter and runtime), its own task queue, and the
    production sandbox with the baseline's own code passed through, as the order's is — unless ``options`` say
    otherwise (``--runner unsandboxed``)."""
    from worker import workflow_runner

    options.setdefault("workflow_runner", workflow_runner("bench"))
    return Worker(client, task_queue=task_queue, workflows=[BaselineOrderWorkflow], activities=[noop], **options)
