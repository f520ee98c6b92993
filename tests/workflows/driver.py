"""Plays the people around an order in workflow tests: the applicant, the reviewer, the administration, support.

Everything goes through the real parts: the client facade, the document store, the SMS sink (the code is read from
the text the regulator simulator sent), the regulator simulator's HTTP control endpoint.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from PIL import Image
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from models.documents import DocumentKind, DocumentRef, DocumentStatus
from models.messages import InitialReviewDecision, SmsEventKind, SmsVerificationEvent, SupportAction
from models.order import ChangeField, Person, PlaceOrder
from models.stages import Stage, Status
from models.state import DependencyWait, OrderState
from models.timing import TimingPolicy
from simulators.regulator import code_from_sms
from starter.client import OrderClient
from store.documents import LocalDocumentStore
from tests.conftest import Stack
from tests.factories import make_order, mobile

ACTIVITY_STARTED = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
PDF_KINDS = {DocumentKind.AUTHORISATION_LETTER, DocumentKind.AUTHENTICITY_COMMITMENT, DocumentKind.CHANGE_CERTIFICATE}


def colour_photo(width: int = 1024, height: int = 768, *, grey: bool = False, seed: int | None = None) -> bytes:
    """A JPEG that passes the authenticity checks (colour, large enough), or a greyscale 'photocopy'."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height))
    pixels = img.load()
    assert pixels is not None
    for x in range(0, width, 8):
        for y in range(0, height, 8):
            c = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            if grey:
                c = (c[0], c[0], c[0])
            for dx in range(8):
                for dy in range(8):
                    pixels[x + dx, y + dy] = c
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


class Driver:
    def __init__(self, env: WorkflowEnvironment, orders: OrderClient, stack: Stack) -> None:
        self.env = env
        self.orders = orders
        self.stack = stack
        self.store = LocalDocumentStore(stack.settings.document_store_path)
        self.placed: dict[str, PlaceOrder] = {}

    # ---------------------------------------------------------------- reading

    async def state(self, order_id: str) -> OrderState:
        return await self.orders.state(order_id)

    async def until(
        self, order_id: str, predicate: Callable[[OrderState], bool], what: str = "", timeout: float = 60
    ) -> OrderState:
        deadline = asyncio.get_running_loop().time() + timeout
        state = await self.state(order_id)
        while not predicate(state):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"order {order_id} never reached {what or predicate}: {state.stage} {state.status}"
                )
            await asyncio.sleep(0.05)
            state = await self.state(order_id)
        return state

    async def until_stage(self, order_id: str, stage: Stage, status: Status | None = None) -> OrderState:
        return await self.until(
            order_id,
            lambda s: s.stage is stage and (status is None or s.status is status),
            f"{stage.value} {status.value if status else ''}",
        )

    async def skip(self, order_id: str, duration: timedelta) -> None:
        """Move this order's virtual clock forward (timers due in the meantime fire).

        The clock moves only once the order is idle — no workflow task and no activity attempt under way (a poll
        waiting for its next retry counts as idle) — as a person waiting would see it. Jumping while an activity
        runs in real time would time it out, which is the crash and fault tests' business, not a path's."""
        handle = await self.orders.handle(order_id)
        await self.until_idle(handle)
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return  # it finished while we waited (a poll already saw the verdict): no clock left to move
        await self.env.fast_forward(handle, duration)

    async def until_dependency_wait(self, order_id: str, activity: str) -> tuple[OrderState, DependencyWait]:
        """Let the order's patience run out while ``activity`` keeps failing; the state and the wait it shows."""
        await self.skip(order_id, self.placed[order_id].timing.dependency_patience + timedelta(minutes=1))
        state = await self.until(
            order_id, lambda s: any(w.activity == activity for w in s.dependency_waits), f"a wait on {activity}"
        )
        return state, next(w for w in state.dependency_waits if w.activity == activity)

    async def until_dependency_alerted(self, order_id: str, activity: str, rounds: int = 12) -> DependencyWait:
        """Keep an outage going in steps of a quarter of ``dependency_alert_after`` until support was alerted about
        the wait on ``activity``; that wait."""
        step = self.placed[order_id].timing.dependency_alert_after / 4
        for _ in range(rounds):
            await self.skip(order_id, step)
            wait = next((w for w in (await self.state(order_id)).dependency_waits if w.activity == activity), None)
            assert wait is not None, f"the wait on {activity} vanished while the fault lasted"
            if wait.alerted:
                return wait
        raise AssertionError(f"support was never alerted about {activity}")

    async def until_idle(self, handle: Any, timeout: float = 60) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            desc = (await handle.describe()).raw_description
            busy = [a for a in desc.pending_activities if a.attempt <= 1 or a.state == ACTIVITY_STARTED]
            if not busy and not desc.HasField("pending_workflow_task"):
                return
            if loop.time() > end:
                raise AssertionError(f"order never went idle: {[a.activity_type.name for a in busy]}")
            await asyncio.sleep(0.02)

    # ---------------------------------------------------------------- the applicant

    async def place(self, order: PlaceOrder, **kwargs: Any) -> OrderState:
        self.placed[order.order_id] = order
        return await self.orders.place(order, **kwargs)

    async def upload(self, order_id: str, key: str, *, grey: bool = False, data: bytes | None = None) -> Any:
        order = self.placed[order_id]
        kind = DocumentKind(key.split(":", 1)[0])
        if data is None:
            data = colour_photo(grey=grey)
        content_type = "image/jpeg"
        ref: DocumentRef = self.store.put(data, content_type, f"{kind.value}.jpg", owner=order.entity_filing_number)
        return await self.orders.upload_document(order_id, key, ref)

    async def upload_missing(self, order_id: str) -> OrderState:
        state = await self.state(order_id)
        for doc in state.documents:
            if doc.status in (DocumentStatus.MISSING, DocumentStatus.FAILED):
                await self.upload(order_id, doc.key)
        return await self.state(order_id)

    async def confirm(self, order_id: str) -> OrderState:
        await self.until_stage(order_id, Stage.CONFIRMATION)
        await self.orders.confirm(order_id)
        return await self.state(order_id)

    async def through_collection(self, order_id: str) -> OrderState:
        """Upload every document and confirm: the order then waits for the provider's initial review."""
        await self.until_stage(order_id, Stage.DOCUMENT_COLLECTION)
        await self.upload_missing(order_id)
        await self.confirm(order_id)
        return await self.until_stage(order_id, Stage.INITIAL_REVIEW)

    async def enter_code(self, order_id: str, *, wrong: bool = False) -> Any:
        code = "000000"
        if not wrong:
            code = await self.current_code(order_id)
        elif code == await self.current_code(order_id):
            code = "111111"
        return await self.orders.sms_verification(
            order_id, SmsVerificationEvent(event=SmsEventKind.CODE_ENTERED, code=code)
        )

    async def current_code(self, order_id: str) -> str:
        await self.until_stage(order_id, Stage.SMS_VERIFICATION)
        mobile = state_mobile(self.placed[order_id])
        texts = [m for m in self.stack.sms.messages_to(mobile) if "12381" in m.from_]
        assert texts, f"no verification SMS reached {mobile}"
        return code_from_sms(texts[-1].body)

    # ---------------------------------------------------------------- the reviewer, the administration, support

    async def review(self, order_id: str, approved: bool = True, reasons: list[str] | None = None) -> Any:
        await self.until_stage(order_id, Stage.INITIAL_REVIEW)
        decision = InitialReviewDecision(reviewer="reviewer-li", approved=approved, reasons=reasons or [])
        return await self.orders.record_initial_review(order_id, decision)

    async def to_administration_review(self, order_id: str) -> OrderState:
        await self.through_collection(order_id)
        await self.review(order_id)
        await self.enter_code(order_id)
        return await self.until_stage(order_id, Stage.ADMINISTRATION_REVIEW)

    async def decide(
        self, order_id: str, approved: bool, reasons: list[str] | None = None, *, submission_id: str | None = None
    ) -> None:
        """The administration's verdict on the order's current submission (or the one named)."""
        if submission_id is None:
            sub = (await self.state(order_id)).current_submission
            assert sub is not None and sub.submission_id
            submission_id = sub.submission_id
        async with httpx.AsyncClient(base_url=self.stack.regulator.url) as http:
            response = await http.post(
                f"/sim/submissions/{submission_id}/decide",
                json={"decision": "approved" if approved else "rejected", "reasons": reasons or []},
            )
            response.raise_for_status()

    async def abandon(self, order_id: str, reason: str = "customer withdrew") -> Any:
        return await self.orders.abandon(order_id, SupportAction(actor="support-wang", reason=reason))

    async def resume(self, order_id: str, reason: str = "customer called back") -> Any:
        return await self.orders.resume(order_id, SupportAction(actor="support-wang", reason=reason))


def state_mobile(order: PlaceOrder) -> str:
    """The number the administration texts: the person in charge once the order's changes apply."""
    return order.contact_person().mobile


# Workflow tests poll the regulator once a day of virtual time: each poll costs real time (about a second) while a
# test fast-forwards through a review, and a day's latency is still well inside the 20-business-day limit.
TEST_TIMING = TimingPolicy(review_poll_interval=timedelta(days=1))
_contacts = itertools.count(1000)


def new_order(changes: list[ChangeField], *, max_auto_resubmissions: int | None = None, **overrides: Any) -> PlaceOrder:
    """A valid Beijing website order (tests/factories.py) whose people have contact details no other order shares,
    so each test reads only its own mail and texts."""
    order = make_order(
        changes=list(changes), max_auto_resubmissions=max_auto_resubmissions, timing=TEST_TIMING, **overrides
    )
    n = next(_contacts)

    def unique(person: Person, role: str) -> Person:
        return person.model_copy(
            update={
                "email": f"{role}-{n}@example.com",
                "mobile": mobile(order.province, n * 2 % 8000),
                "emergency_mobile": mobile(order.province, (n * 2 + 1) % 8000),
            }
        )

    services = [
        s.model_copy(update={"person_in_charge": unique(s.person_in_charge, f"svc{i}")})
        for i, s in enumerate(order.record.services)
    ]
    record = order.record.model_copy(update={"services": services})
    changed = [
        c.model_copy(
            update={
                "new_person": unique(c.new_person, f"new{i}").model_copy(
                    update={"mobile": mobile(order.province, 4000 + n % 4000)}
                )
            }
        )
        if c.new_person is not None
        else c
        for i, c in enumerate(order.changes)
    ]
    return order.model_copy(update={"record": record, "changes": changed})
