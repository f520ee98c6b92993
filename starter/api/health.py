"""``GET /healthz``: is Temporal reachable, is the database reachable. 200 when both are, 503 (JSON error, with the
same checks in ``details``) when either is not. Open to everyone: load balancers and orchestrators call it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from starter.api.context import ApiContext
from starter.api.errors import ErrorBody

router = APIRouter(tags=["operations"])

TIMEOUT_SECONDS = 3.0


class Check(BaseModel):
    ok: bool
    detail: str = ""


class Health(BaseModel):
    status: str
    checks: dict[str, Check]


async def _check(probe: Any) -> Check:
    try:
        await asyncio.wait_for(probe, TIMEOUT_SECONDS + 1)
    except TimeoutError:
        return Check(ok=False, detail=f"no answer within {TIMEOUT_SECONDS:g} s")
    except Exception as err:  # any failure means unreachable; say which
        return Check(ok=False, detail=f"{type(err).__name__}: {err}"[:300])
    return Check(ok=True)


async def _temporal(ctx: ApiContext) -> None:
    healthy = await ctx.orders.client.service_client.check_health(timeout=timedelta(seconds=TIMEOUT_SECONDS))
    if not healthy:
        raise RuntimeError("the frontend reports not serving")


async def _database(ctx: ApiContext) -> None:
    async with ctx.sessions() as session:
        await session.execute(text("SELECT 1"))


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness and dependencies",
    responses={503: {"model": ErrorBody, "description": "Temporal or the database is unreachable"}},
)
async def healthz(request: Request) -> Any:
    ctx: ApiContext | None = getattr(request.app.state, "ctx", None)
    if ctx is None:
        checks = {"api": Check(ok=False, detail="still starting")}
    else:
        temporal, database = await asyncio.gather(_check(_temporal(ctx)), _check(_database(ctx)))
        checks = {"temporal": temporal, "database": database}
    health = Health(status="ok" if all(c.ok for c in checks.values()) else "unavailable", checks=checks)
    if health.status == "ok":
        return health
    failing = ", ".join(name for name, c in checks.items() if not c.ok)
    body = ErrorBody(code="unavailable", message=f"unhealthy: {failing} unreachable", details=health.model_dump())
    return JSONResponse(body.model_dump(), status_code=503)
