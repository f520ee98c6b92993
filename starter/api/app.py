"""The FastAPI application: routers, error handlers, metrics, and its connections to Temporal and the database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.settings import Settings
from starter.api import codec, documents, health, metrics, orders, stats
from starter.api.auth import TokenTable
from starter.api.config import ApiSettings, api_settings
from starter.api.context import ApiContext
from starter.api.errors import install as install_error_handlers
from starter.api.limits import BodySizeLimit
from starter.client import OrderClient, connect
from starter.tracing import instrument_api
from store import db

log = logging.getLogger("icpflow.api")

DESCRIPTION = """\
Place and steer ICP filing modification orders. Every order is a durable workflow; this API is its door.

**Authentication**: `Authorization: Bearer <token>`. Roles: `backend` places orders and forwards what applicants
and the administration do (documents, confirmation, SMS verification, resubmission); `support` abandons, resumes,
extends and records the initial review; `viewer` reads. Every role may read. The token's name is recorded as the
actor of staff actions. Tokens are configured hashed in `ICPFLOW_API_TOKENS`; without it (local runs only) the
development tokens `dev-backend`, `dev-support` and `dev-viewer` are accepted.

**Dashboard**: `/dashboard?token=<token>` in a browser (any role).

**Errors** are JSON `{code, message, details}`; a 422 lists every invalid field with its path, rule id and fix.
"""


def create_app(
    settings: Settings | None = None,
    *,
    order_client: OrderClient | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> FastAPI:
    """The API (with the dashboard at ``/dashboard``).

    With ``order_client`` and ``sessions`` given, the app is ready at once and owns neither. Whatever is not given
    is made from ``settings`` in the app's lifespan: the database is migrated and a session factory made, a
    Temporal client connected; both are closed when the app stops.
    """
    config = api_settings(settings if settings is not None else ApiSettings())
    closers: list[Callable[[], Awaitable[Any]]] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if config.uses_dev_tokens:
            log.warning(
                "ICPFLOW_API_TOKENS is not set: the development tokens dev-backend, dev-support and dev-viewer are "
                "accepted. Configure real tokens anywhere but on a developer's machine."
            )
        if getattr(app.state, "ctx", None) is None:
            app.state.ctx = await _connect(config, order_client, sessions, closers)
        try:
            yield
        finally:
            if (snapshot := getattr(app.state, "stats_snapshot", None)) is not None:
                await snapshot.close()
            for close in reversed(closers):
                await close()
            closers.clear()

    app = FastAPI(
        title="icpflow",
        version="1",
        summary="ICP filing modification orders",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.tokens = TokenTable(config.tokens())
    app.state.settings = config
    app.state.metrics = metrics.ApiMetrics()
    if order_client is not None and sessions is not None:
        app.state.ctx = ApiContext(settings=config, orders=order_client, sessions=sessions)

    install_error_handlers(app, extra_422=orders.place_order_422)
    for module in (orders, documents, stats, health, metrics, codec):
        app.include_router(module.router)

    from starter import dashboard  # the dashboard renders through this app's context and auth

    app.include_router(dashboard.router)
    app.add_middleware(
        BodySizeLimit,
        max_upload_bytes=config.api_max_upload_bytes,
        max_request_bytes=config.api_max_request_bytes,
    )
    app.add_middleware(metrics.MetricsMiddleware, metrics=app.state.metrics)
    instrument_api(app, config)
    # Only the codec server is meant for browsers on other origins (the Temporal Web UI).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=config.api_codec_cors_origins,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        allow_credentials=True,
    )
    return app


async def _connect(
    config: ApiSettings,
    order_client: OrderClient | None,
    sessions: async_sessionmaker[AsyncSession] | None,
    closers: list[Callable[[], Awaitable[Any]]],
) -> ApiContext:
    if sessions is None:
        await db.upgrade(config.database_url)
        engine = db.create_engine(config.database_url)
        closers.append(engine.dispose)
        sessions = db.session_factory(engine)
    if order_client is None:
        client = await connect(config)
        order_client = OrderClient(
            client, task_queue=config.task_queue, read_model=sessions, action_timeout=config.action_timeout_seconds
        )
    return ApiContext(settings=config, orders=order_client, sessions=sessions)


def create_default_app() -> FastAPI:
    """For ``uvicorn --factory starter.api:create_default_app``: settings from the ``ICPFLOW_*`` environment."""
    return create_app(ApiSettings())
