"""The dashboard: a server-rendered page of every order, for people watching the pipeline. No build step, no script:
the page reloads itself (``<meta http-equiv="refresh">``, every 15 s by default, ``ICPFLOW_API_DASHBOARD_REFRESH_
SECONDS``).

- ``/dashboard`` — counts by stage, then the orders, overdue ones first; filters by stage, province, kind, overdue.
- ``/dashboard/orders/{order_id}`` — one order: where it stands, its deadlines, pending actions, documents, timeline.

Any role may look (viewer, support, backend). A browser passes its token once as ``/dashboard?token=<token>``: the
token is then kept in an HttpOnly cookie and the address is cleaned of it. ``Authorization: Bearer`` works too.
Times are shown in China Standard Time (UTC+8), the time the filings' applicants and administrations live in.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from models.order import OrderKind, Province
from models.stages import PIPELINE, Stage
from starter.api.auth import COOKIE_NAME, READERS, Principal, require_in_browser
from starter.api.context import ApiContext, get_context
from starter.api.errors import ApiError, FieldError, invalid_request
from starter.api.order_view import load_order
from starter.api.orders import OrderId
from store import queries

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

CST = timezone(timedelta(hours=8))
# The pipeline's stages in order, then where an order may leave it.
STAGES: list[Stage] = [*PIPELINE[:-1], Stage.CORRECTION, Stage.COMPLETED, Stage.INVALID, Stage.ABANDONED]
OVERDUE_FIRST = 100  # overdue orders shown at most
OTHERS = 200  # other orders shown at most (newest placed first)
COOKIE_SECONDS = 8 * 3600

Viewer = Annotated[Principal, Depends(require_in_browser(*READERS))]
Context = Annotated[ApiContext, Depends(get_context)]
E = TypeVar("E", bound=StrEnum)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(CST).strftime("%Y-%m-%d %H:%M")


def _label(value: Any) -> str:
    return str(getattr(value, "value", value)).replace("_", " ")


_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
_templates.filters["when"] = _when
_templates.filters["label"] = _label


def _render(template: str, request: Request, **context: Any) -> HTMLResponse:
    settings = request.app.state.settings
    html = _templates.get_template(template).render(refresh=settings.api_dashboard_refresh_seconds, **context)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _token_to_cookie(request: Request) -> Response | None:
    """``?token=`` (already checked) moves into a cookie; the browser is sent to the same page without it."""
    token = request.query_params.get("token")
    if token is None:
        return None
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    location = request.url.path + (f"?{urlencode(kept)}" if kept else "")
    response = RedirectResponse(location, status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=COOKIE_SECONDS,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _choice(cls: type[E], name: str, value: str | None) -> E | None:
    """A filter from the form: empty means any; anything else must be one of the enum's values."""
    if not value:
        return None
    try:
        return cls(value)
    except ValueError:
        raise _bad_filter(name, value, [m.value for m in cls]) from None


def _bad_filter(name: str, value: str, allowed: list[str]) -> ApiError:
    expected = ", ".join(allowed)
    return invalid_request(
        [FieldError(field=name, loc=["query", name], message=f"{value!r} is not a {name}", fix=f"one of: {expected}")]
    )


@router.get("", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    ctx: Context,
    viewer: Viewer,
    stage: str | None = None,
    province: str | None = None,
    kind: str | None = None,
    overdue: str | None = None,
) -> Response:
    if (redirect := _token_to_cookie(request)) is not None:
        return redirect
    filters: dict[str, Any] = {
        "stage": _choice(Stage, "stage", stage),
        "province": _choice(Province, "province", province),
        "kind": _choice(OrderKind, "kind", kind),
    }
    if overdue not in (None, "", "yes", "no"):
        raise _bad_filter("overdue", overdue, ["yes", "no", ""])
    async with ctx.sessions() as session:
        stats = await queries.stats(session)
        late = (
            await queries.list_orders(session, overdue=True, limit=OVERDUE_FIRST, **filters)
            if overdue in (None, "", "yes")
            else queries.OrderPage(orders=[])
        )
        others = (
            await queries.list_orders(session, overdue=False, limit=OTHERS, **filters)
            if overdue in (None, "", "no")
            else queries.OrderPage(orders=[])
        )
    return _render(
        "dashboard.html",
        request,
        viewer=viewer,
        stats=stats,
        stages=STAGES,
        provinces=list(Province),
        kinds=list(OrderKind),
        selected={k: (v.value if v is not None else "") for k, v in filters.items()} | {"overdue": overdue or ""},
        orders=late.orders + others.orders,
        more=late.next_cursor is not None or others.next_cursor is not None,
        now=datetime.now(CST),
    )


@router.get("/orders/{order_id}", response_class=HTMLResponse)
async def order_page(request: Request, order_id: OrderId, ctx: Context, viewer: Viewer) -> Response:
    if (redirect := _token_to_cookie(request)) is not None:
        return redirect
    order = await load_order(ctx, order_id)
    return _render("order.html", request, viewer=viewer, order=order, now=datetime.now(CST))
