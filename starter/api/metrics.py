"""``GET /metrics`` in Prometheus' text format: requests by route (counts and latencies) and the orders in the read
model by stage, with the open and overdue counts. Each app has its own registry, so several apps can live in one
process (tests) without colliding. Open to everyone, like ``/healthz``: it carries counts, no personal data."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.stages import Stage
from starter.api.context import ApiContext
from store import queries

log = logging.getLogger("icpflow.api")
router = APIRouter(tags=["operations"])


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "icpflow_api_requests",
            "HTTP requests answered, by route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "icpflow_api_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.orders = Gauge("icpflow_orders", "Orders in the read model, by stage", ["stage"], registry=self.registry)
        self.open_orders = Gauge("icpflow_orders_open", "Orders not yet ended", registry=self.registry)
        self.overdue_orders = Gauge(
            "icpflow_orders_overdue", "Open orders past the administration's deadline", registry=self.registry
        )

    async def refresh_orders(self, ctx: ApiContext) -> None:
        async with ctx.sessions() as session:
            stats = await queries.stats(session)
        for stage in Stage:
            self.orders.labels(stage=stage.value).set(stats.by_stage.get(stage, 0))
        self.open_orders.set(stats.open)
        self.overdue_orders.set(stats.overdue)


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (``/v1/orders/{order_id}``, never the raw
    path, so order ids do not become label values)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method=method, route=template, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=template).observe(time.perf_counter() - started)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Any:
    api_metrics: ApiMetrics = request.app.state.metrics
    ctx: ApiContext | None = getattr(request.app.state, "ctx", None)
    if ctx is not None:
        try:
            await api_metrics.refresh_orders(ctx)
        except Exception as err:  # the request metrics are still worth serving without the database
            log.warning("metrics: the read model is unreachable: %s", err)
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)
