"""The icpflow worker: the order workflow and every activity, wired to their adapters from the settings.

Run it with ``icpflow-worker`` (or ``python worker.py``); configuration comes from ``ICPFLOW_*`` variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.calendar import BusinessCalendar, CalendarActivities
from activities.documents import DocumentActivities
from activities.face import HttpFaceVerifier
from activities.notifications import NotificationActivities
from activities.records import RecordActivities
from activities.regulator import RegulatorActivities
from activities.validation import ValidationActivities
from activities.validation.rdap import RdapClient
from models.settings import ConfigError, Settings, get_settings
from starter.client import connect
from starter.logs import configure_logging, order_context
from store import db
from store.documents import LocalDocumentStore
from workflows.order import ModificationOrderWorkflow

log = logging.getLogger("icpflow.worker")


@dataclass
class Wiring:
    """Everything the worker built, so tests and the CLI can close it cleanly."""

    activities: list[Callable[..., Any]]
    engine: AsyncEngine
    closers: list[Callable[[], Any]] = field(default_factory=list)

    async def close(self) -> None:
        for close in self.closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result
        await self.engine.dispose()


def build_activities(settings: Settings) -> Wiring:
    """Construct every activity with its production adapter. Nothing here connects yet."""
    engine = db.create_engine(settings.database_url)
    sessions = db.session_factory(engine)
    regulator = RegulatorActivities(
        settings.regulator_url, settings.regulator_api_key, timeout=settings.http_timeout_seconds
    )
    calendar = BusinessCalendar.load(settings.calendar_data_path)
    documents = DocumentActivities(
        LocalDocumentStore(settings.document_store_path), HttpFaceVerifier(settings.face_verification_url), settings
    )
    validation = ValidationActivities(RdapClient(settings.rdap_base_url, timeout=settings.http_timeout_seconds))
    groups: list[Any] = [
        RecordActivities(sessions),
        NotificationActivities(sessions, settings),
        regulator,
        CalendarActivities(calendar),
        documents,
        validation,
    ]
    activities = [fn for group in groups for fn in group.activities()]
    closers = [g.aclose for g in groups if hasattr(g, "aclose")]
    return Wiring(activities=activities, engine=engine, closers=closers)


class OrderLogContext(Interceptor):
    """Puts the order id and workflow id of the activity being run into the logging context (starter/logs.py)."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityLogContext(next)


class _ActivityLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with order_context(_order_id_of(input.args), activity.info().workflow_id):
            return await super().execute_activity(input)


def _order_id_of(args: Any) -> str | None:
    for arg in args:
        order_id = getattr(arg, "order_id", None) or getattr(getattr(arg, "order", None), "order_id", None)
        if isinstance(order_id, str):
            return order_id
    return None


# icpflow's own workflow code is imported once per worker instead of once per workflow run: the sandbox's
# per-run re-import of ``workflows`` was most of what a cached order cost in memory (bench/README.md, memory).
# The package holds no module-level mutable state, and CI still replays every recorded history under the full
# sandbox (tests/replay), which catches a forbidden call in workflow code on every path those histories take.
PASSED_THROUGH = ("workflows", "models")


def workflow_runner(*also: str) -> SandboxedWorkflowRunner:
    """The sandbox the worker runs orders in: the SDK's default restrictions, icpflow's packages (and ``also``, e.g.
    the benchmarks' baseline workflow) passed through."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH, *also)
    )


def build_worker(
    client: Client, settings: Settings, wiring: Wiring, *, interceptors: Sequence[Interceptor] = (), **options: Any
) -> Worker:
    """The production worker; ``interceptors`` run inside the log-context one (tests use it to inject faults)."""
    options.setdefault("workflow_runner", workflow_runner())
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[ModificationOrderWorkflow],
        activities=wiring.activities,
        interceptors=[OrderLogContext(), *interceptors],
        **options,
    )


async def run(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    await db.upgrade(settings.database_url)
    runtime = None
    if settings.worker_metrics_address:
        # The SDK's own metrics (task latencies, slots, cache) for Prometheus at http://<address>/metrics.
        runtime = Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=settings.worker_metrics_address))
        )
    client = await connect(settings, runtime=runtime)
    wiring = build_activities(settings)
    worker = build_worker(client, settings, wiring)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    log.info("worker polling task queue %s on %s", settings.task_queue, settings.temporal_address)
    async with worker:
        await stop.wait()
    await wiring.close()


def main() -> None:
    try:
        settings = get_settings()
    except ConfigError as err:
        raise SystemExit(f"icpflow worker: {err}") from None
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
