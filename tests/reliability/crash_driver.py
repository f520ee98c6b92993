"""Plays the applicant, the reviewer and the backend for a group of orders, in lockstep, through worker and server
crashes.

Every step is "act until the order has moved past the stage": an update lost with a dying worker, refused
because it already took effect, or timed out while no worker polls is simply tried again once the order's stage
says it is still needed — what a backend does with a call that failed. Stages are read from the ``IcpStage``
search attribute (the server answers; no worker needed), and the steps run for all orders of the group at once, so
the orders reach each kill point together.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from bench.driver import Photos, SmsInbox, bench_order
from bench.rig import Outside
from models import search
from models.documents import DocumentKind, DocumentStatus
from models.messages import (
    ActionResult,
    Confirm,
    InitialReviewDecision,
    SmsEventKind,
    SmsVerificationEvent,
    UploadDocument,
)
from models.order import PlaceOrder
from models.settings import Settings
from models.stages import PIPELINE, Stage
from models.state import OrderState
from models.timing import TimingPolicy
from starter.client import OrderClient, workflow_id_of
from store.documents import LocalDocumentStore

# Each order of the whole run gets its own contact mobile, so texts are read per order from the shared SMS sink.
_numbers = itertools.count(100)
# Generous: a step may wait out an activity killed with its worker, on a shared machine.
STEP_TIMEOUT_S = float(os.environ.get("CRASH_STEP_TIMEOUT", "420"))
CALL_TIMEOUT_S = 20.0
POLL_S = 0.5


def stage_index(stage: Stage | str | None) -> int:
    return -1 if stage is None else PIPELINE.index(Stage(stage))


class Group:
    """``count`` orders on one task queue, driven together."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        outside: Outside,
        timing: TimingPolicy,
        count: int,
        *,
        history_limit: int | None = None,
    ) -> None:
        """Orders are acted on at once, as soon as their stage allows the action."""
        self.client = client
        self.facade = OrderClient(client, task_queue=settings.task_queue)
        self.store = LocalDocumentStore(settings.document_store_path)
        self.photos = Photos()
        self.inbox = SmsInbox(outside)
        self.history_limit = history_limit
        self.orders: list[PlaceOrder] = [bench_order(next(_numbers), timing) for _ in range(count)]
        # Calls that failed or timed out and were made again: what the crashes cost the backend.
        self.retries = 0

    def handle(self, order: PlaceOrder) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(workflow_id_of(order))

    @property
    def workflow_ids(self) -> dict[str, PlaceOrder]:
        return {workflow_id_of(o): o for o in self.orders}

    # ---------------------------------------------------------------- reading

    async def stage(self, order: PlaceOrder) -> Stage | None:
        try:
            desc = await self.handle(order).describe()
        except RPCError:
            return None  # not started yet, or the server is restarting
        value = desc.typed_search_attributes.get(search.STAGE)
        return Stage(value) if value else None

    async def state(self, order: PlaceOrder, timeout: float = 120) -> OrderState:
        """The workflow's ``state`` query, retried while no worker answers."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                return await asyncio.wait_for(self.handle(order).query("state", result_type=OrderState), CALL_TIMEOUT_S)
            except Exception:  # no worker answering yet (RPC error or our timeout)
                if loop.time() > end:
                    raise
                await asyncio.sleep(POLL_S)

    async def until(self, stage: Stage, orders: Iterable[PlaceOrder] | None = None) -> None:
        """Until every order has reached ``stage`` (or gone past it)."""
        await asyncio.gather(*(self._until(o, stage) for o in (orders or self.orders)))

    async def _until(self, order: PlaceOrder, stage: Stage) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + STEP_TIMEOUT_S
        while stage_index(await self.stage(order)) < stage_index(stage):
            if loop.time() > end:
                raise AssertionError(f"{order.order_id} never reached {stage.value}: at {await self.stage(order)}")
            await asyncio.sleep(POLL_S)

    async def quiet(self, orders: Iterable[PlaceOrder] | None = None) -> None:
        """Until no order has an activity or a workflow task pending: they all wait for somebody."""
        await asyncio.gather(*(self._quiet(o) for o in (orders or self.orders)))

    async def _quiet(self, order: PlaceOrder) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + STEP_TIMEOUT_S
        while True:
            desc = (await self.handle(order).describe()).raw_description
            if not desc.pending_activities and not desc.HasField("pending_workflow_task"):
                return
            if loop.time() > end:
                raise AssertionError(f"{order.order_id} never went quiet")
            await asyncio.sleep(POLL_S)

    async def finished(self) -> dict[str, OrderState]:
        """Until every order's workflow has closed; their final states (the last run's result)."""
        finals = await asyncio.gather(*map(self._finished, self.orders))
        return {o.order_id: final for o, final in zip(self.orders, finals, strict=True)}

    async def _finished(self, order: PlaceOrder) -> OrderState:
        await self._until(order, Stage.COMPLETED)
        loop = asyncio.get_running_loop()
        end = loop.time() + STEP_TIMEOUT_S
        while (await self.handle(order).describe()).status == WorkflowExecutionStatus.RUNNING:
            if loop.time() > end:
                raise AssertionError(f"{order.order_id} completed but its workflow never closed")
            await asyncio.sleep(POLL_S)
        return await self.state(order)

    async def stuck(self, order: PlaceOrder) -> str:
        """Where a stuck order's workflow code is waiting (the SDK's ``__stack_trace`` query), for the failure."""
        try:
            trace = await asyncio.wait_for(self.handle(order).query("__stack_trace"), CALL_TIMEOUT_S)
            desc = await self.handle(order).describe()
        except Exception as err:
            return f"(no stack trace: {err!r})"
        return f"history length {desc.history_length}, stack:\n{trace}"

    # ---------------------------------------------------------------- acting

    async def place(self) -> None:
        async def place_one(order: PlaceOrder) -> None:
            await self._retry(order, lambda: self.facade.place(order, history_limit=self.history_limit), None)

        await asyncio.gather(*map(place_one, self.orders))

    async def upload(self, orders: Iterable[PlaceOrder] | None = None) -> None:
        """Every missing document of every order; done once each order has left document collection."""
        await self.until(Stage.DOCUMENT_COLLECTION, orders)
        await asyncio.gather(*(self._upload(o) for o in (orders or self.orders)))

    async def _upload(self, order: PlaceOrder) -> None:
        async def missing() -> None:
            state = await self.state(order)
            for doc in state.documents:
                if doc.status in (DocumentStatus.MISSING, DocumentStatus.FAILED):
                    await self.update(order, "upload_document", self.upload_of(order, doc.key))

        await self._retry(order, missing, Stage.DOCUMENT_COLLECTION)

    def upload_of(self, order: PlaceOrder, key: str) -> UploadDocument:
        kind = DocumentKind(key.split(":", 1)[0])
        data = self.photos.unique(f"{order.order_id}:{key}")
        ref = self.store.put(data, "image/jpeg", f"{kind.value}.jpg", owner=order.entity_filing_number)
        return UploadDocument(key=key, ref=ref)

    async def document_keys(self, order: PlaceOrder) -> list[str]:
        return [d.key for d in (await self.state(order)).documents]

    async def run_id(self, order: PlaceOrder) -> str:
        return (await self.handle(order).describe()).run_id or ""

    async def replace_until_continued(self, first_runs: dict[str, str]) -> int:
        """While collecting, replace the first document of every order still on its first run, a round at a time
        (all orders at once), until each has continued as new: the orders, in lockstep, cross the history limit
        in the same round, inside an update's workflow task. Returns the number of rounds."""
        rounds = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + STEP_TIMEOUT_S
        while pending := [o for o in self.orders if await self.run_id(o) == first_runs[o.order_id]]:
            if loop.time() > end:
                raise AssertionError(f"{len(pending)} orders never continued as new")
            rounds += 1

            async def replace(order: PlaceOrder) -> None:
                try:
                    key = (await self.document_keys(order))[0]
                    await self.update(order, "upload_document", self.upload_of(order, key))
                except Exception:
                    self.retries += 1  # the worker died under it; the next round sends again if still needed

            await asyncio.gather(*map(replace, pending))
            await asyncio.sleep(POLL_S)
        return rounds

    async def confirm(self) -> None:
        await self._each(Stage.CONFIRMATION, lambda o: self.update(o, "confirm", Confirm()))

    async def review(self) -> None:
        decision = InitialReviewDecision(reviewer="crash-reviewer", approved=True)
        await self._each(Stage.INITIAL_REVIEW, lambda o: self.update(o, "record_initial_review", decision))

    async def enter_codes(self) -> None:
        await self._each(Stage.SMS_VERIFICATION, self._enter_code)

    async def _each(self, stage: Stage, action: Callable[[PlaceOrder], Awaitable[Any]]) -> None:
        """Once every order is at ``stage``: ``action`` for all of them at once, each until it has left it."""
        await self.until(stage)

        await asyncio.gather(*(self._retry(o, functools.partial(action, o), stage) for o in self.orders))

    async def _enter_code(self, order: PlaceOrder) -> None:
        codes = self.inbox.codes_to(order.contact_person().mobile)
        assert codes, f"no verification code reached {order.order_id}'s mobile"
        await self.update(
            order, "sms_verification", SmsVerificationEvent(event=SmsEventKind.CODE_ENTERED, code=codes[-1])
        )

    async def update(self, order: PlaceOrder, name: str, arg: Any) -> ActionResult:
        result: ActionResult = await asyncio.wait_for(
            self.handle(order).execute_update(name, arg, result_type=ActionResult), CALL_TIMEOUT_S
        )
        return result

    async def _retry(self, order: PlaceOrder, action: Callable[[], Awaitable[Any]], stage: Stage | None) -> None:
        """Do ``action`` until it succeeds, or until the order has moved past ``stage`` (it took effect after all)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + STEP_TIMEOUT_S
        while True:
            if stage is not None and stage_index(await self.stage(order)) > stage_index(stage):
                return
            try:
                await action()
                if stage is None:
                    return
                await asyncio.sleep(2.0)  # it worked: give the order a moment to move on before looking again
                continue
            except Exception as err:
                # Refused (it already took effect), lost with the worker, or no worker polling right now.
                self.retries += 1
                if loop.time() > end:
                    raise AssertionError(f"{order.order_id}: {err!r}\n{await self.stuck(order)}") from err
            await asyncio.sleep(POLL_S)
