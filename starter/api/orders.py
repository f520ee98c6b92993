"""``/v1/orders``: place an order, read one, list them, and every action a caller takes on an order.

Placing is idempotent per ``order_id``: the same order again answers 200 with the order (201 the first time), even
after it has ended; concurrent duplicates in one process share one start, and across processes Temporal's one
workflow id per filing lets exactly one start (R-LOCK-1). Actions are workflow updates: a refusal (wrong stage,
locked, not paused, …) answers 409 ``action_refused`` with the workflow's own reason, and nothing changes.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import AwareDatetime, BeforeValidator, Field
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from models import search
from models.identifiers import check_filing_number
from models.messages import (
    ActionResult,
    ExtendCollection,
    InitialReviewDecision,
    Resubmit,
    SmsVerificationEvent,
    SupportAction,
)
from models.order import Frozen, OrderKind, PlaceOrder, Province
from models.stages import Stage, Status
from starter.api.auth import READERS, Principal, require
from starter.api.config import Role
from starter.api.context import ApiContext, get_context
from starter.api.errors import ApiError, FieldError, error_responses, from_violation, invalid_request
from starter.api.order_checks import identifier_violations
from starter.api.order_view import OrderDetail, from_workflow, load_order
from starter.api.single_flight import SingleFlight, TagMismatch
from starter.client import workflow_id_of
from store import queries


def _iso_only(value: object) -> object:
    """A bare number would be read as a Unix timestamp; the spec promises ISO 8601, so refuse it."""
    if isinstance(value, int | float) or (isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9.]+\s*", value)):
        raise ValueError("expected an ISO 8601 instant with a time zone, e.g. 2026-11-28T00:00:00+08:00")
    return value


IsoInstant = Annotated[AwareDatetime, BeforeValidator(_iso_only)]

router = APIRouter(prefix="/v1/orders", tags=["orders"])

ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"  # as models.order.PlaceOrder.order_id
OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=ORDER_ID_PATTERN)]
Context = Annotated[ApiContext, Depends(get_context)]
Backend = Annotated[Principal, Depends(require(Role.BACKEND))]
Support = Annotated[Principal, Depends(require(Role.SUPPORT))]
Reader = Annotated[Principal, Depends(require(*READERS))]


# ------------------------------------------------------------------------------------------------ placing


def _order_id_taken(order_id: str, filing_number: str) -> ApiError:
    return ApiError(
        409,
        "order_id_taken",
        f"order id {order_id} already names an order of filing {filing_number}; choose a new order id",
        {"existing_order_id": order_id, "filing_number": filing_number},
    )


async def _start(ctx: ApiContext, order: PlaceOrder) -> tuple[OrderDetail, bool]:
    """The order and whether this call started it."""
    async with ctx.sessions() as session:
        existing = await queries.get_order(session, order.order_id)
    if existing is not None:
        # Known already (perhaps ended): answer it as it is. Starting it again would run the order twice.
        if existing.filing_number != order.filing_number:
            raise _order_id_taken(order.order_id, existing.filing_number)
        return await load_order(ctx, order.order_id), False
    # Not in the read model yet, but perhaps just started: the filing's running workflow says whose it is.
    running = await _running_order_id(ctx, order)
    state = await ctx.orders.place(order, wait_for_worker=False)
    return from_workflow(state), running != order.order_id


async def _running_order_id(ctx: ApiContext, order: PlaceOrder) -> str | None:
    try:
        desc = await ctx.orders.client.get_workflow_handle(workflow_id_of(order)).describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    if desc.status is not WorkflowExecutionStatus.RUNNING:
        return None
    return desc.typed_search_attributes.get(search.ORDER_ID)


@router.post(
    "",
    status_code=201,
    response_model=OrderDetail,
    summary="Place an order",
    responses=error_responses(400, 401, 403, 409, 413, 422, 503)
    | {200: {"model": OrderDetail, "description": "the order was placed before: the same order"}},
)
async def place_order(order: PlaceOrder, response: Response, ctx: Context, caller: Backend) -> OrderDetail:
    """Start a modification order. Identifiers are checked first (R-FMT-1, 422 listing every invalid field); the
    other rules are the workflow's (an invalid order ends at stage ``invalid`` with every reason). 409
    ``order_in_progress`` names the filing's order in progress (R-LOCK-1)."""
    violations = identifier_violations(order.model_dump(mode="json"))
    if violations:
        raise invalid_request([from_violation(v) for v in violations])
    if "placed_by" not in order.model_fields_set:
        order = order.model_copy(update={"placed_by": caller.name})
    placements: SingleFlight[tuple[OrderDetail, bool]] = ctx.placements
    try:
        (detail, created), first = await placements.run(order.order_id, order.filing_number, lambda: _start(ctx, order))
    except TagMismatch as err:
        raise _order_id_taken(order.order_id, err.running_tag) from None
    created = created and first
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/v1/orders/{detail.order_id}"
    return detail


def place_order_422(request: Any, body: Any) -> list[Any]:
    """For a placement whose body is the wrong shape: the identifier checks on the raw body, so the 422 lists
    every invalid field at once."""
    if request.method != "POST" or request.url.path.rstrip("/") != router.prefix:
        return []
    return [from_violation(v) for v in identifier_violations(body)]


# ------------------------------------------------------------------------------------------------ reading


@router.get(
    "/{order_id}", response_model=OrderDetail, summary="One order", responses=error_responses(401, 403, 404, 422, 503)
)
async def get_order(order_id: OrderId, ctx: Context, caller: Reader) -> OrderDetail:
    """The order's live state (stage, waiting on whom, pending actions, deadlines, documents, timeline); an order
    Temporal no longer has comes from the read model (``source: read_model``)."""
    return await load_order(ctx, order_id)


@router.get("", response_model=queries.OrderPage, summary="List orders", responses=error_responses(401, 403, 422))
async def list_orders(
    ctx: Context,
    caller: Reader,
    stage: Stage | None = None,
    status: Status | None = None,
    province: Province | None = None,
    kind: OrderKind | None = None,
    overdue: bool | None = None,
    filing_number: Annotated[str | None, Query(max_length=64, description="an entity's, website's or app's")] = None,
    placed_from: Annotated[IsoInstant | None, Query(description="inclusive, ISO 8601 with a time zone")] = None,
    placed_to: Annotated[IsoInstant | None, Query(description="exclusive, ISO 8601 with a time zone")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")] = None,
) -> queries.OrderPage:
    """Orders from the read model, newest placed first. Pass ``next_cursor`` back as ``cursor`` for the next page;
    it is null on the last page. A filing number matches the order's own number or its entity's."""
    if filing_number is not None and (problems := check_filing_number(filing_number, "filing_number")):
        raise invalid_request([from_violation(v, "query") for v in problems])
    async with ctx.sessions() as session:
        try:
            return await queries.list_orders(
                session,
                stage=stage,
                status=status,
                province=province,
                kind=kind,
                overdue=overdue,
                filing_number=filing_number,
                placed_from=placed_from,
                placed_to=placed_to,
                limit=limit,
                cursor=cursor,
            )
        except queries.InvalidCursor as err:
            fix = "pass the next_cursor of a previous page unchanged, or no cursor for the first page"
            raise invalid_request(
                [FieldError(field="cursor", loc=["query", "cursor"], message=str(err), fix=fix)]
            ) from None


# ------------------------------------------------------------------------------------------------ actions


class SupportRequest(Frozen):
    """Why support abandons or resumes the order; who does it is the token's name."""

    reason: str = Field(min_length=1, max_length=500)


class ExtendRequest(Frozen):
    days: int = Field(ge=1, le=90)
    reason: str = Field(min_length=1, max_length=500)


class ReviewRequest(Frozen):
    """The provider's initial review; the reviewer is the token's name. A rejection needs reasons."""

    approved: bool
    reasons: list[str] = Field(default_factory=list)


class ResubmitRequest(Frozen):
    note: str = Field(default="", max_length=500)


ACTION_ERRORS = error_responses(401, 403, 404, 409, 422, 503, 504)
# An action with a body may also find it unreadable or too large.
BODY_ACTION_ERRORS = ACTION_ERRORS | error_responses(400, 413)


@router.post("/{order_id}/confirmation", response_model=ActionResult, responses=ACTION_ERRORS)
async def confirm(order_id: OrderId, ctx: Context, caller: Backend) -> ActionResult:
    """The applicant confirmed the order's information (stage ``confirmation``)."""
    return await ctx.orders.confirm(order_id)


@router.post("/{order_id}/sms-verification", response_model=ActionResult, responses=BODY_ACTION_ERRORS)
async def sms_verification(
    order_id: OrderId, event: SmsVerificationEvent, ctx: Context, caller: Backend
) -> ActionResult:
    """The applicant's code (checked with the administration at once; ``attempts_left`` after a wrong one), a
    resend request, or the administration's own report (verified, returned, expired)."""
    if event.code is not None and not event.code.isascii():
        # The code's pattern takes any script's digits; the administration compares 0-9, so a code typed with an
        # input method's full-width digits would only use up one of the applicant's five tries.
        fix = "type the code with the digits 0-9 (an input method may have typed full-width digits)"
        raise invalid_request(
            [FieldError(field="code", loc=["body", "code"], message=f"{event.code!r} is not 6 digits 0-9", fix=fix)]
        )
    return await ctx.orders.sms_verification(order_id, event)


@router.post("/{order_id}/resubmission", response_model=ActionResult, responses=BODY_ACTION_ERRORS)
async def resubmit(
    order_id: OrderId, ctx: Context, caller: Backend, request: ResubmitRequest | None = None
) -> ActionResult:
    """After a rejection (stage ``correction``) the applicant fixed the order: send it round again."""
    return await ctx.orders.resubmit(order_id, Resubmit(note=request.note if request else ""))


@router.post("/{order_id}/initial-review", response_model=ActionResult, responses=BODY_ACTION_ERRORS)
async def initial_review(order_id: OrderId, review: ReviewRequest, ctx: Context, caller: Support) -> ActionResult:
    """Record the provider's initial review; a rejection returns the order to the applicant with the reasons."""
    decision = InitialReviewDecision(reviewer=caller.name, approved=review.approved, reasons=review.reasons)
    return await ctx.orders.record_initial_review(order_id, decision)


@router.post("/{order_id}/abandon", response_model=ActionResult, responses=BODY_ACTION_ERRORS)
async def abandon(order_id: OrderId, request: SupportRequest, ctx: Context, caller: Support) -> ActionResult:
    """Throw the pending order away (never the filing on record); refused while the administration has it."""
    return await ctx.orders.abandon(order_id, SupportAction(actor=caller.name, reason=request.reason))


@router.post("/{order_id}/resume", response_model=ActionResult, responses=BODY_ACTION_ERRORS)
async def resume(order_id: OrderId, request: SupportRequest, ctx: Context, caller: Support) -> ActionResult:
    """Restart a paused order where it stopped."""
    return await ctx.orders.resume(order_id, SupportAction(actor=caller.name, reason=request.reason))


@router.post("/{order_id}/extend", response_model=ActionResult, responses=BODY_ACTION_ERRORS)
async def extend(order_id: OrderId, request: ExtendRequest, ctx: Context, caller: Support) -> ActionResult:
    """Give the applicant more days to collect, confirm or correct (R-ID-1: a lost ID card must be replaced)."""
    grant = ExtendCollection(actor=caller.name, reason=request.reason, days=request.days)
    return await ctx.orders.extend(order_id, grant)
