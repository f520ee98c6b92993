"""Plays the people around an order for the benchmarks: the applicant, the reviewer, the backend.

Orders are the tests' valid Beijing website orders (``tests.factories.make_order``: a change of the website's person
in charge, three documents), each with its own contact mobile so the verification code is read from the SMS the
regulator simulator really sent. The driver talks to workflow handles with the same messages the client facade
sends (``starter.client.OrderClient`` places the order); it does not pay the facade's order-id lookup (a read-model
query and a describe per call), which ``open_orders`` measures on its own.

Waiting for a stage polls ``describe`` and reads the ``IcpStage`` search attribute from the workflow's mutable
state: the server answers, the worker never sees it, so polling costs the baseline and the pipeline the same.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import random
import struct
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from PIL import Image
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench.baseline import BaselineOrderWorkflow
from bench.baseline_io import BaselineInput, BaselineState, BaselineUpload
from bench.rig import Outside
from models import search
from models.documents import DocumentKind, DocumentRef
from models.messages import (
    ActionResult,
    Confirm,
    InitialReviewDecision,
    SmsEventKind,
    SmsVerificationEvent,
    UploadDocument,
)
from models.order import ChangeField, PlaceOrder, Province
from models.settings import Settings
from models.stages import Stage
from models.state import OrderState
from models.timing import TimingPolicy
from simulators.regulator import SMS_FROM, code_from_sms
from starter.client import OrderClient, start_attributes, workflow_id_of
from store.documents import LocalDocumentStore
from tests.factories import make_order, mobile
from workflows.inputs import WORKFLOW_TYPE, OrderInput

# How often a waiting driver looks at the order's stage (server-side describe; no worker work).
STAGE_POLL_S = 0.05
# ContinuedParking: one start in this many waits for the worker (a query); then the last CONFIRM_TAIL are queried.
CONFIRM_EVERY = 8
CONFIRM_TAIL = 1000
# Mobiles 0000–7999 of the Beijing prefix are free for new persons in charge (the factory's people use 8000–8007).
CONTACT_MOBILES = 8000


class Photos:
    """Colour JPEGs that pass the authenticity checks, distinct per upload (the duplicate check refuses a file that
    another entity already uploaded): one base image, made once, with a unique JPEG comment segment per copy."""

    def __init__(self, width: int = 1024, height: int = 768, block: int = 8, seed: int = 7) -> None:
        rng = random.Random(seed)
        w, h = width // block, height // block
        small = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
        buf = io.BytesIO()
        small.resize((width, height), Image.Resampling.NEAREST).save(buf, "JPEG", quality=85)
        self.base = buf.getvalue()
        self._n = itertools.count()

    def unique(self, tag: str) -> bytes:
        """The base image with a COM segment after SOI naming ``tag`` and a counter: a different sha256."""
        comment = f"{tag}:{next(self._n)}:{os.getpid()}".encode()
        segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
        return self.base[:2] + segment + self.base[2:]


def bench_order(n: int, timing: TimingPolicy, *, max_auto_resubmissions: int | None = None) -> PlaceOrder:
    """A valid order whose contact (the website's new person in charge) has mobile number ``n`` (mod 8000)."""
    order = make_order(
        changes=[ChangeField.SERVICE_PERSON_IN_CHARGE], timing=timing, max_auto_resubmissions=max_auto_resubmissions
    )
    contact = mobile(Province.BEIJING, n % CONTACT_MOBILES)
    changes = [
        c.model_copy(update={"new_person": c.new_person.model_copy(update={"mobile": contact})})
        if c.new_person is not None
        else c
        for c in order.changes
    ]
    return order.model_copy(update={"changes": changes})


class SmsInbox:
    """The SMS sink's messages indexed by number, incrementally (the sink itself scans every message per lookup)."""

    def __init__(self, outside: Outside) -> None:
        self._sink = outside.sms
        self._seen = 0
        self._codes: dict[str, list[str]] = defaultdict(list)

    def codes_to(self, number: str) -> list[str]:
        messages = self._sink.messages
        for m in messages[self._seen :]:
            if SMS_FROM in m.from_:
                self._codes[m.to.removeprefix("+86")].append(code_from_sms(m.body))
        self._seen = len(messages)
        return self._codes[number.removeprefix("+86")]


class PipelineDriver:
    """Takes real orders through the real pipeline."""

    def __init__(
        self, client: Client, settings: Settings, outside: Outside, timing: TimingPolicy, *, patient: bool = False
    ) -> None:
        """``patient``: act only once the order is quiet (no activity or workflow task pending), as a person
        would, so every wait starts its timer and the history's shape does not depend on the driver's pace."""
        self.patient = patient
        self.client = client
        self.orders = OrderClient(client, task_queue=settings.task_queue)
        self.store = LocalDocumentStore(settings.document_store_path)
        self.outside = outside
        self.timing = timing
        self.photos = Photos()
        self.inbox = SmsInbox(outside)
        self._numbers = itertools.count()

    def new_order(self, **kwargs: Any) -> PlaceOrder:
        return bench_order(next(self._numbers), self.timing, **kwargs)

    def workflow_id(self, order: PlaceOrder) -> str:
        return workflow_id_of(order)

    async def place(self, order: PlaceOrder) -> WorkflowHandle[Any, Any]:
        await self.orders.place(order)
        return self.client.get_workflow_handle(workflow_id_of(order), result_type=OrderState)

    async def to_document_collection(self, order: PlaceOrder, poll: float = STAGE_POLL_S) -> WorkflowHandle[Any, Any]:
        handle = await self.place(order)
        await wait_stage(handle, Stage.DOCUMENT_COLLECTION, poll=poll)
        return handle

    async def to_sms_verification(self, order: PlaceOrder, poll: float = STAGE_POLL_S) -> WorkflowHandle[Any, Any]:
        """Place, upload every document, confirm, approve the initial review: the order then waits for the code."""
        handle = await self.to_document_collection(order, poll)
        state: OrderState = await handle.query("state", result_type=OrderState)
        for doc in state.documents:
            await self._pace(handle)
            await update(handle, "upload_document", UploadDocument(key=doc.key, ref=self._upload(order, doc.key)))
        await wait_stage(handle, Stage.CONFIRMATION, poll=poll)
        await self._pace(handle)
        await update(handle, "confirm", Confirm())
        await self._pace(handle)
        await update(handle, "record_initial_review", InitialReviewDecision(reviewer="bench-reviewer", approved=True))
        await wait_stage(handle, Stage.SMS_VERIFICATION, poll=poll)
        return handle

    async def _pace(self, handle: WorkflowHandle[Any, Any]) -> None:
        if self.patient:
            await wait_quiet(handle)

    async def enter_code(self, order: PlaceOrder, handle: WorkflowHandle[Any, Any]) -> ActionResult:
        number = order.contact_person().mobile
        codes = self.inbox.codes_to(number)
        while not codes:  # the code is texted before the stage changes; this is a guard, not a wait
            await asyncio.sleep(STAGE_POLL_S)
            codes = self.inbox.codes_to(number)
        event = SmsVerificationEvent(event=SmsEventKind.CODE_ENTERED, code=codes[-1])
        await self._pace(handle)
        return await update(handle, "sms_verification", event)

    async def to_approval(self, order: PlaceOrder) -> OrderState:
        handle = await self.to_sms_verification(order)
        await self.enter_code(order, handle)
        final: OrderState = await handle.result()
        return final

    def _upload(self, order: PlaceOrder, key: str) -> DocumentRef:
        kind = DocumentKind(key.split(":", 1)[0])
        data = self.photos.unique(f"{order.order_id}:{key}")
        return self.store.put(data, "image/jpeg", f"{kind.value}.jpg", owner=order.entity_filing_number)


async def update(handle: WorkflowHandle[Any, Any], name: str, arg: Any) -> ActionResult:
    result: ActionResult = await handle.execute_update(name, arg, result_type=ActionResult)
    return result


async def wait_stage(
    handle: WorkflowHandle[Any, Any], stage: Stage, timeout: float = 300, poll: float = STAGE_POLL_S
) -> None:
    """Until the workflow's ``IcpStage`` search attribute says ``stage`` (read from the server, not the worker)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        desc = await handle.describe()
        if desc.typed_search_attributes.get(search.STAGE) == stage.value:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"{handle.id} never reached {stage.value}")
        await asyncio.sleep(poll)


class BaselineDriver:
    """Drives baseline orders exactly as ``PipelineDriver`` drives real ones: start and query, wait for each stage
    on the server, send each update when the order would accept it, wait for the result."""

    def __init__(self, client: Client, task_queue: str, shape: BaselineInput) -> None:
        self.client = client
        self.task_queue = task_queue
        self.shape = shape
        self._ids = itertools.count(1)
        self._run = uuid.uuid4().hex[:6]

    def new_order(self) -> BaselineInput:
        return self.shape.model_copy(update={"order_id": f"baseline-{self._run}-{next(self._ids)}"})

    def workflow_id(self, order: BaselineInput) -> str:
        return f"icp-{order.order_id}"

    async def place(self, order: BaselineInput) -> WorkflowHandle[Any, BaselineState]:
        handle = await self.client.start_workflow(
            BaselineOrderWorkflow.run,
            order,
            id=self.workflow_id(order),
            task_queue=self.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.ORDER_ID, order.order_id),
                    SearchAttributePair(search.STAGE, Stage.VALIDATION.value),
                    SearchAttributePair(search.PROVINCE, "beijing"),
                    SearchAttributePair(search.KIND, "website"),
                    SearchAttributePair(search.OVERDUE, False),
                ]
            ),
        )
        # OrderClient.place answers with the order's state: one query, retried while the first task runs.
        for _ in range(50):
            try:
                await handle.query(BaselineOrderWorkflow.state)
                break
            except WorkflowQueryFailedError:
                await asyncio.sleep(0.1)
        return handle

    async def to_approval(self, order: BaselineInput) -> BaselineState:
        handle = await self.place(order)
        await wait_stage(handle, Stage.DOCUMENT_COLLECTION)
        state = await handle.query(BaselineOrderWorkflow.state)
        for key in state.document_keys:
            await update(handle, "upload_document", BaselineUpload(key=key))
        await wait_stage(handle, Stage.CONFIRMATION)
        await update(handle, "confirm", None)
        await update(handle, "record_initial_review", None)
        await wait_stage(handle, Stage.SMS_VERIFICATION)
        await update(handle, "sms_verification", None)
        return await handle.result()


async def wait_quiet(handle: WorkflowHandle[Any, Any], timeout: float = 120) -> None:
    """Until the workflow has no activity and no workflow task pending: it waits for somebody."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        desc = (await handle.describe()).raw_description
        if not desc.pending_activities and not desc.HasField("pending_workflow_task"):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"{handle.id} never went quiet")
        await asyncio.sleep(STAGE_POLL_S)


class ContinuedParking:
    """Parks orders at a wait as *continued runs*, the way production continues a long-waiting order as new.

    Taking an order to the SMS wait through the pipeline costs the worker about 0.7 s of CPU (uploads, image
    checks, notices, read-model writes), so 5,000 or 20,000 walked orders do not fit a benchmark's budget on two
    cores. A template order is walked there once for real; every parked order then starts as the run that order
    would continue as: the workflow's own entry point with ``OrderInput.carried`` holding the template's state
    under the new order's ids. Such a run does what a continued run does — one workflow task that sets its search
    attributes and waits on its timer — and is cached like any other; it counts as parked once the worker has run
    that task. What it does not hold is the walked run's earlier history (about 100 events), which a
    cached walked order keeps in the SDK core's state machines: the memory scenario measures walked orders too, at
    the scale that fits, to show the difference. Measured: about 9 ms of worker CPU and 23 ms of dev-server CPU
    per parked order, so the dev server on SQLite sets the pace."""

    def __init__(self, client: Client, settings: Settings, template: OrderState, timing: TimingPolicy) -> None:
        self.client = client
        self.task_queue = settings.task_queue
        self.template = template
        self.timing = timing
        self._numbers = itertools.count(CONTACT_MOBILES * 1000)
        self._recent: deque[WorkflowHandle[Any, Any]] = deque(maxlen=CONFIRM_TAIL)

    async def park(self, count: int, *, concurrency: int, deadline: float) -> list[tuple[PlaceOrder, Any]]:
        """Up to ``count`` orders (``park``'s rules), each confirmed parked before this returns."""
        parked = await park(self._park_one, count, concurrency=concurrency, deadline=deadline)
        await self._confirm()
        return parked

    async def _park_one(self) -> tuple[PlaceOrder, WorkflowHandle[Any, Any]]:
        number = next(self._numbers)
        order = bench_order(number, self.timing)
        workflow_id = workflow_id_of(order)
        carried = self.template.model_copy(update={"order_id": order.order_id, "workflow_id": workflow_id})
        handle: WorkflowHandle[Any, Any] = await self.client.start_workflow(
            WORKFLOW_TYPE,
            OrderInput(order=order, carried=carried),
            id=workflow_id,
            task_queue=self.task_queue,
            result_type=OrderState,
            search_attributes=start_attributes(order, carried.stage),
        )
        # Parked once the worker has run its first task and holds it. Every CONFIRM_EVERY-th start waits for that
        # with a query, which keeps the parking rate the worker's and the server's (starts alone run ahead of the
        # worker by thousands) without a query per order; _confirm() waits for the rest.
        self._recent.append(handle)
        if number % CONFIRM_EVERY == 0:
            await handle.query("state", result_type=OrderState)
        return order, handle

    async def _confirm(self) -> None:
        """Until the worker has run the first task of every order parked so far: at most CONFIRM_EVERY starts per
        parking user run ahead of the last query, so querying the last CONFIRM_TAIL started covers them."""
        pending = list(self._recent)
        self._recent.clear()
        sem = asyncio.Semaphore(16)

        async def one(handle: WorkflowHandle[Any, Any]) -> None:
            async with sem:
                await handle.query("state", result_type=OrderState)

        await asyncio.gather(*(one(h) for h in pending))


def parking_timing() -> TimingPolicy:
    """The compressed profile with the waits orders park in lengthened (reminders and idle limits, the SMS window),
    so no parked order wakes up or times out while a scenario holds thousands of them."""
    return TimingPolicy.compressed().model_copy(
        update={
            "reminder_interval": timedelta(days=1),
            "collection_idle_limit": timedelta(days=14),
            "confirmation_idle_limit": timedelta(days=7),
            "sms_window": timedelta(days=1),
        }
    )


PARKED_SMS_WINDOW = timedelta(days=1)


async def park(
    place_one: Callable[[], Awaitable[tuple[PlaceOrder, WorkflowHandle[Any, Any]]]],
    count: int,
    *,
    concurrency: int,
    deadline: float,
) -> list[tuple[PlaceOrder, WorkflowHandle[Any, Any]]]:
    """Park up to ``count`` orders with ``concurrency`` of them on the way at once, stopping at the loop time
    ``deadline``: orders started before it are finished, no new one starts after it."""
    loop = asyncio.get_running_loop()
    parked: list[tuple[PlaceOrder, WorkflowHandle[Any, Any]]] = []
    started = 0

    async def user() -> None:
        nonlocal started
        while started < count and loop.time() < deadline:
            started += 1
            parked.append(await place_one())

    await asyncio.gather(*(user() for _ in range(concurrency)))
    return parked
