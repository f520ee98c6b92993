"""The HTTP API against the real stack: a Temporal dev server, the worker with every real activity, the simulators,
the SQLite read model. Requests go through httpx's ASGI transport to ``create_app`` wired to the session fixtures.

The tests read as the API's contract: what each endpoint answers, every error code, and who may call what.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from models.order import ChangeField, PlaceOrder
from models.stages import Actor, Stage, Status, WaitingOn
from starter.api import create_app
from starter.api.config import DEV_TOKENS, ApiSettings, Role, TokenSpec, hash_token
from starter.api.documents import safe_filename
from starter.api.stats import StatsSnapshot, stage_times
from starter.client import OrderClient
from store import queries
from store.tables import OrderEventRow, OrderRow
from tests.conftest import Stack
from tests.workflows.driver import Driver, colour_photo, new_order

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
BASE = "http://icpflow.test"
ROLES = ("backend", "support", "viewer")
MIB = 1024 * 1024
# The smallest files each accepted type recognises.
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def auth(role: str | None) -> dict[str, str]:
    return {} if role is None else {"Authorization": f"Bearer dev-{role}"}


BACKEND, SUPPORT, VIEWER = auth("backend"), auth("support"), auth("viewer")


def dev_settings(stack: Stack, **overrides: Any) -> ApiSettings:
    """The stack's settings with the development tokens, whatever the environment says, and stats computed for
    every request (the tests read them right after changing orders)."""
    fresh = {"api_tokens": None, "api_stats_max_age_seconds": 0}
    return ApiSettings(**(stack.settings.model_dump() | fresh | overrides))


@pytest.fixture(scope="session")
def app(stack: Stack, orders: OrderClient) -> FastAPI:
    return create_app(dev_settings(stack), order_client=orders, sessions=orders.read_model)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60) as client:
        yield client


@pytest.fixture
async def driver(temporal_env: WorkflowEnvironment, orders: OrderClient, stack: Stack) -> Driver:
    return Driver(temporal_env, orders, stack)


def body(order: PlaceOrder) -> dict[str, Any]:
    return order.model_dump(mode="json")


async def place(http: httpx.AsyncClient, driver: Driver, order: PlaceOrder) -> dict[str, Any]:
    driver.placed[order.order_id] = order
    response = await http.post("/v1/orders", json=body(order), headers=BACKEND)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def until_recorded(orders: OrderClient, order_id: str) -> queries.OrderSummary:
    """The read model row is written by the workflow's first transition, a moment after the start."""
    assert orders.read_model is not None
    for _ in range(300):
        async with orders.read_model() as session:
            row = await queries.get_order(session, order_id)
        if row is not None:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} never reached the read model")


async def until_stage(http: httpx.AsyncClient, order_id: str, stage: Stage) -> dict[str, Any]:
    for _ in range(600):
        response = await http.get(f"/v1/orders/{order_id}", headers=VIEWER)
        if response.status_code == 200 and response.json()["stage"] == stage.value:
            result: dict[str, Any] = response.json()
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} never reached {stage.value}: {response.text}")


async def until_timeline(http: httpx.AsyncClient, order_id: str, reason: str) -> dict[str, Any]:
    """Support notes reach the audit trail when the workflow next passes its main loop."""
    for _ in range(600):
        state: dict[str, Any] = (await http.get(f"/v1/orders/{order_id}", headers=VIEWER)).json()
        if any(t["reason"] == reason for t in state["timeline"]):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{reason!r} never reached the timeline of {order_id}")


def upload_form(key: str, data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg") -> Any:
    return {"data": {"key": key}, "files": {"file": (filename, data, content_type)}}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert error["message"]
    return error


def field_errors(response: httpx.Response) -> dict[str, dict[str, Any]]:
    error = assert_error(response, 422, "invalid_request")
    return {e["field"]: e for e in error["details"]["errors"]}


async def add_rows(orders: OrderClient, *rows: OrderRow | OrderEventRow) -> None:
    assert orders.read_model is not None
    async with orders.read_model() as session, session.begin():
        session.add_all(rows)


# ================================================================================================ placing orders


async def test_placing_an_order_answers_201_with_its_live_state(http: httpx.AsyncClient, driver: Driver) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    driver.placed[order.order_id] = order
    response = await http.post("/v1/orders", json=body(order), headers=BACKEND)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/orders/{order.order_id}"
    placed = response.json()
    assert placed["order_id"] == order.order_id
    assert placed["filing_number"] == order.filing_number
    assert placed["source"] == "workflow"
    assert (placed["stage"], placed["status"]) == (Stage.VALIDATION.value, Status.ACTIVE.value)
    # The answer is the state the workflow starts from: the live order agrees on when it was placed.
    live = await driver.state(order.order_id)
    assert datetime.fromisoformat(placed["placed_at"]) == live.placed_at
    assert placed["workflow_id"] == live.workflow_id


async def test_placing_answers_without_waiting_for_a_worker(
    temporal_env: WorkflowEnvironment, stack: Stack, orders: OrderClient
) -> None:
    """A busy or absent worker does not hold up placement: the server has stored the start, which is the answer.
    Here no worker polls the order's task queue at all."""
    idle = OrderClient(
        temporal_env.client, task_queue=f"icp-no-worker-{uuid.uuid4().hex[:8]}", read_model=orders.read_model
    )
    app = create_app(dev_settings(stack), order_client=idle, sessions=orders.read_model)
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60) as client:
        response = await asyncio.wait_for(client.post("/v1/orders", json=body(order), headers=BACKEND), 30)
    assert response.status_code == 201, response.text
    assert response.json()["stage"] == Stage.VALIDATION.value
    # Findable at once, before any worker records it and whatever the server's visibility lists yet.
    assert orders.read_model is not None
    async with orders.read_model() as session:
        row = await queries.get_order(session, order.order_id)
    assert row is not None and row.workflow_id == response.json()["workflow_id"]
    assert row.stage is Stage.VALIDATION and row.last_seq == 0
    handle = temporal_env.client.get_workflow_handle(response.json()["workflow_id"])
    await handle.terminate("test: nobody will run it")


async def test_placing_the_same_order_again_answers_200_with_the_same_order(
    http: httpx.AsyncClient, driver: Driver, orders: OrderClient
) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    again = await http.post("/v1/orders", json=body(order), headers=BACKEND)
    assert again.status_code == 200, again.text
    assert again.json()["order_id"] == order.order_id
    await until_recorded(orders, order.order_id)
    once_recorded = await http.post("/v1/orders", json=body(order), headers=BACKEND)
    assert once_recorded.status_code == 200
    assert once_recorded.json()["order_id"] == order.order_id


async def _workflow_runs(orders: OrderClient, order: PlaceOrder) -> int:
    # Visibility follows the start by a moment: wait for the first run to show, then count.
    query = f"IcpOrderId = '{order.order_id}'"
    for _ in range(100):
        if [w async for w in orders.client.list_workflows(query)]:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return len([w async for w in orders.client.list_workflows(query)])


async def test_concurrent_duplicate_placements_start_exactly_one_workflow(
    http: httpx.AsyncClient, orders: OrderClient
) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    answers = await asyncio.gather(*(http.post("/v1/orders", json=body(order), headers=BACKEND) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201], [a.text for a in answers]
    assert {a.json()["order_id"] for a in answers} == {order.order_id}
    assert {a.json()["workflow_id"] for a in answers} == {answers[0].json()["workflow_id"]}
    assert await _workflow_runs(orders, order) == 1


async def test_concurrent_duplicate_placements_through_separate_api_processes_start_one_workflow(
    stack: Stack, orders: OrderClient
) -> None:
    """Two app instances share nothing in memory: Temporal's one workflow id per filing makes one start win."""
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    apps = [create_app(dev_settings(stack), order_client=orders, sessions=orders.read_model) for _ in range(3)]
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url=BASE, timeout=60) for a in apps]
    try:
        answers = await asyncio.gather(
            *(c.post("/v1/orders", json=body(order), headers=BACKEND) for c in clients for _ in range(2))
        )
    finally:
        for c in clients:
            await c.aclose()
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    assert {a.json()["order_id"] for a in answers} == {order.order_id}
    assert await _workflow_runs(orders, order) == 1


async def test_second_in_progress_order_of_the_same_filing_is_refused_409_naming_the_first_r_lock_1(
    http: httpx.AsyncClient, driver: Driver
) -> None:
    first = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, first)
    second = new_order([ChangeField.SERVICE_LANGUAGE], record=first.record)
    assert second.order_id != first.order_id
    response = await http.post("/v1/orders", json=body(second), headers=BACKEND)
    error = assert_error(response, 409, "order_in_progress")
    assert error["details"] == {"existing_order_id": first.order_id}
    assert "R-LOCK-1" in error["message"]


async def test_an_order_id_already_used_for_another_filing_is_refused_409(
    http: httpx.AsyncClient, driver: Driver, orders: OrderClient
) -> None:
    first = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, first)
    await until_recorded(orders, first.order_id)
    other = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE], order_id=first.order_id)
    assert other.filing_number != first.filing_number
    error = assert_error(await http.post("/v1/orders", json=body(other), headers=BACKEND), 409, "order_id_taken")
    assert error["details"]["existing_order_id"] == first.order_id


async def test_malformed_identifiers_are_refused_422_each_with_field_rule_and_fix_r_fmt_1(
    http: httpx.AsyncClient,
) -> None:
    order = body(new_order([ChangeField.SERVICE_PERSON_IN_CHARGE]))
    order["record"]["services"][0]["person_in_charge"]["mobile"] = "12345"
    order["record"]["services"][0]["domains"][0] = "www.example.com"
    order["record"]["entity"]["person_in_charge"]["email"] = "not-an-email"
    order["record"]["entity"]["id_number"] = "91350100M000100Y4"  # 17 characters
    order["changes"][0]["new_person"]["id_number"] = "110105198808080351"  # wrong check digit
    response = await http.post("/v1/orders", json=order, headers=BACKEND)
    errors = field_errors(response)
    assert set(errors) == {
        "record.services[0].person_in_charge.mobile",
        "record.services[0].domains[0]",
        "record.entity.person_in_charge.email",
        "record.entity.id_number",
        "changes[0].new_person.id_number",
    }
    for error in errors.values():
        assert error["rule_id"] == "R-FMT-1"
        assert error["message"] and error["fix"]
    assert errors["record.services[0].domains[0]"]["loc"] == ["body", "record", "services", 0, "domains", 0]
    # Refused before anything started.
    assert_error(await http.get(f"/v1/orders/{order['order_id']}", headers=VIEWER), 404, "order_not_found")


async def test_shape_and_identifier_errors_are_listed_together_in_one_422(http: httpx.AsyncClient) -> None:
    order = body(new_order([ChangeField.SERVICE_PERSON_IN_CHARGE]))
    del order["kind"]
    order["colour"] = "blue"
    order["filing_number"] = "京ICP备123号"
    order["record"]["entity"]["person_in_charge"]["mobile"] = "+1 555 0100"
    order["changes"] = []
    errors = field_errors(await http.post("/v1/orders", json=order, headers=BACKEND))
    assert {"kind", "colour", "changes", "filing_number", "record.entity.person_in_charge.mobile"} <= set(errors)
    assert errors["kind"]["loc"] == ["body", "kind"]
    assert errors["kind"]["fix"] == "add this field"
    assert errors["colour"]["fix"].startswith("remove this field")
    assert errors["filing_number"]["rule_id"] == "R-FMT-1"
    assert "ICP备" in errors["filing_number"]["fix"]
    assert all(e["rule_id"] == "R-FMT-1" for e in errors.values())


async def test_a_credit_code_failing_only_its_check_character_is_not_refused_at_the_door(
    http: httpx.AsyncClient, driver: Driver
) -> None:
    """Some real codes fail GB 32100's check character (DOMAIN.md): a warning for the workflow, not a 422."""
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    entity = order.record.entity.model_copy(update={"id_number": "91350100M000100Y44"})
    order = order.model_copy(update={"record": order.record.model_copy(update={"entity": entity})})
    await place(http, driver, order)


async def test_a_body_that_is_not_json_is_422(http: httpx.AsyncClient) -> None:
    headers = BACKEND | {"content-type": "application/json"}
    response = await http.post("/v1/orders", content=b"{not json", headers=headers)
    assert field_errors(response)


# ================================================================================================ reading orders


async def test_get_order_answers_the_live_state_from_the_workflow(http: httpx.AsyncClient, driver: Driver) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    state = await until_stage(http, order.order_id, Stage.DOCUMENT_COLLECTION)
    assert state["source"] == "workflow"
    assert state["waiting_on"] == WaitingOn.APPLICANT.value
    assert {d["kind"] for d in state["documents"]} >= {"id_card_front", "id_card_back"}
    assert any(p["code"] == "upload_document" for p in state["pending_actions"])
    assert [t["stage"] for t in state["timeline"]][:2] == ["validation", "document_collection"]


async def test_get_unknown_order_is_404(http: httpx.AsyncClient) -> None:
    error = assert_error(await http.get("/v1/orders/no-such-order", headers=VIEWER), 404, "order_not_found")
    assert "no-such-order" in error["message"]


async def test_get_order_with_a_malformed_id_is_422(http: httpx.AsyncClient) -> None:
    errors = field_errors(await http.get("/v1/orders/-bad'id", headers=VIEWER))
    assert errors["order_id"]["loc"] == ["path", "order_id"]


async def test_an_order_temporal_no_longer_has_is_served_from_the_read_model(
    http: httpx.AsyncClient, orders: OrderClient
) -> None:
    order_id = f"closed-{uuid.uuid4().hex[:8]}"
    at = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    events = [
        (Stage.VALIDATION, Status.ACTIVE, Actor.BACKEND, "order placed"),
        (Stage.DOCUMENT_COLLECTION, Status.ACTIVE, Actor.SYSTEM, "order is valid"),
        (Stage.ABANDONED, Status.ABANDONED, Actor.SUPPORT, "customer withdrew"),
    ]
    await add_rows(
        orders,
        OrderRow(
            order_id=order_id,
            workflow_id=f"icp-filing-gone-{order_id}",
            kind="website",
            province="beijing",
            filing_number="京ICP备99999999号-1",
            entity_filing_number="京ICP备99999999号",
            stage=Stage.ABANDONED.value,
            status=Status.ABANDONED.value,
            waiting_on=WaitingOn.NOBODY.value,
            overdue=False,
            placed_at=at,
            updated_at=at + timedelta(days=2),
            last_seq=3,
        ),
        *(
            OrderEventRow(
                order_id=order_id,
                seq=i,
                at=at + timedelta(days=i - 1),
                stage=stage.value,
                status=status.value,
                actor=actor.value,
                actor_name="support-wang" if actor is Actor.SUPPORT else "",
                reason=reason,
            )
            for i, (stage, status, actor, reason) in enumerate(events, start=1)
        ),
    )
    response = await http.get(f"/v1/orders/{order_id}", headers=VIEWER)
    assert response.status_code == 200, response.text
    state = response.json()
    assert state["source"] == "read_model"
    assert state["stage"] == "abandoned" and state["status"] == "abandoned"
    assert [t["stage"] for t in state["timeline"]] == ["validation", "document_collection", "abandoned"]
    assert state["timeline"][-1]["actor_name"] == "support-wang"


async def test_list_orders_filters_and_pages_with_a_cursor(
    http: httpx.AsyncClient, driver: Driver, orders: OrderClient
) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    mine = [new_order([ChangeField.SERVICE_PERSON_IN_CHARGE]) for _ in range(3)]
    for order in mine:
        await place(http, driver, order)
        await until_recorded(orders, order.order_id)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        params: dict[str, Any] = {"placed_from": since, "kind": "website", "province": "beijing", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        response = await http.get("/v1/orders", params=params, headers=VIEWER)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["orders"]) <= 1
        seen += [o["order_id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(o.order_id for o in mine) <= set(seen)
    assert len(seen) == len(set(seen)), "a page repeated an order"
    by_filing = await http.get("/v1/orders", params={"filing_number": mine[1].filing_number}, headers=VIEWER)
    assert [o["order_id"] for o in by_filing.json()["orders"]] == [mine[1].order_id]
    none = await http.get("/v1/orders", params={"placed_from": since, "kind": "app"}, headers=VIEWER)
    assert not {o["order_id"] for o in none.json()["orders"]} & {o.order_id for o in mine}
    stage_filtered = await http.get(
        "/v1/orders", params={"placed_from": since, "stage": "completed", "overdue": "false"}, headers=VIEWER
    )
    assert stage_filtered.status_code == 200
    assert not {o["order_id"] for o in stage_filtered.json()["orders"]} & {o.order_id for o in mine}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"stage": "nowhere"}, "stage"),
        ({"province": "atlantis"}, "province"),
        ({"overdue": "maybe"}, "overdue"),
        ({"placed_from": "2026-01-01T00:00:00"}, "placed_from"),  # no time zone
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"filing_number": "ICP12345"}, "filing_number"),
    ],
)
async def test_list_orders_refuses_bad_filters_422_naming_the_parameter(
    http: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    errors = field_errors(await http.get("/v1/orders", params=params, headers=VIEWER))
    assert field in errors, errors
    assert errors[field]["loc"] == ["query", field]
    assert errors[field]["rule_id"] == "R-FMT-1"


# ================================================================================================ actions


async def upload_all(http: httpx.AsyncClient, order_id: str, state: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for doc in state["documents"]:
        if doc["status"] == "missing":
            response = await http.post(
                f"/v1/orders/{order_id}/documents",
                **upload_form(doc["key"], colour_photo(), f"{doc['kind']}.jpg"),
                headers=BACKEND,
            )
            assert response.status_code == 200, response.text
            result = response.json()
    return result


async def test_the_backend_and_support_carry_an_order_to_the_administration_through_the_api(
    http: httpx.AsyncClient, driver: Driver
) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    oid = order.order_id
    await place(http, driver, order)
    state = await until_stage(http, oid, Stage.DOCUMENT_COLLECTION)
    last = await upload_all(http, oid, state)
    assert last["message"] == "all documents received"
    await until_stage(http, oid, Stage.CONFIRMATION)
    confirmed = await http.post(f"/v1/orders/{oid}/confirmation", headers=BACKEND)
    assert confirmed.status_code == 200, confirmed.text
    await until_stage(http, oid, Stage.INITIAL_REVIEW)

    reviewed = await http.post(f"/v1/orders/{oid}/initial-review", json={"approved": True}, headers=SUPPORT)
    assert reviewed.status_code == 200, reviewed.text
    state = await until_stage(http, oid, Stage.SMS_VERIFICATION)
    review = next(t for t in state["timeline"] if t["reason"] == "initial review approved")
    assert (review["actor"], review["actor_name"]) == ("reviewer", "dev-support")

    code = await driver.current_code(oid)
    wrong = "111111" if code != "111111" else "222222"
    miss = await http.post(
        f"/v1/orders/{oid}/sms-verification", json={"event": "code_entered", "code": wrong}, headers=BACKEND
    )
    assert miss.status_code == 200, miss.text
    assert (miss.json()["message"], miss.json()["attempts_left"]) == ("wrong code", 4)
    hit = await http.post(
        f"/v1/orders/{oid}/sms-verification", json={"event": "code_entered", "code": code}, headers=BACKEND
    )
    assert hit.status_code == 200, hit.text
    await until_stage(http, oid, Stage.ADMINISTRATION_REVIEW)

    locked = await http.post(f"/v1/orders/{oid}/abandon", json={"reason": "too late"}, headers=SUPPORT)
    error = assert_error(locked, 409, "action_refused")
    assert "locked" in error["message"]


async def test_a_refused_action_answers_409_with_the_workflow_reason(http: httpx.AsyncClient, driver: Driver) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    await until_stage(http, order.order_id, Stage.DOCUMENT_COLLECTION)
    error = assert_error(
        await http.post(f"/v1/orders/{order.order_id}/confirmation", headers=BACKEND), 409, "action_refused"
    )
    assert error["message"] == "nothing to confirm: the order is at document_collection (active)"
    sms = await http.post(f"/v1/orders/{order.order_id}/sms-verification", json={"event": "verified"}, headers=BACKEND)
    assert "no SMS verification is open" in assert_error(sms, 409, "action_refused")["message"]
    resubmit = await http.post(f"/v1/orders/{order.order_id}/resubmission", headers=BACKEND)
    assert "nothing to resubmit" in assert_error(resubmit, 409, "action_refused")["message"]
    review = await http.post(f"/v1/orders/{order.order_id}/initial-review", json={"approved": True}, headers=SUPPORT)
    assert "no initial review is pending" in assert_error(review, 409, "action_refused")["message"]


async def test_resume_of_an_order_that_is_not_paused_is_refused_409(http: httpx.AsyncClient, driver: Driver) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    await until_stage(http, order.order_id, Stage.DOCUMENT_COLLECTION)
    response = await http.post(f"/v1/orders/{order.order_id}/resume", json={"reason": "why not"}, headers=SUPPORT)
    assert "only a paused order can be resumed" in assert_error(response, 409, "action_refused")["message"]


async def test_a_rejection_without_reasons_is_refused_409(http: httpx.AsyncClient, driver: Driver) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    await driver.through_collection(order.order_id)
    response = await http.post(
        f"/v1/orders/{order.order_id}/initial-review", json={"approved": False, "reasons": [" "]}, headers=SUPPORT
    )
    assert assert_error(response, 409, "action_refused")["message"] == (
        "a rejection needs at least one reason for the applicant"
    )
    rejected = await http.post(
        f"/v1/orders/{order.order_id}/initial-review",
        json={"approved": False, "reasons": ["the ID card photo is blurred"]},
        headers=SUPPORT,
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["stage"] == Stage.CORRECTION.value


async def test_abandon_and_extend_are_recorded_with_the_support_token_name(
    http: httpx.AsyncClient, driver: Driver
) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    oid = order.order_id
    await place(http, driver, order)
    await until_stage(http, oid, Stage.DOCUMENT_COLLECTION)
    extended = await http.post(f"/v1/orders/{oid}/extend", json={"days": 7, "reason": "ID card lost"}, headers=SUPPORT)
    assert extended.status_code == 200, extended.text
    assert extended.json()["message"] == "applicant has 7 more day(s)"
    await until_timeline(http, oid, "extended by 7 day(s): ID card lost")
    abandoned = await http.post(f"/v1/orders/{oid}/abandon", json={"reason": "customer withdrew"}, headers=SUPPORT)
    assert abandoned.status_code == 200, abandoned.text
    assert abandoned.json()["stage"] == Stage.ABANDONED.value
    state = (await http.get(f"/v1/orders/{oid}", headers=VIEWER)).json()
    support_rows = [(t["reason"], t["actor_name"]) for t in state["timeline"] if t["actor"] == "support"]
    assert ("extended by 7 day(s): ID card lost", "dev-support") in support_rows
    assert ("customer withdrew", "dev-support") in support_rows
    # The order has ended: every further action is refused, and it is still readable.
    again = await http.post(f"/v1/orders/{oid}/abandon", json={"reason": "twice"}, headers=SUPPORT)
    assert "ended" in assert_error(again, 409, "action_refused")["message"]


async def test_an_action_the_order_does_not_answer_in_time_is_504(
    temporal_env: WorkflowEnvironment, stack: Stack, orders: OrderClient, http: httpx.AsyncClient, driver: Driver
) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    hurried = OrderClient(
        temporal_env.client, task_queue=orders.task_queue, read_model=orders.read_model, action_timeout=0.001
    )
    impatient = create_app(dev_settings(stack), order_client=hurried, sessions=orders.read_model)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=impatient), base_url=BASE) as client:
        response = await client.post(f"/v1/orders/{order.order_id}/resume", json={"reason": "x"}, headers=SUPPORT)
    error = assert_error(response, 504, "action_timeout")
    assert "read the order before trying again" in error["message"]


async def test_an_update_no_worker_answers_in_time_is_504_not_500(
    temporal_env: WorkflowEnvironment, stack: Stack, orders: OrderClient
) -> None:
    """The action reached the workflow service and waits there for a worker (none polls this order's queue): when
    the facade's limit passes, the client library turns the cancelled wait into an error of its own, which is still
    the order not answering in time (504), not an unexpected failure (500)."""
    idle = OrderClient(
        temporal_env.client,
        task_queue=f"icp-no-worker-{uuid.uuid4().hex[:8]}",
        read_model=orders.read_model,
        action_timeout=2,
    )
    app = create_app(dev_settings(stack), order_client=idle, sessions=orders.read_model)
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60) as client:
        placed = await client.post("/v1/orders", json=body(order), headers=BACKEND)
        assert placed.status_code == 201, placed.text
        response = await client.post(
            f"/v1/orders/{order.order_id}/abandon", json={"reason": "customer withdrew"}, headers=SUPPORT
        )
    error = assert_error(response, 504, "action_timeout")
    assert "read the order before trying again" in error["message"]
    handle = temporal_env.client.get_workflow_handle(placed.json()["workflow_id"])
    await handle.terminate("test: nobody will run it")


async def test_action_bodies_take_no_actor_it_is_the_tokens_name(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/orders/any-order/abandon", json={"reason": "x", "actor": "someone-else"}, headers=SUPPORT
    )
    errors = field_errors(response)
    assert errors["actor"]["loc"] == ["body", "actor"]
    assert errors["actor"]["fix"].startswith("remove this field")


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("sms-verification", {"event": "code_entered", "code": "12345"}, "code"),
        ("sms-verification", {"event": "shouted"}, "event"),
        ("extend", {"days": 0, "reason": "x"}, "days"),
        ("extend", {"days": 3}, "reason"),
        ("abandon", {"reason": ""}, "reason"),
        ("initial-review", {"reasons": []}, "approved"),
    ],
)
async def test_action_bodies_are_validated_422(
    http: httpx.AsyncClient, path: str, payload: dict[str, Any], field: str
) -> None:
    role = BACKEND if path == "sms-verification" else SUPPORT
    errors = field_errors(await http.post(f"/v1/orders/any-order/{path}", json=payload, headers=role))
    assert field in errors


@pytest.mark.parametrize(
    ("path", "payload", "role"),
    [
        ("confirmation", None, BACKEND),
        ("sms-verification", {"event": "verified"}, BACKEND),
        ("resubmission", {"note": "fixed"}, BACKEND),
        ("initial-review", {"approved": True}, SUPPORT),
        ("abandon", {"reason": "x"}, SUPPORT),
        ("resume", {"reason": "x"}, SUPPORT),
        ("extend", {"days": 1, "reason": "x"}, SUPPORT),
    ],
)
async def test_actions_on_an_unknown_order_are_404(
    http: httpx.AsyncClient, path: str, payload: dict[str, Any] | None, role: dict[str, str]
) -> None:
    response = await http.post(f"/v1/orders/no-such-order/{path}", json=payload, headers=role)
    assert_error(response, 404, "order_not_found")


# ================================================================================================ uploads


async def collecting(http: httpx.AsyncClient, driver: Driver) -> tuple[str, str]:
    """A new order waiting for documents, and the key of one it needs."""
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    state = await until_stage(http, order.order_id, Stage.DOCUMENT_COLLECTION)
    key = next(d["key"] for d in state["documents"] if d["kind"] == "id_card_front")
    return order.order_id, key


async def test_uploaded_file_names_are_reduced_to_a_safe_base_name(http: httpx.AsyncClient, driver: Driver) -> None:
    oid, key = await collecting(http, driver)
    response = await http.post(
        f"/v1/orders/{oid}/documents", **upload_form(key, colour_photo(), "..\\../etc/passwd.jpg"), headers=BACKEND
    )
    assert response.status_code == 200, response.text
    state = (await http.get(f"/v1/orders/{oid}", headers=VIEWER)).json()
    doc = next(d for d in state["documents"] if d["key"] == key)
    assert doc["status"] == "uploaded"
    assert doc["ref"]["filename"] == "passwd.jpg"
    assert doc["ref"]["content_type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        ("photo.jpg", "image/jpeg", "photo.jpg"),
        ("C:\\Users\\li\\身份证.png", "image/png", "身份证.png"),
        ("../../etc/passwd", "application/pdf", "passwd"),
        ("..", "image/jpeg", "document.jpg"),
        ("", "application/pdf", "document.pdf"),
        (None, "image/png", "document.png"),
        (".hidden.pdf", "application/pdf", "hidden.pdf"),
        ("a\x00b\x1fc\u200b.jpg", "image/jpeg", "abc.jpg"),
        ("长" * 200 + ".pdf", "application/pdf", "长" * 83 + ".pdf"),
    ],
)
def test_safe_filename(raw: str | None, content_type: str, expected: str) -> None:
    assert safe_filename(raw, content_type) == expected
    assert len(safe_filename(raw, content_type).encode()) <= 255


async def test_a_document_over_the_size_limit_is_413(http: httpx.AsyncClient, driver: Driver) -> None:
    oid, key = await collecting(http, driver)
    big = b"\xff\xd8\xff\xe0" + b"\0" * (5 * MIB - 3)
    error = assert_error(
        await http.post(f"/v1/orders/{oid}/documents", **upload_form(key, big), headers=BACKEND),
        413,
        "document_too_large",
    )
    assert error["details"] == {"max_bytes": 5 * MIB}
    just_fits = b"\xff\xd8\xff\xe0" + b"\0" * (5 * MIB - 4)
    fits = await http.post(f"/v1/orders/{oid}/documents", **upload_form(key, just_fits), headers=BACKEND)
    assert fits.status_code == 200, fits.text


async def test_a_body_far_over_the_limit_is_refused_before_it_is_read(http: httpx.AsyncClient) -> None:
    huge = b"\xff\xd8\xff\xe0" + b"\0" * (6 * MIB)
    declared = await http.post(
        "/v1/orders/any-order/documents", **upload_form("id_card_front:x", huge), headers=BACKEND
    )
    assert_error(declared, 413, "document_too_large")

    # Chunked, with no Content-Length: refused once the bytes received pass the limit.
    boundary = "icpflowboundary"
    payload = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\nid_card_front:x\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + huge
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 256 * 1024):
            yield payload[i : i + 256 * 1024]

    streamed = await http.post(
        "/v1/orders/any-order/documents",
        content=chunks(),
        headers=BACKEND | {"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(streamed, 413, "document_too_large")


@pytest.mark.parametrize(
    ("data", "content_type", "accepted"),
    [
        (b"hello", "text/plain", False),
        (b"GIF89a....", "image/gif", False),
        (b"\xff\xd8\xff\xe0jpeg", "image/png", False),  # declared PNG, is a JPEG
        (b"MZ\x90\x00", "application/pdf", False),  # declared PDF, is not
        (PDF, "application/pdf", True),
        (PNG, "image/png", True),
    ],
)
async def test_document_types_other_than_jpeg_png_pdf_are_415(
    http: httpx.AsyncClient, data: bytes, content_type: str, accepted: bool
) -> None:
    response = await http.post(
        "/v1/orders/no-such-order/documents", **upload_form("k", data, "f", content_type), headers=BACKEND
    )
    if accepted:
        assert_error(response, 404, "order_not_found")  # past the type check, then the order is unknown
    else:
        error = assert_error(response, 415, "unsupported_document_type")
        assert error["details"]["accepted"] == ["image/jpeg", "image/png", "application/pdf"]


async def test_an_upload_for_a_document_the_order_does_not_need_is_refused_409(
    http: httpx.AsyncClient, driver: Driver
) -> None:
    oid, _ = await collecting(http, driver)
    response = await http.post(
        f"/v1/orders/{oid}/documents", **upload_form("business_licence:entity", colour_photo()), headers=BACKEND
    )
    assert "is not a document this order needs" in assert_error(response, 409, "action_refused")["message"]


async def test_an_upload_without_its_fields_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/orders/any-order/documents", data={"nothing": "here"}, headers=BACKEND)
    errors = field_errors(response)
    assert {"key", "file"} <= set(errors)


# ================================================================================================ who may do what

NO_ORDER = "no-such-order"
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 16

# (method, path, request keyword arguments, roles allowed, status an allowed caller gets)
ENDPOINTS: list[tuple[str, str, dict[str, Any], set[str | None], int]] = [
    ("POST", "/v1/orders", {"json": "bad-order"}, {"backend"}, 422),
    ("GET", "/v1/orders", {}, {"backend", "support", "viewer"}, 200),
    ("GET", f"/v1/orders/{NO_ORDER}", {}, {"backend", "support", "viewer"}, 404),
    ("GET", "/v1/stats", {}, {"backend", "support", "viewer"}, 200),
    ("POST", f"/v1/orders/{NO_ORDER}/documents", upload_form("k", JPEG), {"backend"}, 404),
    ("POST", f"/v1/orders/{NO_ORDER}/confirmation", {}, {"backend"}, 404),
    ("POST", f"/v1/orders/{NO_ORDER}/sms-verification", {"json": {"event": "verified"}}, {"backend"}, 404),
    ("POST", f"/v1/orders/{NO_ORDER}/resubmission", {}, {"backend"}, 404),
    ("POST", f"/v1/orders/{NO_ORDER}/initial-review", {"json": {"approved": True}}, {"support"}, 404),
    ("POST", f"/v1/orders/{NO_ORDER}/abandon", {"json": {"reason": "x"}}, {"support"}, 404),
    ("POST", f"/v1/orders/{NO_ORDER}/resume", {"json": {"reason": "x"}}, {"support"}, 404),
    ("POST", f"/v1/orders/{NO_ORDER}/extend", {"json": {"days": 1, "reason": "x"}}, {"support"}, 404),
    ("GET", "/dashboard", {}, {"backend", "support", "viewer"}, 200),
    ("GET", f"/dashboard/orders/{NO_ORDER}", {}, {"backend", "support", "viewer"}, 404),
    ("GET", "/healthz", {}, {"backend", "support", "viewer", None}, 200),
    ("GET", "/metrics", {}, {"backend", "support", "viewer", None}, 200),
]


def _bad_order() -> dict[str, Any]:
    # Well-shaped, with a malformed mobile: an allowed caller gets 422 and no order starts.
    order = body(new_order([ChangeField.SERVICE_PERSON_IN_CHARGE]))
    order["record"]["entity"]["person_in_charge"]["mobile"] = "123"
    return order


@pytest.mark.parametrize("role", [*ROLES, None, "bad-token"], ids=[*ROLES, "no-token", "bad-token"])
@pytest.mark.parametrize(
    ("method", "path", "kwargs", "allowed", "status"), ENDPOINTS, ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS]
)
async def test_role_matrix(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    allowed: set[str | None],
    status: int,
    role: str | None,
) -> None:
    if kwargs.get("json") == "bad-order":
        kwargs = {"json": _bad_order()}
    headers = {"Authorization": "Bearer not-a-token"} if role == "bad-token" else auth(role)
    response = await http.request(method, path, headers=headers, **kwargs)
    if role in allowed or (None in allowed and role == "bad-token"):
        assert response.status_code == status, response.text
    elif role is None or role == "bad-token":
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    else:
        error = assert_error(response, 403, "forbidden")
        assert error["details"]["role"] == role


async def test_configured_tokens_are_matched_by_their_hash_and_name_the_actor(
    stack: Stack, orders: OrderClient, driver: Driver
) -> None:
    settings = dev_settings(
        stack,
        api_tokens={
            "ops-li": TokenSpec(role=Role.SUPPORT, sha256=hash_token("s3cret-support")),
            "crm": TokenSpec(role=Role.BACKEND, sha256=hash_token("s3cret-backend")),
        },
    )
    app = create_app(settings, order_client=orders, sessions=orders.read_model)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert_error(await client.get("/v1/stats", headers=SUPPORT), 401, "unauthorized")  # dev tokens are off
        order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
        driver.placed[order.order_id] = order
        placed = await client.post("/v1/orders", json=body(order), headers={"Authorization": "Bearer s3cret-backend"})
        assert placed.status_code == 201, placed.text
        await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
        abandoned = await client.post(
            f"/v1/orders/{order.order_id}/abandon",
            json={"reason": "duplicate"},
            headers={"Authorization": "bearer s3cret-support"},
        )
        assert abandoned.status_code == 200, abandoned.text
    state = await driver.state(order.order_id)
    assert state.timeline[-1].actor_name == "ops-li"


def test_tokens_are_configured_as_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = {"support-wang": {"role": "support", "sha256": hash_token("t")}}
    monkeypatch.setenv("ICPFLOW_API_TOKENS", json.dumps(tokens))
    settings = ApiSettings()
    assert not settings.uses_dev_tokens
    assert settings.tokens() == {"support-wang": TokenSpec(role=Role.SUPPORT, sha256=hash_token("t"))}
    monkeypatch.setenv("ICPFLOW_API_TOKENS", json.dumps({"bad name!": tokens["support-wang"]}))
    with pytest.raises(ValueError, match="token name"):
        ApiSettings()
    monkeypatch.delenv("ICPFLOW_API_TOKENS")
    assert ApiSettings().tokens() == DEV_TOKENS


# ============================================================================================ stats, health, metrics


async def test_stats_count_orders_and_report_median_days_in_stage(
    http: httpx.AsyncClient, driver: Driver, orders: OrderClient
) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    await until_stage(http, order.order_id, Stage.DOCUMENT_COLLECTION)
    # Stats read the read model, which the transition's activity writes a moment after the workflow moved on.
    for _ in range(300):
        if (await until_recorded(orders, order.order_id)).stage is Stage.DOCUMENT_COLLECTION:
            break
        await asyncio.sleep(0.05)
    response = await http.get("/v1/stats", headers=VIEWER)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["total"] >= 1 and stats["open"] >= 1
    assert stats["by_stage"]["document_collection"] >= 1
    assert stats["by_kind"]["website"] >= 1
    assert stats["median_days_in_stage"]["validation"] >= 0
    assert stats["orders_measured_in_stage"]["validation"] >= 1


async def test_median_days_in_stage_come_from_the_audit_trail(db_sessions: Sessions) -> None:
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    h, d = timedelta(hours=1), timedelta(days=1)
    trails = {
        # validation 1 h; collection 1 d, then again 1 d after a returned document; verification 1 h
        "o1": [
            (0 * h, Stage.VALIDATION),
            (1 * h, Stage.DOCUMENT_COLLECTION),
            (d + h, Stage.AUTHENTICITY_VERIFICATION),
            (d + 2 * h, Stage.DOCUMENT_COLLECTION),
            (2 * d + 2 * h, Stage.CONFIRMATION),
        ],
        # validation 2 h; collection 3 d with a support note in between
        "o2": [
            (0 * h, Stage.VALIDATION),
            (2 * h, Stage.DOCUMENT_COLLECTION),
            (d, Stage.DOCUMENT_COLLECTION),
            (3 * d + 2 * h, Stage.AUTHENTICITY_VERIFICATION),
        ],
        # validation 3 h; still collecting: not measured there yet
        "o3": [(0 * h, Stage.VALIDATION), (3 * h, Stage.DOCUMENT_COLLECTION)],
    }
    async with db_sessions() as session, session.begin():
        session.add_all(
            OrderEventRow(
                order_id=order_id,
                seq=i,
                at=t0 + offset,
                stage=stage.value,
                status="active",
                actor="system",
                actor_name="",
                reason="",
            )
            for order_id, trail in trails.items()
            for i, (offset, stage) in enumerate(trail, start=1)
        )
    async with db_sessions() as session:
        times = await stage_times(session)
    assert times.median_days_in_stage == {
        Stage.VALIDATION: round(2 / 24, 3),
        Stage.DOCUMENT_COLLECTION: 2.5,  # o1: 1 d + 1 d, o2: 3 d
        Stage.AUTHENTICITY_VERIFICATION: round(1 / 24, 3),  # o1 only: o2 is still there
    }
    assert times.orders_measured_in_stage == {
        Stage.VALIDATION: 3,
        Stage.DOCUMENT_COLLECTION: 2,
        Stage.AUTHENTICITY_VERIFICATION: 1,
    }


async def test_stats_snapshot_is_reused_within_its_max_age_and_refreshed_in_the_background_after(
    db_sessions: Sessions,
) -> None:
    t0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

    async def add_order(n: int) -> None:
        async with db_sessions() as session, session.begin():
            session.add(
                OrderRow(
                    order_id=f"snap-{n}",
                    workflow_id=f"icp-snap-{n}",
                    kind="website",
                    province="beijing",
                    filing_number=f"京ICP备{10000000 + n}号-1",
                    entity_filing_number=f"京ICP备{10000000 + n}号",
                    stage=Stage.DOCUMENT_COLLECTION.value,
                    status=Status.ACTIVE.value,
                    waiting_on=WaitingOn.APPLICANT.value,
                    overdue=False,
                    placed_at=t0,
                    updated_at=t0,
                    last_seq=1,
                )
            )

    await add_order(1)
    snapshot = StatsSnapshot(max_age=3600)
    first = await snapshot.get(db_sessions)
    await add_order(2)
    assert (await snapshot.get(db_sessions)) is first  # within its max age: the same snapshot, no query
    assert first.total == 1 and first.as_of is not None

    snapshot.max_age = 1e-9  # now stale: answered at once, refreshed behind the answer
    assert (await snapshot.get(db_sessions)) is first
    for _ in range(100):
        await asyncio.sleep(0.05)
        snapshot.max_age = 3600
        if (latest := await snapshot.get(db_sessions)) is not first:
            break
    assert latest.total == 2 and latest.as_of is not None and latest.as_of >= first.as_of
    await snapshot.close()

    fresh = StatsSnapshot(max_age=0)  # 0: computed for every call
    assert (await fresh.get(db_sessions)) is not (await fresh.get(db_sessions))


async def test_healthz_reports_temporal_and_the_database_reachable(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"temporal": {"ok": True, "detail": ""}, "database": {"ok": True, "detail": ""}},
    }


async def test_healthz_is_503_when_temporal_or_the_database_is_unreachable(stack: Stack) -> None:
    dead_temporal = await Client.connect("127.0.0.1:1", data_converter=pydantic_data_converter, lazy=True)
    engine = create_async_engine(
        "postgresql+asyncpg://nobody@127.0.0.1:1/none", poolclass=NullPool, connect_args={"timeout": 2}
    )
    app = create_app(
        dev_settings(stack),
        order_client=OrderClient(dead_temporal),
        sessions=async_sessionmaker(engine),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        response = await client.get("/healthz")
    await engine.dispose()
    error = assert_error(response, 503, "unavailable")
    checks = error["details"]["checks"]
    assert checks["temporal"]["ok"] is False and checks["temporal"]["detail"]
    assert checks["database"]["ok"] is False and checks["database"]["detail"]


async def test_metrics_count_requests_by_route_and_orders_by_stage(http: httpx.AsyncClient, driver: Driver) -> None:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    await place(http, driver, order)
    await until_stage(http, order.order_id, Stage.DOCUMENT_COLLECTION)
    await http.get("/v1/orders/no-such-order", headers=VIEWER)
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'icpflow_api_requests_total{method="GET",route="/v1/orders/{order_id}",status="404"}' in text
    assert 'icpflow_api_requests_total{method="POST",route="/v1/orders",status="201"}' in text
    assert 'icpflow_api_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/orders/{order_id}"}' in text
    assert "no-such-order" not in text  # route templates, never raw paths
    stage_line = next(
        line for line in text.splitlines() if line.startswith('icpflow_orders{stage="document_collection"}')
    )
    assert float(stage_line.split()[-1]) >= 1
    assert "icpflow_orders_open " in text and "icpflow_orders_overdue " in text


async def test_every_error_is_json_even_for_unknown_routes_and_methods(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/v2/nothing"), 404, "not_found")
    assert_error(await http.delete("/v1/orders", headers=BACKEND), 405, "method_not_allowed")


@pytest.mark.parametrize("params", [{"stage": "nowhere"}, {"province": "atlantis"}, {"overdue": "maybe"}])
async def test_the_dashboard_refuses_unknown_filters_422(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    (name,) = params
    errors = field_errors(await http.get("/dashboard", params=params, headers=VIEWER))
    assert errors[name]["loc"] == ["query", name] and errors[name]["fix"].startswith("one of:")


async def test_openapi_documents_every_endpoint(http: httpx.AsyncClient) -> None:
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = (await http.get("/openapi.json")).json()
    for path in (
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/orders/{order_id}/documents",
        "/v1/orders/{order_id}/confirmation",
        "/v1/orders/{order_id}/sms-verification",
        "/v1/orders/{order_id}/initial-review",
        "/v1/orders/{order_id}/abandon",
        "/v1/orders/{order_id}/resume",
        "/v1/orders/{order_id}/extend",
        "/v1/stats",
        "/healthz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert spec["paths"]["/v1/orders"]["post"]["responses"]["409"]["content"]["application/json"]["schema"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


async def test_the_app_connects_from_settings_alone_in_its_lifespan(
    stack: Stack, temporal_env: WorkflowEnvironment, tmp_path: Any
) -> None:
    target = temporal_env.client.service_client.config.target_host
    settings = dev_settings(stack, temporal_address=target, database_url=f"sqlite+aiosqlite:///{tmp_path / 'own.db'}")
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        assert_error(await client.get("/v1/stats", headers=VIEWER), 503, "starting")
        async with app.router.lifespan_context(app):
            health = await client.get("/healthz")
            assert health.status_code == 200, health.text
            stats = await client.get("/v1/stats", headers=VIEWER)
            assert stats.status_code == 200 and stats.json()["total"] == 0  # its own, freshly migrated database
