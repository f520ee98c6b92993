"""The codec server the Temporal Web UI calls to show encrypted payloads (starter/api/codec.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from starter.api import create_app
from starter.client import OrderClient
from tests.conftest import Stack
from tests.starter.test_api import BASE, SUPPORT, VIEWER, dev_settings


@pytest.fixture(scope="module")
def app(stack: Stack, orders: OrderClient) -> FastAPI:
    return create_app(dev_settings(stack), order_client=orders, sessions=orders.read_model)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=30) as client:
        yield client


def plain(value: object) -> dict[str, object]:
    return {
        "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
        "data": base64.b64encode(json.dumps(value).encode()).decode(),
    }


async def test_encode_then_decode_round_trips_and_encoded_payloads_hide_the_data(http: httpx.AsyncClient) -> None:
    secret = {"mobile": "13800138000", "id_number": "11010519491231002X"}
    encoded = await http.post("/codec/encode", json={"payloads": [plain(secret)]}, headers=SUPPORT)
    assert encoded.status_code == 200, encoded.text
    [sealed] = encoded.json()["payloads"]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == b"binary/encrypted"
    assert b"13800138000" not in base64.b64decode(sealed["data"])
    decoded = await http.post("/codec/decode", json=encoded.json(), headers=SUPPORT)
    assert decoded.status_code == 200
    assert json.loads(base64.b64decode(decoded.json()["payloads"][0]["data"])) == secret


@pytest.mark.parametrize("headers, status", [({}, 401), (VIEWER, 403), ({"Authorization": "Bearer nope"}, 401)])
async def test_decoding_needs_a_support_token(http: httpx.AsyncClient, headers: dict[str, str], status: int) -> None:
    response = await http.post("/codec/decode", json={"payloads": []}, headers=headers)
    assert response.status_code == status
    assert set(response.json()) >= {"code", "message"}


async def test_the_web_ui_origin_may_call_it_and_others_may_not(http: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,x-namespace"}
    ui = await http.options("/codec/decode", headers={"Origin": "http://localhost:8233", **preflight})
    assert ui.status_code == 200
    assert ui.headers["access-control-allow-origin"] == "http://localhost:8233"
    other = await http.options("/codec/decode", headers={"Origin": "http://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


async def test_malformed_payloads_are_a_400_json_error(http: httpx.AsyncClient) -> None:
    response = await http.post("/codec/decode", json={"payloads": "not a list"}, headers=SUPPORT)
    assert response.status_code == 400
    assert response.json()["code"] == "bad_payloads"


@pytest.mark.parametrize(
    "body",
    [
        {"payloads": None},
        {"payloads": [{"metadata": None}]},
        {"payloads": [{"metadata": {"encoding": None}, "data": ""}]},
        {"payloads": [{"data": None}]},
    ],
)
async def test_nulls_the_schema_does_not_allow_are_a_400_naming_where(
    http: httpx.AsyncClient, body: dict[str, object]
) -> None:
    """Protobuf's JSON parser would read null as "left out" and answer 200; the documented schema has no nulls."""
    for path in ("/codec/decode", "/codec/encode"):
        response = await http.post(path, json=body, headers=SUPPORT)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "bad_payloads"
        assert "is null" in response.json()["message"]
