"""``icpflow``: the command line, one group per person who uses it.

- Support staff (``icpflow orders …``): find orders, read one, and act on it — abandon, resume, record the initial
  review, grant more time. ``orders place`` is for the backend and demos.
- Operators: ``icpflow worker``, ``icpflow api``, ``icpflow db upgrade``, ``icpflow dev up`` (the local stack),
  ``icpflow calendar import-year``.

``orders`` commands talk to the HTTP API by default (``--api-url`` / ``ICPFLOW_API_URL``, bearer token ``--token`` /
``ICPFLOW_API_TOKEN``), as any other caller would, so roles and the audit trail apply. ``--direct`` talks to Temporal
and the read model with the ``ICPFLOW_*`` settings instead, for operators on the servers' own machine. Nothing falls
back silently from one to the other: when the chosen one cannot be reached the command says what it tried and how
to fix it, and exits with status 2. A refused action or an unknown order exits with status 1.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol, TypeVar

import httpx
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from activities.calendar import CHINA_TIME
from models.messages import (
    ActionResult,
    Confirm,
    ExtendCollection,
    InitialReviewDecision,
    SmsVerificationEvent,
    SupportAction,
)
from models.order import OrderKind, PlaceOrder, Province, entity_filing_number
from models.settings import Settings
from models.stages import Stage, Status
from models.state import OrderState
from store.queries import OrderPage

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_TOKEN = "dev-support"

# Exit statuses: 1 the order or the request was refused (nothing changed), 2 nothing could be reached (or the
# command line itself was wrong, as click reports it).
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 2

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

app = typer.Typer(
    name="icpflow",
    help="ICP filing modification orders: support staff's and operators' commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
orders_app = typer.Typer(help="Support staff: find, read and steer orders.", no_args_is_help=True)
db_app = typer.Typer(help="The app database (the read model, audit trail, outbox).", no_args_is_help=True)
dev_app = typer.Typer(help="The local development stack.", no_args_is_help=True)
calendar_app = typer.Typer(help="China's business-day calendar data.", no_args_is_help=True)
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True)
app.add_typer(orders_app, name="orders")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(dev_app, name="dev")
app.add_typer(calendar_app, name="calendar")

console = Console(highlight=False)


# ==================================================================================================== errors


class CliError(Exception):
    """An error the user can act on: printed as one line, no traceback, exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code


class Unreachable(CliError):
    """Neither the API nor Temporal (whichever was chosen) answered."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_UNREACHABLE, "unreachable")


EXIT_CONFIG = 2  # invalid configuration, like an unreachable service: nothing was done


def fail(message: str, exit_code: int = EXIT_REFUSED) -> NoReturn:
    typer.echo(f"icpflow: {message}", err=True)
    raise typer.Exit(exit_code)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine; a :class:`CliError` becomes its one-line message and exit status."""
    try:
        return asyncio.run(make())
    except CliError as e:
        fail(e.message, e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)


# ================================================================================================= transports


class OrderFilters(BaseModel):
    stage: Stage | None = None
    status: Status | None = None
    province: Province | None = None
    kind: OrderKind | None = None
    overdue: bool | None = None
    filing_number: str | None = None
    cursor: str | None = None
    limit: int = 50


class Transport(Protocol):
    """How a caller reaches orders: the HTTP API (:class:`ApiTransport`) or Temporal itself (:class:`DirectTransport`).
    Both raise :class:`Unreachable` when they cannot connect and :class:`CliError` when an order refuses."""

    async def place(self, order: PlaceOrder) -> OrderState: ...
    async def state(self, order_id: str) -> OrderState: ...
    async def list_orders(self, filters: OrderFilters) -> OrderPage: ...
    async def upload(self, order_id: str, key: str, data: bytes, filename: str, content_type: str) -> ActionResult: ...
    async def confirm(self, order_id: str, request: Confirm) -> ActionResult: ...
    async def review(self, order_id: str, decision: InitialReviewDecision) -> ActionResult: ...
    async def sms_verification(self, order_id: str, event: SmsVerificationEvent) -> ActionResult: ...
    async def abandon(self, order_id: str, action: SupportAction) -> ActionResult: ...
    async def resume(self, order_id: str, action: SupportAction) -> ActionResult: ...
    async def extend(self, order_id: str, request: ExtendCollection) -> ActionResult: ...
    async def aclose(self) -> None: ...


class ApiTransport:
    """The HTTP API (``/v1``) with a bearer token. Errors come back as ``{code, message, details}``."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 90.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise Unreachable(
                f"cannot reach the icpflow API at {self.base_url} ({_why(e)}); start it (`icpflow api`, or the whole "
                "stack with `icpflow dev up`), point --api-url / ICPFLOW_API_URL at it, or use --direct to talk to "
                "Temporal"
            ) from None
        if response.status_code >= 400:
            raise _api_error(response)
        try:
            return response.json()
        except ValueError:
            raise CliError(f"{self.base_url} did not answer JSON: is --api-url the icpflow API?") from None

    def _model(self, model: type[M], body: Any) -> M:
        try:
            return model.model_validate(body)
        except ValidationError as e:
            raise CliError(
                f"unexpected answer from {self.base_url} ({e.error_count()} problem(s) reading a {model.__name__}): "
                "is --api-url the icpflow API, of the same version as this command?"
            ) from None

    async def place(self, order: PlaceOrder) -> OrderState:
        body = await self._request(
            "POST", "/v1/orders", content=order.model_dump_json(), headers={"Content-Type": "application/json"}
        )
        return self._model(OrderState, _unwrap(body, "order"))

    async def state(self, order_id: str) -> OrderState:
        return self._model(OrderState, _unwrap(await self._request("GET", f"/v1/orders/{order_id}"), "order"))

    async def list_orders(self, filters: OrderFilters) -> OrderPage:
        params = {k: _param(v) for k, v in filters.model_dump(exclude_none=True).items()}
        return self._model(OrderPage, await self._request("GET", "/v1/orders", params=params))

    async def upload(self, order_id: str, key: str, data: bytes, filename: str, content_type: str) -> ActionResult:
        body = await self._request(
            "POST",
            f"/v1/orders/{order_id}/documents",
            data={"key": key},
            files={"file": (filename, data, content_type)},
        )
        return self._model(ActionResult, body)

    async def _action(self, order_id: str, action: str, body: dict[str, Any] | None = None) -> ActionResult:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        return self._model(ActionResult, await self._request("POST", f"/v1/orders/{order_id}/{action}", **kwargs))

    # Through the API the actor of staff actions is the token's name (the token says who calls), so the bodies
    # carry only the what and the why.

    async def confirm(self, order_id: str, request: Confirm) -> ActionResult:
        return await self._action(order_id, "confirmation")

    async def review(self, order_id: str, decision: InitialReviewDecision) -> ActionResult:
        return await self._action(
            order_id, "initial-review", {"approved": decision.approved, "reasons": decision.reasons}
        )

    async def sms_verification(self, order_id: str, event: SmsVerificationEvent) -> ActionResult:
        return await self._action(order_id, "sms-verification", event.model_dump(mode="json", exclude_none=True))

    async def abandon(self, order_id: str, action: SupportAction) -> ActionResult:
        return await self._action(order_id, "abandon", {"reason": action.reason})

    async def resume(self, order_id: str, action: SupportAction) -> ActionResult:
        return await self._action(order_id, "resume", {"reason": action.reason})

    async def extend(self, order_id: str, request: ExtendCollection) -> ActionResult:
        return await self._action(order_id, "extend", {"days": request.days, "reason": request.reason})


def _param(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _unwrap(body: Any, key: str) -> Any:
    """Accept a resource either bare or wrapped as ``{key: resource, …}``."""
    if isinstance(body, dict) and key in body and isinstance(body[key], dict):
        return body[key]
    return body


def _api_error(response: httpx.Response) -> CliError:
    try:
        body = response.json()
    except ValueError:
        body = None
    error: dict[str, Any] = body if isinstance(body, dict) else {}
    if isinstance(error.get("error"), dict):  # tolerate {"error": {code, message}} too
        error = error["error"]
    code = str(error.get("code") or f"http_{response.status_code}")
    message = str(error.get("message") or error.get("detail") or response.reason_phrase or "request failed")
    if response.status_code == 401:
        message += " (check --token / ICPFLOW_API_TOKEN)"
    elif response.status_code == 403:
        message += " (this token's role may not do that)"
    return CliError(f"{message} [{code}]", EXIT_REFUSED, code)


def _why(error: BaseException) -> str:
    """A short reason for a failed connection: ``connection refused``, ``timed out``, ``unknown host``."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(error).lower():
        return "connection refused"
    if isinstance(error, httpx.TimeoutException) or any(isinstance(e, TimeoutError) for e in chain):
        return "timed out"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "unknown host"
    return _first_line(error)


class DirectTransport:
    """Temporal and the read model, with the ``ICPFLOW_*`` settings: what the API itself does, without the API."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._orders: Any = None  # starter.client.OrderClient, once connected
        self._engine: Any = None

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()

    async def _client(self) -> Any:
        from starter.client import OrderClient, connect

        if self._orders is None:
            try:
                client = await connect(self.settings)
            except RuntimeError as e:
                raise Unreachable(
                    f"cannot reach Temporal at {self.settings.temporal_address} "
                    f"(namespace {self.settings.temporal_namespace}, {_first_line(e)}); start it (`icpflow dev up`) "
                    "or set ICPFLOW_TEMPORAL_ADDRESS, or drop --direct to go through the API"
                ) from None
            self._orders = OrderClient(
                client,
                task_queue=self.settings.task_queue,
                read_model=await self._read_model(required=False),
                action_timeout=self.settings.action_timeout_seconds,
            )
        return self._orders

    async def _read_model(self, *, required: bool) -> Any:
        """A session factory on the app database, or ``None`` (``required=False``) when it is not there yet."""
        from sqlalchemy import text
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError

        from store import db

        url = self.settings.database_url
        shown = make_url(url).render_as_string(hide_password=True)
        if _missing_sqlite_file(url):
            if not required:
                return None
            raise Unreachable(
                f"no read model at {shown} (the file does not exist); run `icpflow db upgrade` and a worker, "
                "set ICPFLOW_DATABASE_URL, or drop --direct to go through the API"
            )
        if self._engine is None:
            self._engine = db.create_engine(url)
        try:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1 FROM orders LIMIT 1"))
        except (SQLAlchemyError, OSError) as e:
            if not required:
                return None
            raise Unreachable(
                f"cannot read the read model at {shown} ({_first_line(e)}); check ICPFLOW_DATABASE_URL and run "
                "`icpflow db upgrade`, or drop --direct to go through the API"
            ) from None
        return db.session_factory(self._engine)

    async def _call(self, call: Callable[[Any], Awaitable[T]]) -> T:
        from temporalio.service import RPCError

        from starter.client import ActionTimeout, OrderError
        from starter.codec import CodecKeyError

        orders = await self._client()
        try:
            return await call(orders)
        except ActionTimeout as e:
            raise CliError(str(e), EXIT_UNREACHABLE, e.code) from None
        except OrderError as e:
            raise CliError(f"{e} [{e.code}]", EXIT_REFUSED, e.code) from None
        except CodecKeyError as e:
            raise CliError(
                f"{e}: --direct needs the same payload keys as the worker (ICPFLOW_CODEC_KEYS, or the same "
                "ICPFLOW_DATA_DIR for the local key file)",
                EXIT_REFUSED,
                "codec_key",
            ) from None
        except RPCError as e:
            raise CliError(f"Temporal refused: {e.message}", EXIT_REFUSED, "temporal_error") from None

    async def place(self, order: PlaceOrder) -> OrderState:
        return await self._call(lambda o: o.place(order))

    async def state(self, order_id: str) -> OrderState:
        return await self._call(lambda o: o.state(order_id))

    async def list_orders(self, filters: OrderFilters) -> OrderPage:
        from store import queries

        sessions = await self._read_model(required=True)
        try:
            async with sessions() as session:
                return await queries.list_orders(session, **filters.model_dump())
        except ValueError as e:  # a bad cursor or limit
            raise CliError(str(e), EXIT_REFUSED, "invalid_request") from None

    async def upload(self, order_id: str, key: str, data: bytes, filename: str, content_type: str) -> ActionResult:
        from store.documents import LocalDocumentStore

        current = await self.state(order_id)
        store = LocalDocumentStore(self.settings.document_store_path)
        owner = entity_filing_number(current.filing_number)
        ref = await asyncio.to_thread(store.put, data, content_type, filename, owner)
        return await self._call(lambda o: o.upload_document(order_id, key, ref))

    async def confirm(self, order_id: str, request: Confirm) -> ActionResult:
        return await self._call(lambda o: o.confirm(order_id, request.actor))

    async def review(self, order_id: str, decision: InitialReviewDecision) -> ActionResult:
        return await self._call(lambda o: o.record_initial_review(order_id, decision))

    async def sms_verification(self, order_id: str, event: SmsVerificationEvent) -> ActionResult:
        return await self._call(lambda o: o.sms_verification(order_id, event))

    async def abandon(self, order_id: str, action: SupportAction) -> ActionResult:
        return await self._call(lambda o: o.abandon(order_id, action))

    async def resume(self, order_id: str, action: SupportAction) -> ActionResult:
        return await self._call(lambda o: o.resume(order_id, action))

    async def extend(self, order_id: str, request: ExtendCollection) -> ActionResult:
        return await self._call(lambda o: o.extend(order_id, request))


def _missing_sqlite_file(url: str) -> bool:
    """A SQLite URL whose file is not there: connecting would create an empty database, so don't."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return False
    return not Path(database).exists()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    if "ConnectionRefused" in text or "Connection refused" in text:
        return "connection refused"
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."


@dataclass(frozen=True)
class Connection:
    """Which transport a command uses, from its options."""

    api_url: str = DEFAULT_API_URL
    token: str = DEFAULT_TOKEN
    direct: bool = False

    def transport(self) -> Transport:
        if self.direct:
            return DirectTransport(Settings())
        return ApiTransport(self.api_url, self.token)


async def with_transport(connection: Connection, use: Callable[[Transport], Awaitable[T]]) -> T:
    transport = connection.transport()
    try:
        return await use(transport)
    finally:
        await transport.aclose()


# ================================================================================================= rendering


def china_time(at: datetime) -> str:
    """``2025-06-02 17:00`` in China's time (UTC+8, no summer time)."""
    return at.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")


def relative(at: datetime, now: datetime) -> str:
    """``in 3 h 20 min``, ``2 d 4 h ago``, ``now``."""
    delta = at - now
    seconds = abs(delta.total_seconds())
    if seconds < 1:
        return "now"
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n][:2]
    text = " ".join(parts) if parts else f"{secs} s"
    return f"in {text}" if delta > timedelta(0) else f"{text} ago"


def when(at: datetime | None, now: datetime) -> str:
    return "—" if at is None else f"{china_time(at)} ({relative(at, now)})"


_STATUS_STYLE = {
    Status.ACTIVE: "cyan",
    Status.PAUSED: "yellow",
    Status.APPROVED: "green",
    Status.INVALID: "red",
    Status.ABANDONED: "red",
}


def timeline_table(state: OrderState, *, title: str = "Timeline") -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("#", "at (China time)", "stage", "status", "actor", "reason"):
        table.add_column(column, overflow="fold")
    for t in state.timeline:
        actor = f"{t.actor.value} ({t.actor_name})" if t.actor_name else t.actor.value
        table.add_row(
            str(t.seq),
            china_time(t.at),
            t.stage.value,
            Text(t.status.value, style=_STATUS_STYLE.get(t.status, "")),
            actor,
            t.reason,
        )
    return table


def render_state(state: OrderState, now: datetime | None = None) -> RenderableType:
    """The ``orders show`` panel: where the order stands, what it waits for, its deadlines, documents, history."""
    now = now or datetime.now(UTC)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    status = Text(state.status.value, style=_STATUS_STYLE.get(state.status, ""))
    head.add_row("stage", Text.assemble(state.stage.value, " · ", status))
    head.add_row("waiting on", state.waiting_on.value)
    head.add_row("kind", f"{state.kind.value} order on {state.filing_number} ({state.province.value})")
    head.add_row("placed", when(state.placed_at, now))
    head.add_row("updated", when(state.updated_at, now))
    if state.paused_reason:
        head.add_row("paused", Text(state.paused_reason, style="yellow"))
    if state.overdue:
        head.add_row("overdue", Text("past the administration's legal review limit; escalated", style="red"))
    if state.notice_reference:
        head.add_row("notice", state.notice_reference)
    parts: list[RenderableType] = [head]

    if state.pending_actions:
        actions = Table(title="Pending actions", title_justify="left")
        for column in ("who", "what", "rule"):
            actions.add_column(column, overflow="fold")
        for a in state.pending_actions:
            actions.add_row(a.owner.value, a.description, a.rule_id or "")
        parts.append(actions)
    else:
        parts.append(Text("No pending actions.", style="dim"))

    if state.deadlines:
        deadlines = Table(title="Deadlines", title_justify="left")
        for column in ("deadline", "at (China time)", "when"):
            deadlines.add_column(column)
        for d in sorted(state.deadlines, key=lambda d: d.at):
            label = d.kind.value + (" (estimated)" if d.estimated else "")
            style = "red" if d.at < now else ""
            deadlines.add_row(label, china_time(d.at), Text(relative(d.at, now), style=style))
        parts.append(deadlines)

    if state.documents:
        documents = Table(title="Documents", title_justify="left")
        for column in ("document", "status", "note"):
            documents.add_column(column, overflow="fold")
        for doc in state.documents:
            documents.add_row(doc.key, doc.status.value, doc.failure_reason)
        parts.append(documents)

    problems = [(v.rule_id, v.field, v.message, v.fix) for v in state.violations]
    if problems:
        refused = Table(title="Why the order is invalid", title_justify="left")
        for column in ("rule", "field", "problem", "fix"):
            refused.add_column(column, overflow="fold")
        for row in problems:
            refused.add_row(*row)
        parts.append(refused)
    for title, reasons in (
        ("Initial review reasons", state.review_reasons),
        ("Administration's rejection reasons", state.rejection_reasons),
    ):
        if reasons:
            parts.append(Text(f"{title}:\n" + "\n".join(f"  • {r}" for r in reasons)))
    parts.append(timeline_table(state))
    return Panel(Group(*parts), title=f"order {state.order_id}", title_align="left", expand=False)


def orders_table(page: OrderPage, now: datetime | None = None) -> Table:
    now = now or datetime.now(UTC)
    table = Table(title=f"{len(page.orders)} order(s)", title_justify="left")
    for column in ("order", "kind", "province", "filing number", "stage", "status", "waiting on", "placed", "updated"):
        # Identifiers and stages stay whole: a reader copies them into the next command.
        table.add_column(column, no_wrap=column in ("order", "filing number", "stage", "placed"))
    for o in page.orders:
        stage = o.stage.value + (" ⚠ overdue" if o.overdue else "")
        table.add_row(
            o.order_id,
            o.kind.value,
            o.province.value,
            o.filing_number,
            Text(stage, style="red" if o.overdue else ""),
            Text(o.status.value, style=_STATUS_STYLE.get(o.status, "")),
            o.waiting_on.value,
            china_time(o.placed_at),
            relative(o.updated_at, now),
        )
    return table


def print_result(verb: str, result: ActionResult) -> None:
    message = f" — {result.message}" if result.message else ""
    console.print(
        f"{verb} order {result.order_id}: now at {result.stage.value} ({result.status.value}){message}", soft_wrap=True
    )


# ================================================================================================= options

ApiUrl = Annotated[
    str,
    typer.Option("--api-url", envvar="ICPFLOW_API_URL", help="The icpflow HTTP API.", show_default=True),
]
Token = Annotated[
    str,
    typer.Option("--token", envvar="ICPFLOW_API_TOKEN", help="Bearer token for the API.", show_default=True),
]
Direct = Annotated[
    bool,
    typer.Option("--direct", help="Talk to Temporal and the read model (ICPFLOW_* settings) instead of the HTTP API."),
]
OrderId = Annotated[str, typer.Argument(metavar="ORDER_ID", help="The order's id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Actor = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Your name in the audit trail with --direct (default: $ICPFLOW_ACTOR, else your OS user); through "
        "the API the token's name is recorded.",
    ),
]
Reason = Annotated[str, typer.Option("--reason", help="Why: recorded in the audit trail and shown in the timeline.")]


def actor_name(given: str | None) -> str:
    """``--as``, else ``ICPFLOW_ACTOR``, else the OS user."""
    if given and given.strip():
        return given.strip()
    from_env = os.environ.get("ICPFLOW_ACTOR", "").strip()
    if from_env:
        return from_env
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name on some containers
        return "support"


def staff_actor(given: str | None, direct: bool) -> str:
    if given and not direct:
        typer.echo("icpflow: note: through the API the audit trail records the token's name, not --as", err=True)
    return actor_name(given)


def _validated(make: Callable[[], T]) -> T:
    try:
        return make()
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in e.errors())
        fail(problems)


# ================================================================================================= orders


@orders_app.command("list")
def orders_list(
    stage: Annotated[Stage | None, typer.Option(help="Only orders at this stage.")] = None,
    status: Annotated[Status | None, typer.Option(help="Only orders with this status.")] = None,
    province: Annotated[Province | None, typer.Option(help="Only orders in this province.")] = None,
    kind: Annotated[OrderKind | None, typer.Option(help="Only orders of this kind.")] = None,
    overdue: Annotated[
        bool | None, typer.Option("--overdue/--not-overdue", help="Only overdue (or only not overdue) orders.")
    ] = None,
    filing_number: Annotated[
        str | None, typer.Option(help="An order's filing number, or an entity's for all its orders.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Orders per page.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page.")] = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    token: Token = DEFAULT_TOKEN,
    direct: Direct = False,
) -> None:
    """Orders from the read model, newest first."""
    filters = OrderFilters(
        stage=stage,
        status=status,
        province=province,
        kind=kind,
        overdue=overdue,
        filing_number=filing_number,
        cursor=cursor,
        limit=limit,
    )
    page = run_async(lambda: with_transport(Connection(api_url, token, direct), lambda t: t.list_orders(filters)))
    if as_json:
        typer.echo(page.model_dump_json(indent=2))
        return
    console.print(orders_table(page))
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}", style="dim", soft_wrap=True)


@orders_app.command("show")
def orders_show(
    order_id: OrderId,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    token: Token = DEFAULT_TOKEN,
    direct: Direct = False,
) -> None:
    """One order: stage, status, who it waits on, pending actions, deadlines, documents and timeline."""
    state = run_async(lambda: with_transport(Connection(api_url, token, direct), lambda t: t.state(order_id)))
    if as_json:
        typer.echo(state.model_dump_json(indent=2))
        return
    console.print(render_state(state))


@orders_app.command("place")
def orders_place(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE.json", help="A PlaceOrder as JSON ('-' reads standard input).", allow_dash=True),
    ],
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    token: Token = DEFAULT_TOKEN,
    direct: Direct = False,
) -> None:
    """Place an order from a JSON file (the backend's request body). Placing the same order twice is harmless."""
    try:
        text = typer.get_text_stream("stdin").read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror or e}")
    order = _validated(lambda: PlaceOrder.model_validate_json(text))
    state = run_async(lambda: with_transport(Connection(api_url, token, direct), lambda t: t.place(order)))
    if as_json:
        typer.echo(state.model_dump_json(indent=2))
        return
    console.print(
        f"placed order {state.order_id} on {state.filing_number}: {state.stage.value} ({state.status.value})",
        soft_wrap=True,
    )


def _act(connection: Connection, verb: str, act: Callable[[Transport], Awaitable[ActionResult]], as_json: bool) -> None:
    result = run_async(lambda: with_transport(connection, act))
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        print_result(verb, result)


@orders_app.command("abandon")
def orders_abandon(
    order_id: OrderId,
    reason: Reason,
    as_: Actor = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    token: Token = DEFAULT_TOKEN,
    direct: Direct = False,
) -> None:
    """Throw the pending order away (the filing on record is untouched). Refused once the administration has it."""
    action = _validated(lambda: SupportAction(actor=staff_actor(as_, direct), reason=reason))
    _act(Connection(api_url, token, direct), "abandoned", lambda t: t.abandon(order_id, action), as_json)


@orders_app.command("resume")
def orders_resume(
    order_id: OrderId,
    reason: Reason,
    as_: Actor = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    token: Token = DEFAULT_TOKEN,
    direct: Direct = False,
) -> None:
    """Restart a paused order where it stopped."""
    action = _validated(lambda: SupportAction(actor=staff_actor(as_, direct), reason=reason))
    _act(Connection(api_url, token, direct), "resumed", lambda t: t.resume(order_id, action), as_json)


@orders_app.command("review")
def orders_review(
    order_id: OrderId,
    approve: Annotated[bool, typer.Option("--approve", help="The documents and information are in order.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Send the order back to the applicant.")] = False,
    reasons: Annotated[
        list[str] | None, typer.Option("--reason", help="What the applicant must fix (repeat for several).")
    ] = None,
    as_: Actor = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    token: Token = DEFAULT_TOKEN,
    direct: Direct = False,
) -> None:
    """Record the provider's initial review: --approve, or --reject with at least one --reason."""
    if approve == reject:
        raise typer.BadParameter("give exactly one of --approve or --reject", param_hint="--approve/--reject")
    given = [r for r in (reasons or []) if r.strip()]
    if reject and not given:
        raise typer.BadParameter("a rejection needs at least one --reason for the applicant", param_hint="--reason")
    decision = _validated(
        lambda: InitialReviewDecision(reviewer=staff_actor(as_, direct), approved=approve, reasons=given)
    )
    verb = "approved" if approve else "rejected"
    _act(Connection(api_url, token, direct), verb, lambda t: t.review(order_id, decision), as_json)


@orders_app.command("extend")
def orders_extend(
    order_id: OrderId,
    days: Annotated[int, typer.Option("--days", min=1, max=90, help="Extra days for the applicant.")],
    reason: Reason,
    as_: Actor = None,
    as_json: AsJson = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    token: Token = DEFAULT_TOKEN,
    direct: Direct = False,
) -> None:
    """Give the applicant more time to collect, confirm or correct (e.g. a lost ID card being replaced, R-ID-1)."""
    request = _validated(lambda: ExtendCollection(actor=staff_actor(as_, direct), reason=reason, days=days))
    _act(Connection(api_url, token, direct), "extended", lambda t: t.extend(order_id, request), as_json)


# ================================================================================================= operators


@app.command("worker")
def worker_command() -> None:
    """Run the worker (every workflow and activity) until Ctrl-C or SIGTERM."""
    import worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("twilio", "httpx", "alembic"):  # a line per HTTP request would drown the worker's own
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    try:
        asyncio.run(worker.run(settings))
    except RuntimeError as e:
        if "connect" not in str(e).lower():
            raise
        fail(
            f"cannot reach Temporal at {settings.temporal_address} ({_first_line(e)}); start it "
            "(`icpflow dev up`) or set ICPFLOW_TEMPORAL_ADDRESS",
            EXIT_UNREACHABLE,
        )
    except KeyboardInterrupt:
        pass


@app.command("api")
def api_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs, dashboard at /dashboard)."""
    try:
        import uvicorn

        from starter.api import create_app
    except ImportError as e:
        fail(f"the HTTP API cannot start: {e} (reinstall the project: make install)", EXIT_UNREACHABLE)
    uvicorn.run(create_app(), host=host, port=port, log_level="info")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the app database (ICPFLOW_DATABASE_URL) to the latest schema. Safe to repeat."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from store import db

    url = Settings().database_url
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        asyncio.run(db.upgrade(url))
    except (SQLAlchemyError, OSError) as e:
        fail(f"cannot migrate {shown}: {_first_line(e)} (check ICPFLOW_DATABASE_URL)", EXIT_UNREACHABLE)
    console.print(f"{shown} is at the latest schema", soft_wrap=True)


@dev_app.command("up")
def dev_up(
    exit_after_demo: Annotated[
        bool, typer.Option("--exit-after-demo", help="Stop everything once the demo order is approved (CI).")
    ] = False,
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Place and play a demo order.")] = True,
    demo_timeout: Annotated[
        float, typer.Option(help="Seconds the demo order may take before it counts as failed.")
    ] = 480.0,
    time_factor: Annotated[
        str, typer.Option(help="The simulated regulator's time scale (1/8640: a day lasts 10 s).")
    ] = "1/8640",
) -> None:
    """The whole local stack: Temporal, the simulators, the worker and the API, then a demo order."""
    from starter import devstack

    options = devstack.Options(
        exit_after_demo=exit_after_demo, demo=demo, demo_timeout=demo_timeout, time_factor=time_factor
    )
    raise typer.Exit(devstack.main(Settings(), options))


@calendar_app.command("import-year")
def calendar_import_year(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="JSON: year, holidays, makeup_workdays, source, published.")
    ],
    override: Annotated[
        Path | None, typer.Option(help="The override file (default: ICPFLOW_CALENDAR_DATA_PATH).")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite the year if it is already there.")] = False,
) -> None:
    """Add a year's official working-day schedule. Restart the workers to use it."""
    from activities.calendar import CalendarDataError, import_year

    target = override or Settings().calendar_data_path
    if target is None:
        fail("no override file: pass --override PATH or set ICPFLOW_CALENDAR_DATA_PATH (the workers read it too)")
    try:
        schedule = import_year(file, target, replace=replace)
    except CalendarDataError as e:
        fail(str(e).replace("\n", "; "))
    console.print(
        f"{schedule.year}: {len(schedule.holidays)} holidays, {len(schedule.makeup_workdays)} make-up working days "
        f"→ {target} (restart the workers to use it)",
        soft_wrap=True,
    )


@calendar_app.command("years")
def calendar_years(
    override: Annotated[
        Path | None, typer.Option(help="The override file (default: ICPFLOW_CALENDAR_DATA_PATH).")
    ] = None,
) -> None:
    """The years the calendar knows, and where each comes from."""
    from activities.calendar import BusinessCalendar, CalendarDataError

    try:
        calendar = BusinessCalendar.load(override or Settings().calendar_data_path)
    except CalendarDataError as e:
        fail(str(e).replace("\n", "; "))
    console.print(calendar.describe())
    for year in calendar.known_years:
        schedule = calendar.schedule(year)
        published = schedule.published.isoformat() if schedule and schedule.published else "unknown"
        console.print(f"{year}  published {published:<10}  {schedule.source if schedule else ''}")


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of a table.")] = False,
) -> None:
    """Every ICPFLOW_* setting as this process sees it (environment and defaults), secrets masked."""
    from models.settings import ConfigError, load, masked
    from starter.api.config import ApiSettings

    try:
        shown = masked(load(ApiSettings))
    except ConfigError as e:
        fail(str(e), EXIT_CONFIG)
    if as_json:
        typer.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    table = Table(title="icpflow configuration", title_justify="left")
    table.add_column("variable", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in shown.items():
        table.add_row(name, value)
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
