"""``icpflow`` as support staff and operators use it, against the real stack: every ``orders`` command through the
HTTP API (uvicorn on a free loopback port, wired to the session's Temporal server, worker and read model) and
``--direct`` (Temporal and the read model from ``ICPFLOW_*`` settings); and what happens when nothing answers.

The CLI runs in a thread (it has its own event loop, as a real process does) while the session's loop keeps the
worker and the API serving.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from rich.console import Console
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from models.order import ChangeField, PlaceOrder
from models.stages import Stage, Status, WaitingOn
from models.state import OrderState
from starter.api import create_app
from starter.api.config import ApiSettings
from starter.cli import app
from starter.client import OrderClient, OrderNotFound
from starter.demo import demo_order, play_demo
from store import queries
from tests.conftest import Stack
from tests.workflows.driver import Driver, new_order

pytestmark = pytest.mark.integration

ICPFLOW = Path(sys.executable).parent / "icpflow"
TRANSPORTS = ["api", "direct"]
_demo_serials = itertools.count(60_000_001)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nobody listens there once the socket is closed


@pytest.fixture(scope="session")
async def api_url(stack: Stack, orders: OrderClient) -> AsyncIterator[str]:
    """The HTTP API served by uvicorn on a free port of 127.0.0.1, in the session's event loop."""
    settings = ApiSettings(**(stack.settings.model_dump() | {"api_tokens": None}))
    api = create_app(settings, order_client=orders, sessions=orders.read_model)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task
    sock.close()


def direct_env(stack: Stack, temporal_env: WorkflowEnvironment) -> dict[str, str]:
    """``ICPFLOW_*`` settings that point the CLI at the session's Temporal server, task queue and read model."""
    s = stack.settings
    return {
        "ICPFLOW_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "ICPFLOW_TASK_QUEUE": s.task_queue,
        "ICPFLOW_DATABASE_URL": s.database_url,
        "ICPFLOW_DOCUMENT_STORE_PATH": str(s.document_store_path),
        "ICPFLOW_DATA_DIR": str(s.data_dir),
        # Payloads are encrypted: the CLI needs the worker's keys to read an order.
        "ICPFLOW_CODEC_KEYS": s.codec_keys.get_secret_value() if s.codec_keys else "",
        "ICPFLOW_CODEC_ACTIVE_KEY": s.codec_active_key or "",
    }


class Cli:
    """Runs ``icpflow`` with one transport's options, as support staff would type it."""

    def __init__(self, transport: str, env: dict[str, str], api_url: str) -> None:
        self.transport = transport
        self.env: dict[str, str | None] = {**env, "COLUMNS": "220", "ICPFLOW_ACTOR": None}
        self.api_url = api_url

    def options(self, given: tuple[str, ...]) -> list[str]:
        if self.transport == "direct":
            return ["--direct"]
        return ["--api-url", self.api_url, *([] if "--token" in given else ["--token", "dev-support"])]

    async def __call__(self, *args: str, raw: bool = False) -> Result:
        argv = list(args) if raw else [*args, *self.options(args)]
        return await invoke(argv, self.env)


async def invoke(argv: list[str], env: dict[str, str | None] | None = None) -> Result:
    """``icpflow argv`` with ``env`` on top of this process's environment (None unsets a variable)."""
    runner = CliRunner()
    return await asyncio.to_thread(lambda: runner.invoke(app, argv, env=env))


@pytest.fixture(params=TRANSPORTS)
def cli(request: pytest.FixtureRequest, stack: Stack, temporal_env: WorkflowEnvironment, api_url: str) -> Cli:
    return Cli(request.param, direct_env(stack, temporal_env), api_url)


@pytest.fixture
def driver(temporal_env: WorkflowEnvironment, orders: OrderClient, stack: Stack) -> Driver:
    return Driver(temporal_env, orders, stack)


def flat(text: str) -> str:
    """Output with rich's line wrapping and box edges undone, for assertions on whole sentences."""
    return " ".join(text.replace("│", " ").split())


def reviewer_name(cli: Cli, given: str) -> str:
    # Through the API the token's name is the actor; --direct records --as.
    return given if cli.transport == "direct" else "dev-support"


async def in_read_model(orders: OrderClient, order_id: str, stage: Stage) -> None:
    """Lists come from the read model, which the workflow writes right after each transition."""
    assert orders.read_model is not None
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        async with orders.read_model() as session:
            row = await queries.get_order(session, order_id)
        if row is not None and row.stage is stage:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_id} never reached {stage} in the read model")


async def collecting(driver: Driver) -> PlaceOrder:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    # The stage is entered first; its clocks and to-do list are set right after.
    await driver.until(
        order.order_id,
        lambda s: s.stage is Stage.DOCUMENT_COLLECTION and bool(s.deadlines) and bool(s.pending_actions),
        "document collection with its deadlines",
    )
    return order


# ---------------------------------------------------------------------------------------------------- reading


async def test_show_prints_stage_waiting_on_deadlines_documents_and_timeline(cli: Cli, driver: Driver) -> None:
    order = await collecting(driver)

    result = await cli("orders", "show", order.order_id)

    assert result.exit_code == 0, result.output
    out = flat(result.stdout)
    assert f"order {order.order_id}" in out
    assert "document_collection · active" in out
    assert "waiting on applicant" in out
    assert "Pending actions" in out and "upload id_card_front" in out
    assert "Deadlines" in out
    assert "collection_idle" in out and "next_reminder" in out
    assert "in 1 d 23 h" in out or "in 2 d" in out  # the next reminder, two days out, as a relative time
    placed = (await driver.state(order.order_id)).placed_at
    assert placed.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S") in out  # China time
    for key in ("id_card_front", "id_card_back", "face_verification"):
        assert f"{key}:{order.filing_number}" in out
    assert "Timeline" in out and "order placed" in out and "order is valid" in out


async def test_show_as_json_is_the_order_snapshot(cli: Cli, driver: Driver) -> None:
    order = await collecting(driver)

    result = await cli("orders", "show", order.order_id, "--json")

    assert result.exit_code == 0, result.output
    state = OrderState.model_validate_json(result.stdout)
    assert state.order_id == order.order_id and state.stage is Stage.DOCUMENT_COLLECTION


async def test_list_filters_by_stage_and_filing_number(cli: Cli, driver: Driver, orders: OrderClient) -> None:
    order = await collecting(driver)
    await in_read_model(orders, order.order_id, Stage.DOCUMENT_COLLECTION)

    here = await cli("orders", "list", "--filing-number", order.filing_number, "--stage", "document_collection")
    elsewhere = await cli("orders", "list", "--filing-number", order.filing_number, "--stage", "completed")
    as_json = await cli("orders", "list", "--filing-number", order.record.entity_filing_number, "--json")

    assert here.exit_code == 0, here.output
    assert order.order_id in here.stdout and "1 order(s)" in here.stdout
    assert "document_collection" in here.stdout and "beijing" in here.stdout
    assert elsewhere.exit_code == 0 and order.order_id not in elsewhere.stdout
    assert "0 order(s)" in elsewhere.stdout
    assert [o["order_id"] for o in json.loads(as_json.stdout)["orders"]] == [order.order_id]


async def test_list_pages_with_a_cursor(cli: Cli, driver: Driver, orders: OrderClient) -> None:
    order = await collecting(driver)
    await in_read_model(orders, order.order_id, Stage.DOCUMENT_COLLECTION)

    first = await cli("orders", "list", "--limit", "1", "--json")
    cursor = json.loads(first.stdout)["next_cursor"]
    second = await cli("orders", "list", "--limit", "1", "--cursor", cursor, "--json")
    table = await cli("orders", "list", "--limit", "1")

    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["orders"][0]["order_id"] != json.loads(first.stdout)["orders"][0]["order_id"]
    assert f"more: --cursor {cursor}" in table.stdout


async def test_an_unknown_order_exits_1_saying_so(cli: Cli) -> None:
    result = await cli("orders", "show", "order-that-never-was")

    assert result.exit_code == 1
    assert "order-that-never-was" in result.stderr and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------- placing


async def test_place_starts_the_order_from_a_json_file(cli: Cli, driver: Driver, tmp_path: Path) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    file = tmp_path / "order.json"
    file.write_text(order.model_dump_json(indent=2), encoding="utf-8")

    # Placing orders is the backend's job: through the API it takes the backend's token.
    backend = [] if cli.transport == "direct" else ["--token", "dev-backend"]
    result = await cli("orders", "place", str(file), *backend)
    again = await cli("orders", "place", str(file), *backend)

    assert result.exit_code == 0, result.output
    assert f"placed order {order.order_id} on {order.filing_number}" in flat(result.stdout)
    assert again.exit_code == 0, again.output  # placing the same order twice is harmless
    driver.placed[order.order_id] = order
    await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)


async def test_place_refuses_a_file_that_is_not_an_order(cli: Cli, tmp_path: Path) -> None:
    file = tmp_path / "order.json"
    file.write_text(json.dumps({"order_id": "x", "kind": "website"}), encoding="utf-8")

    result = await cli("orders", "place", str(file))

    assert result.exit_code == 1
    assert "filing_number" in result.stderr and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------- staff actions


async def test_review_approve_sends_the_order_to_the_administration(cli: Cli, driver: Driver) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)

    result = await cli("orders", "review", order.order_id, "--approve", "--as", "reviewer-li")

    assert result.exit_code == 0, result.output
    assert f"approved order {order.order_id}" in flat(result.stdout)
    state = await driver.until(order.order_id, lambda s: s.stage is not Stage.INITIAL_REVIEW)
    approval = next(t for t in state.timeline if t.reason == "initial review approved")
    assert approval.actor_name == reviewer_name(cli, "reviewer-li")


async def test_review_reject_returns_the_order_to_the_applicant_with_the_reasons(cli: Cli, driver: Driver) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await driver.place(order)
    await driver.through_collection(order.order_id)

    result = await cli(
        "orders", "review", order.order_id, "--reject", "--reason", "ID photo blurred", "--reason", "wrong name"
    )

    assert result.exit_code == 0, result.output
    assert f"rejected order {order.order_id}" in flat(result.stdout)
    state = await driver.state(order.order_id)
    assert state.review_reasons == ["ID photo blurred", "wrong name"]
    assert state.waiting_on is WaitingOn.APPLICANT


async def test_review_needs_exactly_one_decision_and_a_rejection_needs_a_reason() -> None:
    neither = await invoke(["orders", "review", "some-order"])
    both = await invoke(["orders", "review", "some-order", "--approve", "--reject"])
    bare_rejection = await invoke(["orders", "review", "some-order", "--reject"])

    assert neither.exit_code == both.exit_code == bare_rejection.exit_code == 2
    assert "exactly one of --approve or --reject" in flat(neither.output)
    assert "needs at least one --reason" in flat(bare_rejection.output)


async def test_extend_gives_the_applicant_more_days(cli: Cli, driver: Driver) -> None:
    order = await collecting(driver)

    result = await cli("orders", "extend", order.order_id, "--days", "7", "--reason", "ID card being replaced")

    assert result.exit_code == 0, result.output
    assert f"extended order {order.order_id}" in flat(result.stdout) and "7 more day(s)" in result.stdout
    assert (await driver.state(order.order_id)).collection_extension_days == 7


async def test_abandon_ends_the_order_recording_who_and_why(cli: Cli, driver: Driver) -> None:
    order = await collecting(driver)

    result = await cli("orders", "abandon", order.order_id, "--reason", "customer withdrew", "--as", "support-wang")

    assert result.exit_code == 0, result.output
    assert f"abandoned order {order.order_id}: now at abandoned" in flat(result.stdout)
    state = await driver.state(order.order_id)
    assert state.stage is Stage.ABANDONED
    last = state.timeline[-1]
    assert "customer withdrew" in last.reason and last.actor_name == reviewer_name(cli, "support-wang")
    if cli.transport == "api":
        assert "records the token's name" in result.stderr  # --as is not what the API records


async def test_resume_brings_a_paused_order_back(cli: Cli, driver: Driver) -> None:
    order = await collecting(driver)
    await driver.skip(order.order_id, order.timing.collection_idle_limit + timedelta(hours=1))
    await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION, Status.PAUSED)

    result = await cli("orders", "resume", order.order_id, "--reason", "customer called back")

    assert result.exit_code == 0, result.output
    assert f"resumed order {order.order_id}" in flat(result.stdout)
    await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION, Status.ACTIVE)


async def test_a_refused_action_exits_1_with_the_orders_reason(cli: Cli, driver: Driver) -> None:
    order = await collecting(driver)

    result = await cli("orders", "resume", order.order_id, "--reason", "nothing to resume")

    assert result.exit_code == 1
    assert result.stderr.startswith("icpflow: ") and "pause" in result.stderr.lower()
    assert "Traceback" not in result.output


async def test_the_actor_defaults_to_icpflow_actor(
    stack: Stack, temporal_env: WorkflowEnvironment, driver: Driver
) -> None:
    order = await collecting(driver)
    env: dict[str, str | None] = {**direct_env(stack, temporal_env), "ICPFLOW_ACTOR": "support-zhao"}

    result = await invoke(["orders", "abandon", order.order_id, "--reason", "duplicate", "--direct"], env)

    assert result.exit_code == 0, result.output
    assert (await driver.state(order.order_id)).timeline[-1].actor_name == "support-zhao"


# ---------------------------------------------------------------------------------------------------- unreachable


async def test_an_unreachable_api_is_one_line_exit_2_naming_the_url_and_the_fixes() -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    for argv in (["orders", "show", "any"], ["orders", "list"], ["orders", "abandon", "any", "--reason", "x"]):
        result = await invoke([*argv, "--api-url", url])

        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1
        assert f"cannot reach the icpflow API at {url} (connection refused)" in result.stderr
        assert "ICPFLOW_API_URL" in result.stderr and "--direct" in result.stderr
        assert result.stdout == ""


async def test_an_unreachable_temporal_is_one_line_exit_2_naming_the_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"

    result = await invoke(["orders", "show", "any", "--direct"], {"ICPFLOW_TEMPORAL_ADDRESS": address})

    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert f"cannot reach Temporal at {address}" in result.stderr and "connection refused" in result.stderr
    assert "ICPFLOW_TEMPORAL_ADDRESS" in result.stderr


async def test_a_direct_action_no_worker_answers_is_exit_2_after_the_action_timeout(
    stack: Stack, temporal_env: WorkflowEnvironment, orders: OrderClient
) -> None:
    """The abandon reaches Temporal and waits there for a worker that never comes (none polls the order's queue):
    the CLI gives up after ``ICPFLOW_ACTION_TIMEOUT_SECONDS`` with one line, not a hang or a traceback."""
    queue = f"icp-no-worker-{uuid.uuid4().hex[:8]}"
    idle = OrderClient(temporal_env.client, task_queue=queue, read_model=orders.read_model)
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    placed = await idle.place(order, wait_for_worker=False)
    env: dict[str, str | None] = {
        **direct_env(stack, temporal_env),
        "ICPFLOW_TASK_QUEUE": queue,
        "ICPFLOW_ACTION_TIMEOUT_SECONDS": "2",
    }
    try:
        result = await invoke(["orders", "abandon", order.order_id, "--reason", "duplicate", "--direct"], env)
    finally:
        await temporal_env.client.get_workflow_handle(placed.workflow_id).terminate("test: nobody will run it")

    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert "the order did not answer within 2 s (is an icpflow worker running?)" in result.stderr
    assert "read the order" in result.stderr and "Traceback" not in result.output


async def test_list_direct_without_a_read_model_is_exit_2_saying_how_to_make_one(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'absent.db'}"

    result = await invoke(["orders", "list", "--direct"], {"ICPFLOW_DATABASE_URL": url})

    assert result.exit_code == 2, result.output
    assert "no read model at" in result.stderr and "icpflow db upgrade" in result.stderr
    assert not (tmp_path / "absent.db").exists()  # looking did not create an empty database


def test_the_installed_command_prints_no_traceback_when_nothing_answers() -> None:
    port = closed_port()
    env = os.environ | {"ICPFLOW_API_URL": f"http://127.0.0.1:{port}", "COLUMNS": "200"}

    done = subprocess.run(
        [str(ICPFLOW), "orders", "show", "order-1"], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2
    assert done.stderr.startswith(f"icpflow: cannot reach the icpflow API at http://127.0.0.1:{port}")
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


async def test_a_wrong_token_exits_1_pointing_at_the_token(api_url: str) -> None:
    result = await invoke(["orders", "list", "--api-url", api_url, "--token", "not-a-token"])

    assert result.exit_code == 1
    assert "[unauthorized]" in result.stderr and "ICPFLOW_API_TOKEN" in result.stderr


async def test_a_viewer_may_read_but_not_act(api_url: str, driver: Driver) -> None:
    order = await collecting(driver)
    viewer = ["--api-url", api_url, "--token", "dev-viewer"]

    shown = await invoke(["orders", "show", order.order_id, *viewer])
    refused = await invoke(["orders", "abandon", order.order_id, "--reason", "x", *viewer])

    assert shown.exit_code == 0, shown.output
    assert refused.exit_code == 1 and "[forbidden]" in refused.stderr and "role" in refused.stderr


# ---------------------------------------------------------------------------------------------------- operators


@pytest.fixture
def operator_env(tmp_path: Path) -> Iterator[dict[str, str | None]]:
    yield {"ICPFLOW_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ops' / 'icpflow.db'}", "COLUMNS": "200"}


async def test_db_upgrade_migrates_the_configured_database(operator_env: dict[str, str | None], tmp_path: Path) -> None:
    first = await invoke(["db", "upgrade"], operator_env)
    again = await invoke(["db", "upgrade"], operator_env)

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "is at the latest schema" in first.stdout
    assert (tmp_path / "ops" / "icpflow.db").exists()


def a_schedule(year: int = 2031) -> dict[str, Any]:
    return {
        "year": year,
        "holidays": [f"{year}-01-01", f"{year}-05-01", f"{year}-05-02"] + [f"{year}-10-0{d}" for d in range(1, 8)],
        "makeup_workdays": [],
        "source": "made up for the CLI test",
        "published": f"{year - 1}-11-10",
    }


async def test_calendar_import_year_adds_the_year_to_the_override_file(tmp_path: Path) -> None:
    source = tmp_path / "2031.json"
    source.write_text(json.dumps(a_schedule()), encoding="utf-8")
    override = tmp_path / "calendar.json"

    imported = await invoke(["calendar", "import-year", str(source), "--override", str(override)])
    twice = await invoke(["calendar", "import-year", str(source), "--override", str(override)])
    replaced = await invoke(["calendar", "import-year", str(source), "--override", str(override), "--replace"])
    years = await invoke(["calendar", "years", "--override", str(override)])

    assert imported.exit_code == 0, imported.output
    assert "2031: 10 holidays, 0 make-up working days" in flat(imported.stdout)
    assert json.loads(override.read_text(encoding="utf-8"))["years"][0]["year"] == 2031
    assert twice.exit_code == 1 and "already in" in twice.stderr and "--replace" in twice.stderr
    assert replaced.exit_code == 0, replaced.output
    assert "2031" in years.stdout and "made up for the CLI test" in years.stdout


async def test_calendar_import_year_without_an_override_file_says_where_to_set_it(tmp_path: Path) -> None:
    source = tmp_path / "2031.json"
    source.write_text(json.dumps(a_schedule()), encoding="utf-8")

    result = await invoke(["calendar", "import-year", str(source)], {"ICPFLOW_CALENDAR_DATA_PATH": None})

    assert result.exit_code == 1
    assert "ICPFLOW_CALENDAR_DATA_PATH" in result.stderr


async def test_calendar_import_year_refuses_an_implausible_schedule(tmp_path: Path) -> None:
    source = tmp_path / "bad.json"
    source.write_text(json.dumps(a_schedule() | {"holidays": ["2031-02-30"]}), encoding="utf-8")

    result = await invoke(["calendar", "import-year", str(source), "--override", str(tmp_path / "c.json")])

    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not (tmp_path / "c.json").exists()


# ---------------------------------------------------------------------------------------------------- the demo


@pytest.mark.parametrize("through", TRANSPORTS)
async def test_the_demo_order_is_played_through_every_stage_to_completed(
    through: str, stack: Stack, temporal_env: WorkflowEnvironment, api_url: str, driver: Driver
) -> None:
    """What `icpflow dev up` does once the stack is up; the session's regulator is in manual mode, so this test
    plays the administration too."""
    order = demo_order(serial=next(_demo_serials), order_id=f"demo-test-{through}")
    settings = stack.settings.model_copy(
        update={"temporal_address": temporal_env.client.service_client.config.target_host}
    )
    printed = io.StringIO()
    console = Console(file=printed, width=200)

    async def administration() -> None:
        while True:  # until the demo has placed the order and brought it to the administration
            try:
                state = await driver.state(order.order_id)
            except OrderNotFound:
                state = None
            if state is not None and state.stage is Stage.ADMINISTRATION_REVIEW:
                break
            await asyncio.sleep(0.1)
        await driver.decide(order.order_id, approved=True)

    approving = asyncio.create_task(administration())
    try:
        await play_demo(settings, api_url if through == "api" else None, timeout=120, console=console, order=order)
    finally:
        approving.cancel()

    state = await driver.state(order.order_id)
    assert state.stage is Stage.COMPLETED and state.status is Status.APPROVED
    out = flat(printed.getvalue())
    assert "applicant uploaded face_verification" in out and "reviewer approved the initial review" in out
    assert "applicant entered the code" in out and f"demo order {order.order_id} approved" in out
    reviewer = "dev-support" if through == "api" else "reviewer-demo"
    assert any(t.actor_name == reviewer for t in state.timeline)
