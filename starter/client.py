"""The client facade: typed calls the backend, the API and the CLI use to place and steer orders.

Callers know orders by ``order_id``. Temporal knows them by one workflow id per filing entity (R-LOCK-1), so the
facade maps one to the other through the read model (written by the workflow's first transition) and, for the short
moment before that row exists, through Temporal visibility.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowContinuedAsNewError,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from models import search
from models.documents import DocumentRef
from models.messages import (
    ActionResult,
    Confirm,
    ExtendCollection,
    InitialReviewDecision,
    Resubmit,
    SmsVerificationEvent,
    SupportAction,
    UploadDocument,
)
from models.order import PlaceOrder, filing_key
from models.settings import Settings
from models.stages import Stage
from models.state import OrderState
from starter.codec import data_converter
from starter.tracing import client_plugins
from workflows.inputs import TASK_QUEUE, OrderInput, workflow_id_for
from workflows.order import ModificationOrderWorkflow

log = logging.getLogger(__name__)


class OrderError(Exception):
    """Base of every error the facade raises; ``code`` is machine-readable, the message is for people."""

    code = "order_error"


class OrderNotFound(OrderError):
    code = "order_not_found"


class OrderConflict(OrderError):
    """R-LOCK-1: the filing already has an order in progress."""

    code = "order_in_progress"

    def __init__(self, existing_order_id: str, filing_number: str) -> None:
        super().__init__(
            f"R-LOCK-1: filing {filing_number} already has an order in progress ({existing_order_id}); "
            "finish or abandon it before placing another"
        )
        self.existing_order_id = existing_order_id


class WorkersUnavailable(OrderError):
    """No worker is polling the task queue: the action was not delivered; retry once workers are back."""

    code = "workers_unavailable"


class ActionRefused(OrderError):
    """The order refused the action (wrong stage, locked, not paused, …); nothing changed."""

    code = "action_refused"


class ActionTimeout(OrderError):
    """The order did not answer the action within the client's ``action_timeout``: no worker ran it in time. It
    may still be applied once one does, so read the order before sending it again."""

    code = "action_timeout"

    def __init__(self, limit: float | None) -> None:
        within = f"within {limit:g} s" if limit is not None else "in time"
        super().__init__(
            f"the order did not answer {within} (is an icpflow worker running?); the action may still be applied: "
            "read the order before trying again"
        )


async def connect(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """A Temporal client with the project's data converter (pydantic JSON, encrypted) — the one every caller must
    use, or personal data would reach Temporal in clear and encrypted payloads could not be read."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
        plugins=client_plugins(settings),
    )


class OrderClient:
    def __init__(
        self,
        client: Client,
        *,
        task_queue: str = TASK_QUEUE,
        read_model: Any | None = None,
        action_timeout: float | None = None,
    ) -> None:
        """``read_model`` is a ``store.db`` session factory; without one, order ids resolve through visibility only.
        ``action_timeout``: the longest an action (an update) waits for the order to answer (None: as long as it
        takes); an update waits at the server until a worker runs it, and callers must not hang while none does."""
        self.client = client
        self.task_queue = task_queue
        self.read_model = read_model
        self.action_timeout = action_timeout

    # ---------------------------------------------------------------- placing

    async def place(
        self, order: PlaceOrder, *, history_limit: int | None = None, wait_for_worker: bool = True
    ) -> OrderState:
        """Start the order's workflow. Idempotent per ``order_id``: placing the same order again returns it.
        A different order for a filing that has one in progress raises OrderConflict naming the existing one.

        A new order's state is its workflow's answer to a query, which waits for a worker to run the first task.
        ``wait_for_worker=False`` answers as soon as the server has stored the start: the state the workflow starts
        from (``OrderState.placed``, at the execution's start time), so placing costs two server calls however busy
        the workers are (the API does this)."""
        workflow_id = workflow_id_for(order.filing_key)
        try:
            handle: WorkflowHandle[Any, Any] = await self.client.start_workflow(
                ModificationOrderWorkflow.run,
                OrderInput(order=order, history_limit=history_limit),
                id=workflow_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=start_attributes(order, Stage.VALIDATION),
            )
        except WorkflowAlreadyStartedError:
            existing = self.client.get_workflow_handle(workflow_id)
            running = await self._query(existing)
            if running.order_id == order.order_id:
                return running
            if not (running.stage.terminal and await self._closes_soon(existing)):
                raise OrderConflict(running.order_id, order.filing_number) from None
            # The previous order had just ended and was finishing its last notice: the filing is free now.
            return await self.place(order, history_limit=history_limit, wait_for_worker=wait_for_worker)
        if not wait_for_worker:
            started = await handle.describe()
            placed = OrderState.placed(order, workflow_id, started.start_time)
            await self._record_placed(placed)
            return placed
        live = await self._query(handle)
        await self._record_placed(live)
        return live

    async def _record_placed(self, placed: OrderState) -> None:
        """Make a just-placed order findable at once: until its workflow records its first transition, the read
        model has no row and the server's visibility may not list it yet, and a read right after placement would
        not find it. The row only ever moves forward (the workflow's transitions replace it). The order is placed
        either way: if the read model is down, the workflow records it once it is back."""
        if self.read_model is None:
            return
        from sqlalchemy.exc import SQLAlchemyError

        from store import writes

        try:
            async with self.read_model() as session, session.begin():
                await writes.upsert_current(session, writes.placed_row(placed))
        except (SQLAlchemyError, OSError) as err:
            log.warning("order %s placed; recording it in the read model failed: %s", placed.order_id, err)

    async def _closes_soon(self, handle: WorkflowHandle[Any, Any], within: float = 10.0) -> bool:
        """True once an order that reached a final stage has closed (it may still be sending its last notice)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while loop.time() < end:
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                return True
            await asyncio.sleep(0.1)
        return False

    # ---------------------------------------------------------------- reading

    async def state(self, order_id: str) -> OrderState:
        """The order's live state, or its final state once it has ended.

        A live order answers a query. An ended one returns its final state as the workflow's result, read from the
        history's close event: a query on a closed workflow would make a worker replay its whole history (about
        1.5 s under load, against a few ms for the result). Only a run that ended without a result (terminated or
        timed out by an operator) is still queried."""
        handle, running = await self._locate(order_id, running_only=False)
        if not running:
            try:
                ended = self.client.get_workflow_handle(handle.id, run_id=handle.run_id, result_type=OrderState)
                final: OrderState = await ended.result(follow_runs=False)
                return final
            except (WorkflowFailureError, WorkflowContinuedAsNewError):
                pass
        return await self._query(handle)

    async def handle(self, order_id: str) -> WorkflowHandle[Any, Any]:
        return await self._handle(order_id, running_only=False)

    # ---------------------------------------------------------------- messages

    async def upload_document(
        self, order_id: str, key: str, ref: DocumentRef, uploaded_by: str = "applicant"
    ) -> ActionResult:
        return await self._update(
            order_id, "upload_document", UploadDocument(key=key, ref=ref, uploaded_by=uploaded_by)
        )

    async def confirm(self, order_id: str, actor: str = "applicant") -> ActionResult:
        return await self._update(order_id, "confirm", Confirm(actor=actor))

    async def record_initial_review(self, order_id: str, decision: InitialReviewDecision) -> ActionResult:
        return await self._update(order_id, "record_initial_review", decision)

    async def sms_verification(self, order_id: str, event: SmsVerificationEvent) -> ActionResult:
        return await self._update(order_id, "sms_verification", event)

    async def resubmit(self, order_id: str, request: Resubmit | None = None) -> ActionResult:
        return await self._update(order_id, "resubmit", request or Resubmit())

    async def abandon(self, order_id: str, action: SupportAction) -> ActionResult:
        return await self._update(order_id, "abandon_order", action)

    async def resume(self, order_id: str, action: SupportAction) -> ActionResult:
        return await self._update(order_id, "resume_order", action)

    async def extend(self, order_id: str, request: ExtendCollection) -> ActionResult:
        return await self._update(order_id, "extend", request)

    # ---------------------------------------------------------------- plumbing

    async def _update(self, order_id: str, name: str, arg: Any) -> ActionResult:
        handle = await self._handle(order_id, running_only=True)
        try:
            result: ActionResult = await asyncio.wait_for(
                handle.execute_update(name, arg, result_type=ActionResult), self.action_timeout
            )
        except (TimeoutError, RPCTimeoutOrCancelledError):
            # At the limit wait_for cancels the update; one already waiting at the server then raises the Temporal
            # client's RPCTimeoutOrCancelledError instead of CancelledError (as it does when the server ends the
            # wait on a deadline of its own). Either way the order did not answer in time.
            raise ActionTimeout(self.action_timeout) from None
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise ActionRefused(cause.message) from None
            raise
        except RPCError as err:
            text = str(err).lower()
            if "workflow execution already completed" in text:
                raise ActionRefused(f"order {order_id} has ended") from None
            if "no poller seen" in text:
                raise WorkersUnavailable(
                    f"no icpflow worker is polling task queue {self.task_queue}: start one (icpflow worker) and retry"
                ) from None
            raise
        return result

    async def _query(self, handle: WorkflowHandle[Any, Any]) -> OrderState:
        # The first query can race the first workflow task of a just-started workflow; it is answered once the
        # worker has run it, so a short retry covers the gap.
        for attempt in range(50):
            try:
                state: OrderState = await handle.query("state", result_type=OrderState)
                return state
            except WorkflowQueryFailedError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        raise AssertionError("unreachable")

    async def _handle(self, order_id: str, *, running_only: bool) -> WorkflowHandle[Any, Any]:
        handle, _ = await self._locate(order_id, running_only=running_only)
        return handle

    async def _locate(self, order_id: str, *, running_only: bool) -> tuple[WorkflowHandle[Any, Any], bool]:
        """The order's workflow run, and whether it is still running."""
        workflow_ids = await self._workflow_ids(order_id)
        for workflow_id in workflow_ids:
            handle = self.client.get_workflow_handle(workflow_id)
            try:
                desc = await handle.describe()
            except RPCError:
                continue
            running = desc.status == WorkflowExecutionStatus.RUNNING
            if desc.typed_search_attributes.get(search.ORDER_ID) == order_id:
                if running or not running_only:
                    return handle, running
                raise ActionRefused(f"order {order_id} has ended ({_status_name(desc.status)})")
            # The filing has moved on to a newer order: find this order's own (closed) run.
            async for execution in self.client.list_workflows(
                f"WorkflowId = '{workflow_id}' AND IcpOrderId = '{_quote(order_id)}' "
                "AND ExecutionStatus != 'ContinuedAsNew'"
            ):
                if running_only:
                    raise ActionRefused(f"order {order_id} has ended")
                return self.client.get_workflow_handle(workflow_id, run_id=execution.run_id), False
        raise OrderNotFound(f"no order {order_id}")

    async def _workflow_ids(self, order_id: str) -> Sequence[str]:
        if self.read_model is not None:
            from store import queries

            async with self.read_model() as session:
                row = await queries.get_order(session, order_id)
            if row is not None:
                return [row.workflow_id]
        found: list[str] = []
        async for execution in self.client.list_workflows(f"IcpOrderId = '{_quote(order_id)}'"):
            if execution.id not in found:
                found.append(execution.id)
        return found


def start_attributes(order: PlaceOrder, stage: Stage) -> TypedSearchAttributes:
    """The search attributes an order's run starts with, so visibility finds it before its first task runs."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(search.ORDER_ID, order.order_id),
            SearchAttributePair(search.STAGE, stage.value),
            SearchAttributePair(search.PROVINCE, order.province.value),
            SearchAttributePair(search.KIND, order.kind.value),
            SearchAttributePair(search.OVERDUE, False),
        ]
    )


def workflow_id_of(order: PlaceOrder) -> str:
    return workflow_id_for(filing_key(order.filing_number))


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _status_name(status: WorkflowExecutionStatus | None) -> str:
    return status.name.lower() if status is not None else "unknown"
