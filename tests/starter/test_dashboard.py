"""The dashboard in a real browser: headless Chromium (the Debian package, /usr/bin/chromium) driven by Playwright,
against the app served by uvicorn on a free loopback port, wired to the real stack (Temporal, worker, read model).

Chromium is a system package, never downloaded at test time (no ``playwright install``): ``make test`` installs
``chromium`` and ``chromium-driver`` with apt. Without it these tests fail, saying so.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from temporalio.testing import WorkflowEnvironment

from models.order import ChangeField, OrderKind, Province
from models.stages import Stage, Status, WaitingOn
from starter.api import create_app
from starter.api.config import ApiSettings
from starter.client import OrderClient
from store import queries
from store.tables import OrderRow
from tests.conftest import Stack
from tests.workflows.driver import Driver, new_order

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
async def base_url(stack: Stack, orders: OrderClient) -> AsyncIterator[str]:
    """The app on a free port of 127.0.0.1, served by uvicorn in this event loop (the session's Temporal client
    and read model belong to it)."""
    settings = ApiSettings(**(stack.settings.model_dump() | {"api_tokens": None, "api_dashboard_refresh_seconds": 30}))
    app = create_app(settings, order_client=orders, sessions=orders.read_model)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def driver(temporal_env: WorkflowEnvironment, orders: OrderClient, stack: Stack) -> Driver:
    return Driver(temporal_env, orders, stack)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the dashboard tests need Debian's Chromium "
            "(apt-get update && apt-get install -y chromium chromium-driver; `make test` does this)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB")
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def until_in_read_model(orders: OrderClient, order_id: str, stage: Stage) -> None:
    assert orders.read_model is not None
    for _ in range(600):
        async with orders.read_model() as session:
            row = await queries.get_order(session, order_id)
        if row is not None and row.stage is stage:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} never reached {stage.value} in the read model")


async def an_overdue_order(orders: OrderClient, province: Province) -> str:
    """An order long under the administration's review, past its deadline (straight into the read model)."""
    assert orders.read_model is not None
    order_id = f"overdue-{uuid.uuid4().hex[:8]}"
    placed = datetime.now(UTC) - timedelta(days=45)
    async with orders.read_model() as session, session.begin():
        session.add(
            OrderRow(
                order_id=order_id,
                workflow_id=f"icp-filing-gone-{order_id}",
                kind=OrderKind.WEBSITE.value,
                province=province.value,
                filing_number=f"{province.abbreviation}ICP备88888888号-1",
                entity_filing_number=f"{province.abbreviation}ICP备88888888号",
                stage=Stage.ADMINISTRATION_REVIEW.value,
                status=Status.ACTIVE.value,
                waiting_on=WaitingOn.ADMINISTRATION.value,
                overdue=True,
                placed_at=placed,
                updated_at=placed + timedelta(days=30),
                last_seq=9,
                review_due_at=placed + timedelta(days=29),
            )
        )
    return order_id


async def test_dashboard_lists_a_placed_order_with_its_stage_overdue_first_and_filters_it(
    page: Page, base_url: str, driver: Driver, orders: OrderClient
) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE], province=Province.GUANGDONG)
    await driver.place(order)
    await until_in_read_model(orders, order.order_id, Stage.DOCUMENT_COLLECTION)
    late = await an_overdue_order(orders, Province.GUANGDONG)

    response = await page.goto(f"{base_url}/dashboard?token=dev-viewer")
    assert response is not None and response.status == 200
    assert "token" not in page.url, "the token moves to a cookie and leaves the address"
    row = page.locator(f'tr[data-order-id="{order.order_id}"]')
    await expect(row).to_be_visible()
    await expect(row.locator("td.stage")).to_have_text("document collection")
    tile = page.locator('#stage-counts [data-stage="document_collection"] b')
    assert int(await tile.inner_text()) >= 1
    assert await page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "30"

    # Filter by province: the order's own shows it, with the overdue order above it; another hides it.
    await page.select_option('select[name="province"]', Province.GUANGDONG.value)
    await page.click('#filters button[type="submit"]')
    await page.wait_for_url("**/dashboard?*province=guangdong*")
    await expect(row).to_be_visible()
    ids = await page.locator("#orders tbody tr").evaluate_all("rows => rows.map(r => r.dataset.orderId)")
    assert ids.index(late) < ids.index(order.order_id), "overdue orders come first"
    await expect(page.locator(f'tr[data-order-id="{late}"] .badge.overdue')).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    await page.select_option('select[name="province"]', Province.BEIJING.value)
    await page.click('#filters button[type="submit"]')
    await page.wait_for_url("**/dashboard?*province=beijing*")
    await expect(row).to_have_count(0)
    await page.goto(f"{base_url}/dashboard?province=guangdong&kind=app")
    await expect(row).to_have_count(0)
    await page.goto(f"{base_url}/dashboard?province=guangdong&overdue=yes")
    await expect(row).to_have_count(0)
    await expect(page.locator(f'tr[data-order-id="{late}"]')).to_be_visible()


async def test_an_orders_page_shows_its_timeline_and_deadlines(
    page: Page, base_url: str, driver: Driver, orders: OrderClient
) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE], province=Province.GUANGDONG)
    await driver.place(order)
    await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
    await until_in_read_model(orders, order.order_id, Stage.DOCUMENT_COLLECTION)

    await page.goto(f"{base_url}/dashboard?token=dev-viewer&stage=document_collection")
    assert page.url.endswith("/dashboard?stage=document_collection")
    await page.click(f'tr[data-order-id="{order.order_id}"] a')
    await page.wait_for_url(f"**/dashboard/orders/{order.order_id}")
    await expect(page.locator("#summary .stage")).to_have_text("document collection")
    timeline = page.locator("#timeline tbody")
    await expect(timeline).to_contain_text("order placed")
    await expect(timeline).to_contain_text("order is valid")
    deadlines = page.locator("#deadlines tbody")
    await expect(deadlines).to_contain_text("next reminder")
    await expect(deadlines).to_contain_text("collection idle")
    await expect(page.locator("#documents")).to_contain_text("id_card_front")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-order.png"), full_page=True)


async def test_the_dashboard_needs_a_token_and_remembers_it_in_a_cookie(page: Page, base_url: str) -> None:
    refused = await page.goto(f"{base_url}/dashboard")
    assert refused is not None and refused.status == 401
    assert (await refused.json())["code"] == "unauthorized"
    bad = await page.goto(f"{base_url}/dashboard?token=wrong")
    assert bad is not None and bad.status == 401

    signed_in = await page.goto(f"{base_url}/dashboard?token=dev-viewer")
    assert signed_in is not None and signed_in.status == 200
    cookie = next(c for c in await page.context.cookies() if c["name"] == "icpflow_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    again = await page.goto(f"{base_url}/dashboard")
    assert again is not None and again.status == 200
    await expect(page.locator("header .who")).to_contain_text("dev-viewer (viewer)")
