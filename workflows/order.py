"""ModificationOrderWorkflow: one durable workflow per ICP filing modification order.

The ``run`` method reads like the pipeline picture in the README: one method per stage, each returning once the
order has moved on. Every wait is a durable timer or a message, and every deadline is an absolute instant kept in
``self._state``, so a stage method can be entered again after a worker restart or a continue-as-new and pick up
exactly where it was. Workflows decide, activities do: nothing here touches I/O, the wall clock or a calendar.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from models import search
    from models.activity_io import (
        ArchiveDocuments,
        BusinessDeadline,
        BusinessDeadlineResult,
        FilingUpdate,
        Notification,
        NotificationResult,
        OrderRecord,
        PlacedOrder,
        RequiredDocuments,
        ReusableDocuments,
        ReusableDocumentsQuery,
        ReviewDecision,
        ReviewPoll,
        ReviewPollResult,
        ReviewVerdict,
        SmsCode,
        SmsCodeOutcome,
        SmsCodeResult,
        SubmissionReceipt,
        SubmissionRef,
        SubmitToAdministration,
        SupportAlert,
        ValidationResult,
        VerificationResult,
        VerifyDocument,
    )
    from models.documents import DocumentRef, DocumentStatus
    from models.messages import (
        ActionResult,
        Confirm,
        ExtendCollection,
        InitialReviewDecision,
        Resubmit,
        SmsEventKind,
        SmsVerificationEvent,
        SupportAction,
        UploadDocument,
    )
    from models.order import Person, PlaceOrder
    from models.stages import Actor, Stage, Status, WaitingOn
    from models.state import (
        Deadline,
        DeadlineKind,
        DependencyWait,
        DocumentState,
        NotificationFailure,
        OrderState,
        PendingAction,
        Submission,
        Transition,
        Violation,
    )
    from workflows import notices
    from workflows.inputs import WORKFLOW_TYPE, OrderInput

# Activities are retried until they succeed, with a bounded backoff: an outage is waited out, never dropped.
DEPENDENCY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
ACTIVITY_TIMEOUT = timedelta(seconds=60)
WRONG_CODE_LIMIT = 5
# The review poll gives up on an outage with this error type (activities/regulator.py's REGULATOR_OUTAGE).
REGULATOR_OUTAGE = "RegulatorOutage"
# Patch ids (docs/replay.md): never reuse one.
PATCH_DATABASE_OUTAGE_ALERT = "database-outage-alert-for-notices"
PATCH_CAN_AFTER_HANDLERS = "continue-as-new-after-handlers"


class _Interrupted(Exception):
    """A wait was cut short: the order was abandoned, or it is time to continue as new."""


@workflow.defn(name=WORKFLOW_TYPE)
class ModificationOrderWorkflow:
    @workflow.init
    def __init__(self, input: OrderInput) -> None:
        self.order: PlaceOrder = input.order
        self.history_limit = input.history_limit
        info = workflow.info()
        # Placed when the execution started: the same instant the starter sees, so it can answer at once.
        self._state: OrderState = input.carried or OrderState.placed(
            input.order, info.workflow_id, info.workflow_start_time
        )
        if input.carried is not None:
            self._state.runs += 1
        # A support request waits here until the main loop applies it between two steps.
        self._abandon: SupportAction | None = None
        self._support_notes: list[tuple[str, str]] = []
        # Serialises the handlers that call activities (SMS codes) against each other.
        self._sms_lock = asyncio.Lock()

    # ------------------------------------------------------------------ the pipeline

    @workflow.run
    async def run(self, input: OrderInput) -> OrderState:
        if input.carried is None:
            await self._transition(Stage.VALIDATION, reason="order placed", actor=Actor.BACKEND)
        else:
            self._upsert_search_attributes()  # a new run starts with none: visibility must still find the order
        stages: dict[Stage, Callable[[], Any]] = {
            Stage.VALIDATION: self._validate,
            Stage.DOCUMENT_COLLECTION: self._collect_documents,
            Stage.AUTHENTICITY_VERIFICATION: self._verify_authenticity,
            Stage.CONFIRMATION: self._confirm,
            Stage.INITIAL_REVIEW: self._initial_review,
            Stage.SUBMISSION: self._submit,
            Stage.SMS_VERIFICATION: self._sms_verification,
            Stage.ADMINISTRATION_REVIEW: self._administration_review,
            Stage.CORRECTION: self._correction,
            Stage.RECORD_UPDATE: self._record_update,
        }
        while not self._state.stage.terminal:
            if self._abandon is not None and not self._locked():
                await self._record_support_notes()  # an extension granted just before still reaches the audit trail
                await self._apply_abandon(self._abandon)
                break
            if self._continue_as_new_now():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    OrderInput(order=self.order, carried=self._state, history_limit=self.history_limit)
                )
            try:
                if self._state.status is Status.PAUSED:
                    await self._wait(lambda: self._state.status is not Status.PAUSED)
                    # Support resumed it: the applicant's idle clock starts again.
                    self._state.last_applicant_activity_at = workflow.now()
                await self._record_support_notes()
                await stages[self._state.stage]()
            except _Interrupted:
                continue
            except ActivityError as err:
                # A dependency refused for good (not an outage: those are retried). Never lose the order: pause it
                # for support, who can resume it once the cause is fixed.
                await self._pause(f"{self._state.stage.value} failed: {_cause(err)}", alert="dependency-failed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _validate(self) -> None:
        result = await self._activity(
            "validate_order", PlacedOrder(order=self.order, as_of=workflow.now()), ValidationResult
        )
        self._state.warnings = list(result.warnings)
        self._state.pending_actions = list(result.pending_actions)
        if not result.valid:
            self._state.violations = list(result.violations)
            reasons = "\n".join(f"- [{v.rule_id}] {v.field}: {v.message} {v.fix}".rstrip() for v in result.violations)
            await self._transition(
                Stage.INVALID,
                status=Status.INVALID,
                waiting_on=WaitingOn.NOBODY,
                reason=f"{len(result.violations)} violation(s)",
            )
            await self._notify(
                f"stage:{Stage.INVALID.value}",
                notices.stage_entered(self.order.order_id, Stage.INVALID, reasons),
            )
            return
        required = await self._activity("required_documents", self.order, RequiredDocuments)
        reusable: dict[str, DocumentRef] = {}
        if self.order.options.reuse_images:
            found = await self._activity(
                "find_reusable_documents",
                ReusableDocumentsQuery(entity_filing_number=self.order.entity_filing_number, as_of=workflow.now()),
                ReusableDocuments,
            )
            reusable = dict(found.documents)
        self._state.documents = [
            DocumentState(
                key=r.key,
                kind=r.kind,
                subject=r.subject,
                status=DocumentStatus.REUSED if r.key in reusable else DocumentStatus.MISSING,
                ref=reusable.get(r.key),
            )
            for r in required.requirements
        ]
        self._state.last_applicant_activity_at = workflow.now()
        await self._enter(Stage.DOCUMENT_COLLECTION, WaitingOn.APPLICANT, reason="order is valid")

    async def _collect_documents(self) -> None:
        """Wait for every required document; remind the applicant; pause the order when it stays idle too long."""
        while self._missing_documents():
            idle_at = self._idle_deadline(self.order.timing.collection_idle_limit, DeadlineKind.COLLECTION_IDLE)
            remind_at = self._next_reminder_at()
            before = self._state.last_applicant_activity_at
            wake_at = min(idle_at, remind_at)
            self._refresh_pending()
            arrived = await self._wait(self._applicant_acted_since(before), until=wake_at)
            if arrived:
                continue
            if workflow.now() >= idle_at:
                await self._pause_for_idle("no document uploaded")
            else:
                self._state.reminders_sent += 1
                self._state.last_reminder_at = workflow.now()
                text = notices.reminder(self.order.order_id, self._missing_documents(), self._state.reminders_sent)
                await self._notify(f"reminder:{self._state.reminders_sent}", text)
        self._drop_deadlines(DeadlineKind.NEXT_REMINDER, DeadlineKind.COLLECTION_IDLE)
        await self._enter(Stage.AUTHENTICITY_VERIFICATION, WaitingOn.SYSTEM, reason="all documents received")

    async def _verify_authenticity(self) -> None:
        failures: list[tuple[str, str]] = []
        for doc in self._state.documents:
            if doc.status is not DocumentStatus.UPLOADED or doc.ref is None:
                continue
            result = await self._activity(
                "verify_document",
                VerifyDocument(
                    order_id=self.order.order_id,
                    key=doc.key,
                    kind=doc.kind,
                    ref=doc.ref,
                    owner=self.order.entity_filing_number,
                    person=self.order.person_in_charge(doc.subject),
                ),
                VerificationResult,
            )
            if result.passed:
                doc.status, doc.failure_reason = DocumentStatus.VERIFIED, ""
            else:
                doc.status, doc.failure_reason = DocumentStatus.FAILED, result.reason
                doc.failures += 1
                failures.append((doc.key, result.reason))
        if failures:
            self._state.confirmed = False
            self._state.last_applicant_activity_at = workflow.now()
            await self._notify(
                f"documents-returned:{sum(d.failures for d in self._state.documents)}",
                notices.documents_returned(self.order.order_id, failures),
            )
            await self._enter(
                Stage.DOCUMENT_COLLECTION,
                WaitingOn.APPLICANT,
                reason="returned: " + "; ".join(f"{k}: {r}" for k, r in failures),
            )
        elif self._state.confirmed:
            await self._enter_initial_review()
        else:
            self._state.last_applicant_activity_at = workflow.now()
            await self._enter(Stage.CONFIRMATION, WaitingOn.APPLICANT, reason="documents verified")

    async def _confirm(self) -> None:
        while not self._state.confirmed:
            idle_at = self._idle_deadline(self.order.timing.confirmation_idle_limit, DeadlineKind.CONFIRMATION_IDLE)
            self._refresh_pending()
            if not await self._wait(lambda: self._state.confirmed, until=idle_at):
                await self._pause_for_idle("information not confirmed")
        self._drop_deadlines(DeadlineKind.CONFIRMATION_IDLE)
        await self._enter_initial_review()

    async def _enter_initial_review(self) -> None:
        due = await self._business_deadline(self.order.timing.initial_review_business_days)
        self._set_deadline(DeadlineKind.INITIAL_REVIEW_ESCALATION, due)
        self._state.review_reasons = []
        self._state.escalated = False
        await self._enter(Stage.INITIAL_REVIEW, WaitingOn.REVIEWER, reason="applicant confirmed")

    async def _initial_review(self) -> None:
        """A human reviewer decides; past 2 business days support is told, and the order keeps waiting."""
        due = self._state.deadline(DeadlineKind.INITIAL_REVIEW_ESCALATION)
        self._refresh_pending()
        decided = await self._wait(
            self._review_recorded, until=None if self._state.escalated or due is None else due.at
        )
        if not decided:
            self._state.escalated = True
            await self._alert(
                "initial-review-escalated", "the provider's initial review took longer than 2 business days"
            )
            await self._wait(self._review_recorded)
        decision = self._review_decision
        assert decision is not None
        self._review_decision = None
        self._drop_deadlines(DeadlineKind.INITIAL_REVIEW_ESCALATION)
        if decision.approved:
            await self._enter(
                Stage.SUBMISSION,
                WaitingOn.SYSTEM,
                actor=Actor.REVIEWER,
                actor_name=decision.reviewer,
                reason="initial review approved",
            )
            return
        self._state.review_reasons = list(decision.reasons)
        await self._send_back_for_correction(
            "; ".join(decision.reasons),
            actor=Actor.REVIEWER,
            actor_name=decision.reviewer,
            source="initial review",
        )

    async def _submit(self) -> None:
        """Submit to the administration with an idempotency key per attempt; from here the order is locked."""
        sub = self._state.current_submission
        if sub is None or sub.outcome:
            attempt = len(self._state.submissions) + 1
            sub = Submission(attempt=attempt, idempotency_key=f"{self.order.order_id}:submission:{attempt}")
            self._state.submissions.append(sub)
        receipt = await self._activity(
            "submit_to_administration",
            SubmitToAdministration(
                order_id=self.order.order_id,
                idempotency_key=sub.idempotency_key,
                kind=self.order.kind,
                province=self.order.province,
                filing_number=self.order.filing_number,
                mobiles=self._verification_mobiles(),
            ),
            SubmissionReceipt,
        )
        sub.submission_id = receipt.submission_id
        sub.submitted_at = workflow.now()
        sub.sms_expires_at = sub.submitted_at + self.order.timing.sms_window
        self._set_deadline(DeadlineKind.SMS_EXPIRY, sub.sms_expires_at)
        await self._enter(Stage.SMS_VERIFICATION, WaitingOn.APPLICANT, reason=f"submitted (attempt {sub.attempt})")

    async def _sms_verification(self) -> None:
        """24 hours and 5 tries to enter the code; an expired or returned order is resubmitted automatically."""
        sub = self._state.current_submission
        assert sub is not None and sub.sms_expires_at is not None
        if self._state.support_resubmit:
            self._state.support_resubmit = False
            self._state.auto_resubmissions = 0
            _metrics().resubmissions.add(1, {"by": "support", "reason": sub.outcome})
            await self._enter(Stage.SUBMISSION, WaitingOn.SYSTEM, actor=Actor.SUPPORT, reason="resubmitted by support")
            return
        self._refresh_pending()
        if not await self._wait(lambda: bool(sub.outcome), until=sub.sms_expires_at, interruptible=False):
            sub.outcome = SmsCodeOutcome.EXPIRED.value
        self._drop_deadlines(DeadlineKind.SMS_EXPIRY)
        if sub.outcome == SmsCodeOutcome.VERIFIED.value:
            await self._enter_administration_review()
            return
        why = (
            "SMS verification expired"
            if sub.outcome == SmsCodeOutcome.EXPIRED.value
            else "returned after 5 wrong codes"
        )
        if self._state.auto_resubmissions < self.order.options.max_auto_resubmissions:
            self._state.auto_resubmissions += 1
            _metrics().resubmissions.add(1, {"by": "automatic", "reason": sub.outcome})
            n, limit = self._state.auto_resubmissions, self.order.options.max_auto_resubmissions
            await self._enter(
                Stage.SUBMISSION, WaitingOn.SYSTEM, reason=f"{why}; automatic resubmission {n} of {limit}"
            )
            return
        await self._pause(f"{why}; automatic resubmissions exhausted", alert="resubmissions-exhausted")

    async def _enter_administration_review(self) -> None:
        # The legal clock counts from the day after the administration has the verified order (DOMAIN.md).
        due = await self._business_deadline(self.order.timing.review_business_days)
        self._set_deadline(DeadlineKind.REVIEW_DUE, due)
        await self._enter(
            Stage.ADMINISTRATION_REVIEW,
            WaitingOn.ADMINISTRATION,
            actor=Actor.ADMINISTRATION,
            reason="SMS verified",
        )

    async def _administration_review(self) -> None:
        """Poll the regulator until it decides. The poll is ONE activity retried at the poll interval, so the
        history does not grow with the length of the review; the overdue escalation is a timer racing it.

        An outage during the poll is retried inside that activity with a bounded backoff; once it has lasted the
        timing policy's patience the poll gives up (``RegulatorOutage``), the wait is shown in the state and, past
        the alert limit, reported to support once; then the order polls again, waiting for the administration to
        answer at all. History grows by one such round per report of an outage, never per day of review."""
        sub = self._state.current_submission
        assert sub is not None
        timing = self.order.timing
        outage_since: datetime | None = None
        patience = timing.dependency_patience
        while True:
            request = ReviewPoll(submission_id=sub.submission_id, patience=patience, outage_since=outage_since)
            poll = workflow.start_activity(
                "poll_review",
                request,
                result_type=ReviewVerdict if outage_since is None else ReviewPollResult,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RetryPolicy(
                    initial_interval=timing.review_poll_interval,
                    backoff_coefficient=1.0,
                    maximum_interval=timing.review_poll_interval,
                    non_retryable_error_types=["NotUnderReview"],
                ),
            )
            due = self._state.deadline(DeadlineKind.REVIEW_DUE)
            if not self._state.overdue and due is not None:
                remaining = (due.at - workflow.now()).total_seconds()
                done, _ = await workflow.wait([poll], timeout=max(remaining, 0.001))
                if not done:
                    await self._mark_overdue()
            try:
                answer = await poll
            except ActivityError as err:
                outage = _regulator_outage(err)
                if outage is None:
                    raise
                outage_since, last_error = outage
                await self._dependency_down("poll_review", outage_since, last_error)
                down_for = workflow.now() - outage_since
                # Report again when support is due to hear of it, then at doubling intervals (history grows with
                # the logarithm of a long outage, and the state's last error stays fresh enough).
                patience = timing.dependency_alert_after if down_for < timing.dependency_alert_after else 2 * down_for
                continue
            self._dependency_back("poll_review")
            if isinstance(answer, ReviewPollResult):
                if answer.verdict is None:  # the administration answers again, and is still reviewing
                    outage_since, patience = None, timing.dependency_patience
                    continue
                answer = answer.verdict
            verdict: ReviewVerdict = answer
            break
        sub.outcome = verdict.decision.value
        if verdict.decision is ReviewDecision.APPROVED:
            await self._enter(
                Stage.RECORD_UPDATE,
                WaitingOn.SYSTEM,
                actor=Actor.ADMINISTRATION,
                reason="approved by the administration",
            )
            return
        self._state.rejection_reasons = list(verdict.reasons)
        await self._send_back_for_correction(
            "; ".join(verdict.reasons), actor=Actor.ADMINISTRATION, actor_name="", source="administration"
        )

    async def _mark_overdue(self) -> None:
        self._state.overdue = True
        _metrics().overdue.add(1, {"province": self.order.province.value})
        workflow.upsert_search_attributes([search.OVERDUE.value_set(True)])
        await self._alert("review-overdue", "the administration has not decided within 20 business days; still polling")
        await self._transition(
            Stage.ADMINISTRATION_REVIEW,
            waiting_on=WaitingOn.ADMINISTRATION,
            reason="overdue: past the 20th business day",
        )

    async def _correction(self) -> None:
        """Rejected (by the reviewer or the administration): wait for the applicant's fix and resubmission."""
        while not self._resubmitted:
            idle_at = self._idle_deadline(self.order.timing.collection_idle_limit, DeadlineKind.COLLECTION_IDLE)
            before = self._state.last_applicant_activity_at
            self._refresh_pending()
            changed = await self._wait(self._resubmitted_or_acted_since(before), until=idle_at)
            if not changed:
                await self._pause_for_idle("no correction submitted")
        self._resubmitted = False
        self._state.confirmed = True  # resubmitting is the applicant's confirmation of the corrected order
        self._drop_deadlines(DeadlineKind.COLLECTION_IDLE)
        await self._enter(
            Stage.AUTHENTICITY_VERIFICATION,
            WaitingOn.SYSTEM,
            actor=Actor.APPLICANT,
            reason="corrected and resubmitted",
        )

    async def _record_update(self) -> None:
        """Update the provider's filing record, retried until the update is visible; only then is it complete."""
        now = workflow.now()
        await self._activity(
            "update_filing_record",
            FilingUpdate(order=self.order, approved_at=now),
            None,
            retry=RetryPolicy(initial_interval=self.order.timing.record_update_retry, backoff_coefficient=1.0),
        )
        documents = {d.key: d.ref for d in self._state.documents if d.ref is not None}
        if documents:
            await self._activity(
                "archive_documents",
                ArchiveDocuments(
                    order_id=self.order.order_id,
                    entity_filing_number=self.order.entity_filing_number,
                    approved_at=now,
                    documents=documents,
                ),
                None,
            )
        await self._enter(Stage.COMPLETED, WaitingOn.NOBODY, status=Status.APPROVED, reason="filing record updated")

    # ------------------------------------------------------------------ support: abandon, resume, extend

    @workflow.signal
    def abandon(self, action: SupportAction) -> None:
        """Support throws the pending order away (never the filing on record). Refused while locked."""
        if self._refuse_abandon() is None:
            self._abandon = action
        else:
            workflow.logger.warning("abandon refused: %s", self._refuse_abandon())

    @workflow.signal
    def resume(self, action: SupportAction) -> None:
        """Support restarts a paused order where it stopped."""
        if self._refuse_resume() is None:
            self._resume(action)
        else:
            workflow.logger.warning("resume refused: %s", self._refuse_resume())

    # The update twins of the support signals: the API uses these so a refused action says why at once.
    @workflow.update
    async def abandon_order(self, action: SupportAction) -> ActionResult:
        self._abandon = action
        await workflow.wait_condition(lambda: self._state.stage is Stage.ABANDONED)
        return self._result("order abandoned; the filing on record is unchanged")

    @abandon_order.validator
    def _validate_abandon(self, action: SupportAction) -> None:
        _refuse_if(self._refuse_abandon())

    @workflow.update
    async def resume_order(self, action: SupportAction) -> ActionResult:
        self._resume(action)
        return self._result("order resumed")

    @resume_order.validator
    def _validate_resume(self, action: SupportAction) -> None:
        _refuse_if(self._refuse_resume())

    @workflow.update
    async def extend(self, request: ExtendCollection) -> ActionResult:
        self._state.collection_extension_days += request.days
        self._drop_deadlines(DeadlineKind.COLLECTION_IDLE, DeadlineKind.CONFIRMATION_IDLE)
        self._support_notes.append((request.actor, f"extended by {request.days} day(s): {request.reason}"))
        self._nudge += 1
        return self._result(f"applicant has {request.days} more day(s)")

    @extend.validator
    def _validate_extend(self, request: ExtendCollection) -> None:
        if self._state.stage not in (Stage.DOCUMENT_COLLECTION, Stage.CONFIRMATION, Stage.CORRECTION):
            raise ApplicationError(
                f"an extension applies while the applicant is collecting, confirming or correcting; "
                f"the order is at {self._state.stage.value}",
                type="ActionRefused",
            )

    # ------------------------------------------------------------------ applicant and reviewer actions

    @workflow.update
    async def upload_document(self, upload: UploadDocument) -> ActionResult:
        doc = self._state.document(upload.key)
        assert doc is not None
        doc.ref, doc.status, doc.failure_reason = upload.ref, DocumentStatus.UPLOADED, ""
        self._state.last_applicant_activity_at = workflow.now()
        self._state.updated_at = workflow.now()
        missing = self._missing_documents()
        return self._result(f"{len(missing)} document(s) still missing" if missing else "all documents received")

    @upload_document.validator
    def _validate_upload(self, upload: UploadDocument) -> None:
        if (
            self._state.stage not in (Stage.DOCUMENT_COLLECTION, Stage.CORRECTION)
            or self._state.status is not Status.ACTIVE
        ):
            raise ApplicationError(
                f"documents are accepted while collecting or correcting an active order; the order is at "
                f"{self._state.stage.value} ({self._state.status.value})",
                type="ActionRefused",
            )
        doc = self._state.document(upload.key)
        if doc is None:
            keys = ", ".join(d.key for d in self._state.documents) or "none"
            raise ApplicationError(
                f"{upload.key!r} is not a document this order needs (needed: {keys})", type="ActionRefused"
            )
        if doc.status is DocumentStatus.VERIFIED and self._state.stage is Stage.DOCUMENT_COLLECTION:
            raise ApplicationError(f"{upload.key} is already verified", type="ActionRefused")

    @workflow.update
    async def confirm(self, request: Confirm) -> ActionResult:
        self._state.confirmed = True
        await workflow.wait_condition(lambda: self._state.stage is not Stage.CONFIRMATION)
        return self._result("confirmed")

    @confirm.validator
    def _validate_confirm(self, request: Confirm) -> None:
        if self._state.stage is not Stage.CONFIRMATION or self._state.status is not Status.ACTIVE:
            raise ApplicationError(
                f"nothing to confirm: the order is at {self._state.stage.value} ({self._state.status.value})",
                type="ActionRefused",
            )

    @workflow.update
    async def record_initial_review(self, decision: InitialReviewDecision) -> ActionResult:
        self._review_decision = decision
        await workflow.wait_condition(lambda: self._state.stage is not Stage.INITIAL_REVIEW)
        return self._result("approved" if decision.approved else "sent back to the applicant")

    @record_initial_review.validator
    def _validate_initial_review(self, decision: InitialReviewDecision) -> None:
        if self._state.stage is not Stage.INITIAL_REVIEW or self._review_decision is not None:
            raise ApplicationError(
                f"no initial review is pending: the order is at {self._state.stage.value}",
                type="ActionRefused",
            )
        if not decision.approved and not [r for r in decision.reasons if r.strip()]:
            raise ApplicationError("a rejection needs at least one reason for the applicant", type="ActionRefused")

    @workflow.update
    async def sms_verification(self, event: SmsVerificationEvent) -> ActionResult:
        """The applicant's code (checked with the administration at once) or the administration's own report."""
        async with self._sms_lock:
            sub = self._state.current_submission
            assert sub is not None
            if sub.outcome:  # decided while this call waited for the lock
                return self._result(f"verification already {sub.outcome}")
            if event.event is SmsEventKind.RESEND_REQUESTED:
                await self._activity("resend_sms", SubmissionRef(submission_id=sub.submission_id), None)
                return self._result("a new code was sent")
            if event.event is SmsEventKind.CODE_ENTERED:
                assert event.code is not None
                result = await self._activity(
                    "verify_sms_code",
                    SmsCode(submission_id=sub.submission_id, code=event.code),
                    SmsCodeResult,
                )
                if sub.outcome:
                    return self._result(f"verification already {sub.outcome}")
                if result.outcome is SmsCodeOutcome.RETURNED:
                    sub.wrong_codes += 1  # the fifth wrong code is what returned it
                if result.outcome is SmsCodeOutcome.WRONG_CODE:
                    sub.wrong_codes += 1
                    if sub.wrong_codes >= WRONG_CODE_LIMIT:
                        sub.outcome = SmsCodeOutcome.RETURNED.value
                    return self._result("wrong code", attempts_left=max(WRONG_CODE_LIMIT - sub.wrong_codes, 0))
                sub.outcome = result.outcome.value
            else:
                sub.outcome = event.event.value
        await workflow.wait_condition(lambda: self._state.stage is not Stage.SMS_VERIFICATION or self._paused_here())
        return self._result(f"verification {sub.outcome}")

    @sms_verification.validator
    def _validate_sms(self, event: SmsVerificationEvent) -> None:
        sub = self._state.current_submission
        if self._state.stage is not Stage.SMS_VERIFICATION or self._state.status is not Status.ACTIVE or sub is None:
            raise ApplicationError(
                f"no SMS verification is open: the order is at {self._state.stage.value} ({self._state.status.value})",
                type="ActionRefused",
            )
        if sub.outcome:
            raise ApplicationError(f"this verification is already {sub.outcome}", type="ActionRefused")
        if event.event is SmsEventKind.CODE_ENTERED and not event.code:
            raise ApplicationError("code_entered needs the 6-digit code", type="ActionRefused")

    @workflow.update
    async def resubmit(self, request: Resubmit) -> ActionResult:
        self._resubmitted = True
        await workflow.wait_condition(lambda: self._state.stage is not Stage.CORRECTION)
        return self._result("resubmitted")

    @resubmit.validator
    def _validate_resubmit(self, request: Resubmit) -> None:
        if self._state.stage is not Stage.CORRECTION or self._state.status is not Status.ACTIVE:
            raise ApplicationError(
                f"nothing to resubmit: the order is at {self._state.stage.value} ({self._state.status.value})",
                type="ActionRefused",
            )

    @workflow.query
    def state(self) -> OrderState:
        return self._state

    # ------------------------------------------------------------------ helpers: waiting, pausing, transitions

    _review_decision: InitialReviewDecision | None = None
    _resubmitted: bool = False
    _nudge: int = 0

    def _applicant_acted_since(self, before: datetime | None) -> Callable[[], bool]:
        return lambda: self._state.last_applicant_activity_at != before

    def _resubmitted_or_acted_since(self, before: datetime | None) -> Callable[[], bool]:
        return lambda: self._resubmitted or self._state.last_applicant_activity_at != before

    def _review_recorded(self) -> bool:
        return self._review_decision is not None

    async def _wait(
        self, condition: Callable[[], bool], *, until: datetime | None = None, interruptible: bool = True
    ) -> bool:
        """Wait for ``condition`` until the instant ``until``; True if it came true, False at ``until``.

        Raises _Interrupted when support changed the order's terms (an extension), abandoned it, or the history
        should be continued as new: the run loop handles that and enters the stage again, which recomputes its
        deadlines from the state."""
        nudge = self._nudge

        def woken() -> bool:
            if condition() or self._nudge != nudge:
                return True
            return interruptible and (self._abandon is not None or self._continue_as_new_now())

        timeout = None if until is None else max((until - workflow.now()).total_seconds(), 0.001)
        try:
            await workflow.wait_condition(woken, timeout=timeout)
        except TimeoutError:
            return False
        if condition():
            return True
        raise _Interrupted

    async def _record_support_notes(self) -> None:
        """Signals cannot call activities, so support actions are written to the audit trail here, in order."""
        while self._support_notes:
            actor_name, reason = self._support_notes.pop(0)
            await self._transition(self._state.stage, actor=Actor.SUPPORT, actor_name=actor_name, reason=reason)

    async def _pause_for_idle(self, why: str) -> None:
        """Pause the order (never drop it) and hand it to support; the run loop waits for ``resume``."""
        await self._pause(f"idle: {why}", alert="order-idle")
        raise _Interrupted

    async def _pause(self, reason: str, *, alert: str) -> None:
        self._state.paused_reason = reason
        await self._transition(self._state.stage, status=Status.PAUSED, waiting_on=WaitingOn.SUPPORT, reason=reason)
        await self._alert(alert, reason)
        await self._notify(f"paused:{len(self._state.timeline)}", notices.paused(self.order.order_id, reason))

    def _resume(self, action: SupportAction) -> None:
        if self._paused_here():
            self._state.support_resubmit = True
        self._state.status = Status.ACTIVE
        self._state.paused_reason = ""
        self._support_notes.append((action.actor, f"resumed: {action.reason}"))

    def _refuse_resume(self) -> str | None:
        if self._state.status is not Status.PAUSED:
            where = f"{self._state.status.value} at {self._state.stage.value}"
            return f"only a paused order can be resumed; this one is {where}"
        return None

    def _locked(self) -> bool:
        # An order whose SMS verification lapsed is back with the provider, not with the administration.
        return self._state.stage.locked and not self._paused_here()

    def _paused_here(self) -> bool:
        return self._state.stage is Stage.SMS_VERIFICATION and self._state.status is Status.PAUSED

    def _refuse_abandon(self) -> str | None:
        if self._state.stage.terminal:
            return f"the order has already ended ({self._state.stage.value})"
        if self._locked():
            return (
                f"the order is locked at {self._state.stage.value}: it is with the communications administration and "
                "cannot be withdrawn until it decides"
            )
        return None

    async def _apply_abandon(self, action: SupportAction) -> None:
        await self._transition(
            Stage.ABANDONED,
            status=Status.ABANDONED,
            waiting_on=WaitingOn.NOBODY,
            actor=Actor.SUPPORT,
            actor_name=action.actor,
            reason=action.reason,
        )
        await self._notify(
            f"stage:{Stage.ABANDONED.value}", notices.stage_entered(self.order.order_id, Stage.ABANDONED)
        )

    async def _send_back_for_correction(self, reasons: str, *, actor: Actor, actor_name: str, source: str) -> None:
        self._state.confirmed = False
        self._resubmitted = False
        self._state.last_applicant_activity_at = workflow.now()
        await self._enter(
            Stage.CORRECTION,
            WaitingOn.APPLICANT,
            actor=actor,
            actor_name=actor_name,
            reason=f"rejected by {source}: {reasons}",
        )

    def _continue_as_new_now(self) -> bool:
        """Continue as new once the history is long enough *and* no handler is still running.

        A handler such as ``confirm`` waits for the run loop to move the order on; had the loop stopped to wait for
        every handler before continuing as new, each would wait for the other for ever (found by the crash matrix's
        continue-as-new lane). So the stage goes on, takes the message, and the order continues as new at the next
        quiet moment. Runs recorded before this rule keep the old order of things."""
        if not self._should_continue_as_new():
            return False
        return workflow.all_handlers_finished() or not workflow.patched(PATCH_CAN_AFTER_HANDLERS)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        return self.history_limit is not None and info.get_current_history_length() >= self.history_limit

    async def _enter(
        self,
        stage: Stage,
        waiting_on: WaitingOn,
        *,
        status: Status = Status.ACTIVE,
        actor: Actor = Actor.SYSTEM,
        actor_name: str = "",
        reason: str = "",
    ) -> None:
        """Move to a new stage: record it, tell the applicant."""
        await self._transition(
            stage, status=status, waiting_on=waiting_on, actor=actor, actor_name=actor_name, reason=reason
        )
        if stage in _APPLICANT_TOLD:
            detail = reason if stage is Stage.CORRECTION else ""
            key = f"stage:{stage.value}:{len(self._state.timeline)}"
            await self._notify(key, notices.stage_entered(self.order.order_id, stage, detail))

    async def _transition(
        self,
        stage: Stage,
        *,
        status: Status | None = None,
        waiting_on: WaitingOn | None = None,
        actor: Actor = Actor.SYSTEM,
        actor_name: str = "",
        reason: str = "",
    ) -> None:
        """The one place the order's stage or status changes: state, search attributes, timeline, read model and
        audit trail move together, so no transition can forget one of them."""
        now = workflow.now()
        stage_changed = stage is not self._state.stage
        if stage_changed and self._state.timeline:
            _metrics().stage_duration.record(now - self._stage_entered_at(), {"stage": self._state.stage.value})
        self._state.stage = stage
        if status is not None:
            self._state.status = status
        if waiting_on is not None:
            self._state.waiting_on = waiting_on
        self._state.updated_at = now
        seq = len(self._state.timeline) + 1
        self._state.timeline.append(
            Transition(
                seq=seq,
                at=now,
                stage=stage,
                status=self._state.status,
                actor=actor,
                actor_name=actor_name,
                reason=reason,
            )
        )
        self._refresh_pending()
        if stage_changed or seq == 1:
            self._upsert_search_attributes()
        await self._activity(
            "record_transition",
            OrderRecord.of(self._state, seq=seq, at=now, actor=actor, actor_name=actor_name, reason=reason),
            None,
        )

    def _stage_entered_at(self) -> datetime:
        """When the order entered its current stage (the first of the trailing transitions within it)."""
        entered = self._state.timeline[-1].at
        for t in reversed(self._state.timeline):
            if t.stage is not self._state.stage:
                break
            entered = t.at
        return entered

    def _upsert_search_attributes(self) -> None:
        workflow.upsert_search_attributes(
            [
                search.ORDER_ID.value_set(self.order.order_id),
                search.STAGE.value_set(self._state.stage.value),
                search.PROVINCE.value_set(self.order.province.value),
                search.KIND.value_set(self.order.kind.value),
                search.OVERDUE.value_set(self._state.overdue),
            ]
        )

    async def _notify(self, event_key: str, text: notices.Text) -> None:
        person = self._contact()
        result: NotificationResult = await self._activity(
            "send_notification",
            Notification(
                order_id=self.order.order_id,
                event_key=event_key,
                template=text.template,
                email=person.email,
                mobile=person.mobile,
                subject=text.subject,
                body=text.body,
            ),
            NotificationResult,
        )
        for channel, reason in result.failed.items():
            _metrics().notification_failures.add(1, {"channel": channel.value})
            # A permanent failure (e.g. an invalid mobile number) is recorded; the other channel carried the notice.
            self._state.notification_failures.append(
                NotificationFailure(event_key=event_key, channel=channel.value, reason=reason[:300])
            )

    async def _alert(self, what: str, detail: str) -> None:
        text = notices.support_alert(self.order.order_id, what, detail)
        await self._activity(
            "alert_support",
            SupportAlert(
                order_id=self.order.order_id,
                event_key=f"{what}:{len(self._state.timeline)}",
                subject=text.subject,
                body=text.body,
            ),
            None,
        )

    async def _business_deadline(self, business_days: int) -> datetime:
        result = await self._activity(
            "business_deadline",
            BusinessDeadline(
                start=workflow.now(), business_days=business_days, scale=self.order.timing.business_day_scale
            ),
            BusinessDeadlineResult,
        )
        if result.estimated:
            self._state.warnings.append(
                _calendar_warning(result.note or "the deadline lies past the calendar's known years and is estimated")
            )
        at: datetime = result.at
        return at

    async def _activity(
        self, name: str, arg: Any, result_type: type[Any] | None, *, retry: RetryPolicy | None = None
    ) -> Any:
        """Run an activity until it succeeds. Outages are waited out with a bounded backoff; one that outlasts the
        timing policy's patience is shown in the state (what, since when, the last error) and, past the alert
        limit, reported to support once. A refusal for good (non-retryable error) propagates."""
        timing = self.order.timing
        window = timing.dependency_patience
        started = workflow.now()
        while True:
            try:
                result = await workflow.execute_activity(
                    name,
                    arg,
                    result_type=result_type,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=window,
                    retry_policy=retry or DEPENDENCY_RETRY,
                )
            except ActivityError as err:
                # Retries ran out of time (not a refusal): the party is down, or slower than our patience.
                if err.retry_state is not RetryState.TIMEOUT and not isinstance(err.cause, ActivityTimeout):
                    raise
                await self._dependency_down(name, started, _cause(err), database=_database_down(err))
                window = timing.dependency_alert_after
                continue
            self._dependency_back(name)
            return result

    def _dependency_back(self, activity_name: str) -> None:
        """The activity answered: its wait (if any) is over."""
        cleared = [w for w in self._state.dependency_waits if w.activity == activity_name]
        if cleared:
            self._state.dependency_waits = [w for w in self._state.dependency_waits if w.activity != activity_name]
            for wait in cleared:
                _metrics().dependency_down.record(workflow.now() - wait.since, {"dependency": wait.dependency})

    async def _dependency_down(
        self, activity_name: str, since: datetime, error: str, *, database: bool = False
    ) -> None:
        """Show the wait (what, since when, the last error); past the alert limit tell support once. ``database``:
        the activity failed because the app database is down (e.g. a notice's outbox), whatever party it calls."""
        usual = _DEPENDENCIES.get(activity_name, activity_name)
        dependency = "database" if database else usual
        previous = next((w for w in self._state.dependency_waits if w.activity == activity_name), None)
        alerted = previous.alerted if previous else False
        wait = DependencyWait(dependency=dependency, activity=activity_name, since=since, last_error=error[:500])
        self._state.dependency_waits = [w for w in self._state.dependency_waits if w.activity != activity_name]
        self._state.dependency_waits.append(wait.model_copy(update={"alerted": alerted}))
        self._state.updated_at = workflow.now()
        down_for = workflow.now() - since
        # Support cannot be emailed about the mail relay itself; that outage shows in the state and the metrics.
        if (
            not alerted
            and down_for >= self.order.timing.dependency_alert_after
            and dependency != "notifications"
            # A notice waiting on the database was reported as the mail relay's, unalerted, before this patch.
            and (dependency == usual or workflow.patched(PATCH_DATABASE_OUTAGE_ALERT))
        ):
            self._state.dependency_waits[-1] = wait.model_copy(update={"alerted": True})
            detail = f"{dependency} has not answered {activity_name} for {down_for}; last error: {error[:300]}"
            await self._alert(f"dependency-down-{dependency}", detail)

    # ------------------------------------------------------------------ helpers: pure bookkeeping

    def _result(self, message: str, attempts_left: int | None = None) -> ActionResult:
        return ActionResult(
            order_id=self.order.order_id,
            stage=self._state.stage,
            status=self._state.status,
            message=message,
            attempts_left=attempts_left,
        )

    def _missing_documents(self) -> list[str]:
        done = (DocumentStatus.UPLOADED, DocumentStatus.VERIFIED, DocumentStatus.REUSED)
        return [d.key for d in self._state.documents if d.status not in done]

    def _idle_deadline(self, limit: timedelta, kind: DeadlineKind) -> datetime:
        since = self._state.last_applicant_activity_at or self._state.updated_at
        at = since + limit + timedelta(days=self._state.collection_extension_days)
        self._set_deadline(kind, at)
        return at

    def _next_reminder_at(self) -> datetime:
        """A reminder is due one interval after the later of the applicant's last action and the last reminder."""
        marks = [m for m in (self._state.last_applicant_activity_at, self._state.last_reminder_at) if m is not None]
        at = max(marks, default=self._state.updated_at) + self.order.timing.reminder_interval
        self._set_deadline(DeadlineKind.NEXT_REMINDER, at)
        return at

    def _set_deadline(self, kind: DeadlineKind, at: datetime) -> None:
        self._state.deadlines = [d for d in self._state.deadlines if d.kind is not kind] + [Deadline(kind=kind, at=at)]

    def _drop_deadlines(self, *kinds: DeadlineKind) -> None:
        self._state.deadlines = [d for d in self._state.deadlines if d.kind not in kinds]

    def _refresh_pending(self) -> None:
        """Pending actions = standing items from validation (e.g. R-DOM-4) + what the current stage waits for."""
        standing = [p for p in self._state.pending_actions if p.rule_id is not None]
        stage_items: list[PendingAction] = []
        s, st = self._state.stage, self._state.status
        if st is Status.PAUSED:
            stage_items.append(
                PendingAction(
                    code="resume", description=f"paused: {self._state.paused_reason}", owner=WaitingOn.SUPPORT
                )
            )
        elif s is Stage.DOCUMENT_COLLECTION:
            for key in self._missing_documents():
                doc = self._state.document(key)
                why = f" (returned: {doc.failure_reason})" if doc and doc.failure_reason else ""
                stage_items.append(PendingAction(code="upload_document", description=f"upload {key}{why}"))
        elif s is Stage.CONFIRMATION:
            stage_items.append(PendingAction(code="confirm", description="confirm the order's information"))
        elif s is Stage.INITIAL_REVIEW:
            stage_items.append(
                PendingAction(code="initial_review", description="review the order", owner=WaitingOn.REVIEWER)
            )
        elif s is Stage.SMS_VERIFICATION:
            stage_items.append(
                PendingAction(code="enter_sms_code", description="enter the 6-digit code texted from 12381")
            )
        elif s is Stage.CORRECTION:
            stage_items.append(PendingAction(code="resubmit", description="fix what was rejected, then resubmit"))
        self._state.pending_actions = standing + stage_items

    def _contact(self) -> Person:
        return self.order.contact_person()

    def _verification_mobiles(self) -> list[str]:
        """The administration texts the entity's person for entity changes, the service's for service changes."""
        return [self._contact().mobile]


class _Metrics:
    """icpflow's own metrics, emitted through the SDK's replay-safe meter (exported with the worker's runtime
    metrics, docs/operations.md)."""

    def __init__(self) -> None:
        meter = workflow.metric_meter()
        self.stage_duration = meter.create_histogram_timedelta(
            "icpflow_stage_duration", "Time an order spent in a stage", "s"
        )
        self.resubmissions = meter.create_counter("icpflow_resubmissions", "Submissions made again after SMS lapsed")
        self.overdue = meter.create_counter("icpflow_reviews_overdue", "Reviews that passed the 20th business day")
        self.notification_failures = meter.create_counter(
            "icpflow_notification_failures", "Notices that could not be delivered on a channel for good"
        )
        self.dependency_down = meter.create_histogram_timedelta(
            "icpflow_dependency_down", "How long an outside party kept an order waiting", "s"
        )


def _metrics() -> _Metrics:
    return _Metrics()


# The outside party behind each activity, as named in dependency waits and alerts.
_DEPENDENCIES = {
    "validate_order": "rdap",
    "required_documents": "worker",
    "verify_document": "document-verification",
    "business_deadline": "worker",
    "submit_to_administration": "regulator",
    "verify_sms_code": "regulator",
    "resend_sms": "regulator",
    "poll_review": "regulator",
    "send_notification": "notifications",
    "alert_support": "notifications",
    "record_transition": "database",
    "update_filing_record": "database",
    "archive_documents": "database",
    "find_reusable_documents": "database",
}

_APPLICANT_TOLD = frozenset(
    {
        Stage.DOCUMENT_COLLECTION,
        Stage.CONFIRMATION,
        Stage.SMS_VERIFICATION,
        Stage.ADMINISTRATION_REVIEW,
        Stage.CORRECTION,
        Stage.COMPLETED,
    }
)


def _refuse_if(reason: str | None) -> None:
    if reason is not None:
        raise ApplicationError(reason, type="ActionRefused")


def _cause(err: BaseException) -> str:
    """What went wrong, as the wait shows it: the outermost error below Temporal's own wrappers (activity failed,
    timed out) that says something. That is the adapter's message, which names its cause already; what it chains
    (a bare ``ReadTimeout``, ``[Errno 111]``) says less. Only Temporal's wrappers with nothing beneath: the
    innermost of them (e.g. "activity StartToClose timeout" for an attempt that hung)."""
    current: BaseException | None = err
    innermost = err
    while current is not None:
        if not isinstance(current, ActivityError | ActivityTimeout) and str(current).strip():
            return _message(current)
        innermost = current
        current = current.__cause__
    return str(innermost)


def _message(err: BaseException) -> str:
    if isinstance(err, ApplicationError) and not err.message and err.type:
        return err.type  # an exception raised without a message: its class is all there is
    return str(err)


def _database_down(err: BaseException) -> bool:
    """True when the activity failed because the app database is unreachable (store.db.DatabaseUnavailable)."""
    current: BaseException | None = err
    while current is not None:
        if isinstance(current, ApplicationError) and current.type == "DatabaseUnavailable":
            return True
        current = current.__cause__
    return False


def _regulator_outage(err: ActivityError) -> tuple[datetime, str] | None:
    """(since, last error) when the review poll gave up on an outage (``RegulatorOutage``), else None."""
    cause = err.cause
    if not isinstance(cause, ApplicationError) or cause.type != REGULATOR_OUTAGE:
        return None
    details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
    since = details.get("since")
    at = datetime.fromisoformat(since) if isinstance(since, str) else workflow.now()
    return min(at, workflow.now()), str(details.get("last_error") or cause.message)


def _calendar_warning(note: str) -> Violation:
    return Violation(rule_id="CALENDAR", field="deadlines", message=note)
