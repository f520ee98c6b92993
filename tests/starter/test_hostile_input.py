"""Hostile input at the HTTP API, against the real stack: bodies far too large, the wrong content types, files that
are not what they claim, file names that try to leave the document store, Unicode built to deceive, and callers
without the right token.

Each is answered with the JSON error ``{code, message, details}`` (or accepted, when the input is legitimately valid),
and every refusal changes nothing: no workflow started for the filing (the facade cannot find the order and Temporal
has no workflow under the filing's id), the read model and a live order exactly as they were, nothing written to the
document store, nothing written anywhere outside it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.service import RPCError, RPCStatusCode

from models.messages import SupportAction
from models.order import ChangeField, filing_key
from models.stages import Stage
from models.state import Transition
from starter.api import create_app
from starter.api.config import MIB, Role, TokenSpec, hash_token
from starter.client import ActionRefused, OrderClient, OrderNotFound
from store import queries
from tests.conftest import Stack
from tests.starter.test_api import BASE, PDF, assert_error, dev_settings, field_errors
from tests.workflows.driver import colour_photo, new_order
from workflows.inputs import workflow_id_for

pytestmark = pytest.mark.integration

BACKEND = {"Authorization": "Bearer dev-backend"}
SUPPORT = {"Authorization": "Bearer dev-support"}
VIEWER = {"Authorization": "Bearer dev-viewer"}
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56
WINDOWS_EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.fixture(scope="module")
def app(stack: Stack, orders: OrderClient) -> FastAPI:
    return create_app(dev_settings(stack), order_client=orders, sessions=orders.read_model)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60) as client:
        yield client


def order_body() -> dict[str, Any]:
    """A valid order, as JSON: every test spoils a copy of it in one place."""
    return new_order([ChangeField.SERVICE_PERSON_IN_CHARGE]).model_dump(mode="json")


def at(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with ``value`` at the dotted ``path`` (``record.services.0.name``)."""
    spoilt = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = spoilt
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return spoilt


# ============================================================================================ "nothing changed"


async def nothing_started(orders: OrderClient, body: dict[str, Any]) -> None:
    """No order and no workflow for what ``body`` asked for: the facade does not know the order id (read model and
    visibility), the read model has no row, and Temporal has no workflow under the filing's id."""
    order_id = body["order_id"]
    if len(order_id) <= 64:  # a longer one cannot name an order, and would not fit a visibility query
        with pytest.raises(OrderNotFound):
            await orders.handle(order_id)
        assert orders.read_model is not None
        async with orders.read_model() as session:
            assert await queries.get_order(session, order_id) is None
    try:
        workflow_id = workflow_id_for(filing_key(body["filing_number"]))
    except ValueError:
        return  # not a filing number at all: no workflow id can be made from it, so none was started
    with pytest.raises(RPCError) as missing:
        await orders.client.get_workflow_handle(workflow_id).describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND


@dataclass(frozen=True)
class Snapshot:
    """Everything a refusal must leave as it was: the live order, its read-model row and audit trail."""

    state: dict[str, Any]
    row: queries.OrderSummary | None
    timeline: list[Transition]


async def snapshot(orders: OrderClient, order_id: str) -> Snapshot:
    assert orders.read_model is not None
    state = (await orders.state(order_id)).model_dump(mode="json")
    async with orders.read_model() as session:
        row = await queries.get_order(session, order_id)
        timeline = await queries.order_timeline(session, order_id)
    return Snapshot(state=state, row=row, timeline=timeline)


async def quiet(orders: OrderClient, order_id: str) -> Snapshot:
    """The order's snapshot once its read model has caught up with it (an earlier accepted upload is recorded a
    moment after it is answered): the baseline a refusal must leave untouched."""
    previous, unchanged = await snapshot(orders, order_id), 0
    for _ in range(200):
        await asyncio.sleep(0.05)
        current = await snapshot(orders, order_id)
        caught_up = current.row is not None and current.row.last_seq == len(current.state["timeline"])
        unchanged = unchanged + 1 if current == previous and caught_up else 0
        if unchanged == 5:
            return current
        previous = current
    raise AssertionError(f"order {order_id} never came to rest")


def files_under(root: Path) -> dict[Path, tuple[int, int]]:
    """Every file with its size and modification time. The read model's SQLite files are left out: the worker
    writes them whenever an order moves, and no upload goes there."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and ".db" not in path.name:
            stat = path.stat()
            found[path] = (stat.st_size, stat.st_mtime_ns)
    return found


@dataclass(frozen=True)
class Disk:
    """Every file under the session's temporary root (which holds the document store), and /etc/passwd's digest:
    the file a traversal would aim at, were it to work (tests run as root here)."""

    files: dict[Path, tuple[int, int]]
    passwd: str


def disk(stack: Stack) -> Disk:
    passwd = Path("/etc/passwd")
    digest = hashlib.sha256(passwd.read_bytes()).hexdigest() if passwd.exists() else ""
    return Disk(files=files_under(stack.settings.data_dir.parent), passwd=digest)


@dataclass
class Collecting:
    """A live order waiting for documents, the key of one it needs, and the store it uploads to."""

    order_id: str
    key: str
    store: Path


@pytest.fixture(scope="module")
async def collecting(app: FastAPI, orders: OrderClient, stack: Stack) -> AsyncIterator[Collecting]:
    order = new_order([ChangeField.SERVICE_PERSON_IN_CHARGE])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60) as client:
        placed = await client.post("/v1/orders", json=order.model_dump(mode="json"), headers=BACKEND)
        assert placed.status_code == 201, placed.text
    state = await settled(orders, order.order_id)
    key = next(d.key for d in state.documents if d.kind.value == "id_card_front")
    yield Collecting(order_id=order.order_id, key=key, store=stack.settings.document_store_path)
    await abandon_quietly(orders, order.order_id)


async def settled(orders: OrderClient, order_id: str) -> Any:
    """The order once it waits for documents and the read model says so too (so a snapshot is stable)."""
    assert orders.read_model is not None
    for _ in range(600):
        state = await orders.state(order_id)
        async with orders.read_model() as session:
            row = await queries.get_order(session, order_id)
        waiting = state.stage is Stage.DOCUMENT_COLLECTION and state.deadlines  # its clocks are set
        if waiting and row is not None and row.stage is Stage.DOCUMENT_COLLECTION:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} never settled in document collection")


async def abandon_quietly(orders: OrderClient, order_id: str) -> None:
    with contextlib.suppress(ActionRefused):  # ended already
        await orders.abandon(order_id, SupportAction(actor="support-test", reason="hostile input test done"))


# ================================================================================================ oversized bodies


async def test_a_10_mib_order_is_refused_413_before_it_is_read_and_nothing_starts(
    http: httpx.AsyncClient, orders: OrderClient
) -> None:
    body = at(order_body(), "record.entity.address", "x" * (10 * MIB))
    response = await http.post("/v1/orders", json=body, headers=BACKEND)
    error = assert_error(response, 413, "request_too_large")
    assert error["details"] == {"max_bytes": MIB}
    await nothing_started(orders, body)


async def test_a_10_mib_order_sent_without_content_length_is_refused_413_and_nothing_starts(
    http: httpx.AsyncClient, orders: OrderClient
) -> None:
    body = at(order_body(), "record.entity.address", "x" * (10 * MIB))
    payload = json.dumps(body).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 64 * 1024):
            yield payload[i : i + 64 * 1024]

    response = await http.post("/v1/orders", content=chunks(), headers=BACKEND | {"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "request_too_large")
    await nothing_started(orders, body)


async def test_an_oversized_action_body_is_413_and_the_order_is_unchanged(
    http: httpx.AsyncClient, orders: OrderClient, collecting: Collecting
) -> None:
    before = await quiet(orders, collecting.order_id)
    response = await http.post(
        f"/v1/orders/{collecting.order_id}/abandon", json={"reason": "x" * (2 * MIB)}, headers=SUPPORT
    )
    assert_error(response, 413, "request_too_large")
    assert await snapshot(orders, collecting.order_id) == before


def big_jpeg_form(key: str, size: int) -> tuple[bytes, str]:
    boundary = f"hostile{uuid.uuid4().hex}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\n{key}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    data = b"\xff\xd8\xff\xe0" + b"\0" * (size - 4)
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("declared", [True, False], ids=["with-content-length", "chunked"])
async def test_an_upload_over_the_limit_is_413_and_nothing_is_stored_or_changed(
    http: httpx.AsyncClient, orders: OrderClient, stack: Stack, collecting: Collecting, declared: bool
) -> None:
    payload, content_type = big_jpeg_form(collecting.key, 8 * MIB)
    before, on_disk = await quiet(orders, collecting.order_id), disk(stack)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 256 * 1024):
            yield payload[i : i + 256 * 1024]

    response = await http.post(
        f"/v1/orders/{collecting.order_id}/documents",
        content=payload if declared else chunks(),
        headers=BACKEND | {"content-type": content_type},
    )
    assert ("content-length" in response.request.headers) is declared
    error = assert_error(response, 413, "document_too_large")
    assert error["details"] == {"max_bytes": 5 * MIB}
    assert await snapshot(orders, collecting.order_id) == before
    assert disk(stack) == on_disk


async def test_json_nested_a_hundred_thousand_deep_is_refused_400_not_a_crash(
    http: httpx.AsyncClient, orders: OrderClient
) -> None:
    """Small enough to pass the size limit, too deep for the JSON decoder's recursion."""
    body = order_body()
    nested = json.dumps(body)[:-1] + ', "notice": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = await http.post(
        "/v1/orders", content=nested.encode(), headers=BACKEND | {"content-type": "application/json"}
    )
    assert_error(response, 400, "bad_request")
    await nothing_started(orders, body)


# ============================================================================================ wrong content types


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None], ids=str
)
async def test_an_order_sent_as_another_content_type_is_422_naming_the_body_and_nothing_starts(
    http: httpx.AsyncClient, orders: OrderClient, content_type: str | None
) -> None:
    body = order_body()
    headers = BACKEND | ({"content-type": content_type} if content_type else {})
    response = await http.post("/v1/orders", content=json.dumps(body).encode(), headers=headers)
    errors = field_errors(response)
    assert set(errors) == {"body"}, errors
    assert errors["body"]["rule_id"] == "R-FMT-1"
    assert "Content-Type" in errors["body"]["message"] and "application/json" in errors["body"]["fix"]
    await nothing_started(orders, body)


async def test_an_action_sent_as_plain_text_is_422_and_the_order_is_unchanged(
    http: httpx.AsyncClient, orders: OrderClient, collecting: Collecting
) -> None:
    before = await quiet(orders, collecting.order_id)
    response = await http.post(
        f"/v1/orders/{collecting.order_id}/abandon",
        content=b'{"reason": "plain text"}',
        headers=SUPPORT | {"content-type": "text/plain"},
    )
    assert set(field_errors(response)) == {"body"}
    assert await snapshot(orders, collecting.order_id) == before


async def test_a_body_that_is_not_json_names_the_body_and_where_it_broke(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/orders", content=b'{"order_id": "x",', headers=BACKEND | {"content-type": "application/json"}
    )
    errors = field_errors(response)
    assert set(errors) == {"body"}
    assert errors["body"]["message"].startswith("the body is not valid JSON")
    assert "character" in errors["body"]["message"]


@pytest.mark.parametrize(
    ("declared", "data"),
    [
        ("image/jpeg", PDF),
        ("image/jpeg", ELF),
        ("image/jpeg", WINDOWS_EXE),
        ("image/png", b"#!/bin/sh\nrm -rf /\n"),
        ("application/pdf", WINDOWS_EXE),
        ("application/x-msdownload", WINDOWS_EXE),
        ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ],
    ids=["jpeg-is-pdf", "jpeg-is-elf", "jpeg-is-exe", "png-is-script", "pdf-is-exe", "exe", "svg"],
)
async def test_an_upload_whose_bytes_are_not_its_declared_type_is_415_and_nothing_is_stored(
    http: httpx.AsyncClient, orders: OrderClient, stack: Stack, collecting: Collecting, declared: str, data: bytes
) -> None:
    before, on_disk = await quiet(orders, collecting.order_id), disk(stack)
    response = await http.post(
        f"/v1/orders/{collecting.order_id}/documents",
        data={"key": collecting.key},
        files={"file": ("scan.jpg", data, declared)},
        headers=BACKEND,
    )
    error = assert_error(response, 415, "unsupported_document_type")
    assert error["details"]["accepted"] == ["image/jpeg", "image/png", "application/pdf"]
    assert await snapshot(orders, collecting.order_id) == before
    assert disk(stack) == on_disk


# ============================================================================================ file names


def multipart(key: str, filename: bytes, data: bytes, content_type: str = "image/jpeg") -> tuple[bytes, str]:
    """A form built by hand, so the file name reaches the server byte for byte (an HTTP client would escape it)."""
    boundary = f"hostile{uuid.uuid4().hex}"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\n{key}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + filename
        + f'"\r\nContent-Type: {content_type}\r\n\r\n'.encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# (the file name as sent, byte for byte; the name the document is kept under)
HOSTILE_NAMES = {
    "relative-unix": (b"../../etc/passwd", "passwd"),
    "relative-windows": (b"..\\..\\x.jpg", "x.jpg"),
    "nul": (b"photo.jpg\x00../../etc/passwd", "passwd"),
    "absolute-unix": (b"/etc/passwd", "passwd"),
    "absolute-windows": (b"C:\\Windows\\System32\\drivers\\etc\\hosts.jpg", "hosts.jpg"),
    "unc": (b"\\\\server\\share\\x.jpg", "x.jpg"),
    "dots-only": (b"..", "document.jpg"),
    "doubled-dots": (b"....//....//x.jpg", "x.jpg"),
    "percent-encoded": (b"..%2F..%2Fx.jpg", "%2F..%2Fx.jpg"),  # never decoded: a harmless literal name
    "rtl-override": ("photo\u202egpj.exe".encode(), "photogpj.exe"),
    "long": (("长" * 1_000 + ".jpg").encode(), "长" * 83 + ".jpg"),  # cut to 255 bytes, extension kept
}


@pytest.mark.parametrize(("raw", "kept_as"), HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
async def test_an_upload_named_to_escape_the_store_is_kept_under_a_safe_name_and_nothing_is_written_outside(
    http: httpx.AsyncClient, stack: Stack, collecting: Collecting, raw: bytes, kept_as: str
) -> None:
    photo = colour_photo(width=256, height=192, seed=int(hashlib.sha256(raw).hexdigest()[:8], 16))
    before = disk(stack)
    body, content_type = multipart(collecting.key, raw, photo)
    response = await http.post(
        f"/v1/orders/{collecting.order_id}/documents", content=body, headers=BACKEND | {"content-type": content_type}
    )
    assert response.status_code == 200, response.text
    state = (await http.get(f"/v1/orders/{collecting.order_id}", headers=VIEWER)).json()
    ref = next(d["ref"] for d in state["documents"] if d["key"] == collecting.key)
    assert ref["filename"] == kept_as
    # Only the content and its owner marker are new, both inside the store, both named by the content's hash; no
    # file that was there before has changed.
    after = disk(stack)
    assert after.passwd == before.passwd
    assert {p for p, seen in before.files.items() if after.files.get(p) != seen} == set()
    new = set(after.files) - set(before.files)
    sha = hashlib.sha256(photo).hexdigest()
    assert collecting.store / "objects" / sha[:2] / sha in new
    assert all(p.is_relative_to(collecting.store) for p in new), new
    assert {p.relative_to(collecting.store).parts[:2] for p in new} == {("objects", sha[:2]), ("owners", sha)}


async def test_a_file_name_that_breaks_the_form_is_400_and_nothing_is_written(
    http: httpx.AsyncClient, orders: OrderClient, stack: Stack, collecting: Collecting
) -> None:
    before, on_disk = await quiet(orders, collecting.order_id), disk(stack)
    body, content_type = multipart(collecting.key, b"a\r\nContent-Type: text/html\r\n.jpg", colour_photo(seed=3))
    response = await http.post(
        f"/v1/orders/{collecting.order_id}/documents", content=body, headers=BACKEND | {"content-type": content_type}
    )
    assert_error(response, 400, "bad_request")
    assert await snapshot(orders, collecting.order_id) == before
    assert disk(stack) == on_disk


# ============================================================================================ Unicode


def full_width_serials(body: dict[str, Any]) -> dict[str, Any]:
    """Every filing number of the order with its serial written in full-width digits, as a Chinese input method may
    type them (``京ICP备１２３４５６７８号-1``): the same filing to a reader, another workflow id to Temporal."""

    def serial(number: str) -> str:
        head, _, rest = number.partition("备")
        digits, _, tail = rest.partition("号")
        return f"{head}备{digits.translate(FULL_WIDTH)}号{tail}"

    spoilt = copy.deepcopy(body)
    spoilt["filing_number"] = serial(spoilt["filing_number"])
    spoilt["record"]["entity_filing_number"] = serial(spoilt["record"]["entity_filing_number"])
    for service in spoilt["record"]["services"]:
        service["filing_number"] = serial(service["filing_number"])
    for change in spoilt["changes"]:
        if change.get("service"):
            change["service"] = serial(change["service"])
    return spoilt


PERSON = "record.services.0.person_in_charge"

# (what, dotted path, value)
REFUSED_TEXT = [
    ("zero-width joiner in a name", f"{PERSON}.name", "张\u200d三"),
    ("zero-width space in a name", "record.entity.person_in_charge.name", "李\u200b四"),
    ("right-to-left override in the entity's name", "record.entity.name", "\u202e司公限有技科例示"),
    ("byte-order mark in a new person's name", "changes.0.new_person.name", "\ufeff王五"),
    ("emoji in the website's name", "record.services.0.name", "示例网站🚀"),
    ("control character in a name", "record.entity.person_in_charge.name", "赵\x07六"),
    ("full-width digits in a mobile", f"{PERSON}.mobile", "１３８００１３８０００"),
    ("Arabic-Indic digits in a mobile", f"{PERSON}.mobile", "+86١٣٨٠٠١٣٨٠٠٠"),
    ("full-width digits in a resident ID", f"{PERSON}.id_number", "１１０１０１１９９００３０７００１１"),
    ("Cyrillic а in a Latin domain", "record.services.0.domains.0", "pаypal.com"),
    ("Greek ο in a Latin domain", "record.services.0.domains.0", "gοogle.cn"),
    ("the same, as an A-label", "record.services.0.domains.0", "xn--pypal-4ve.com"),
    ("emoji domain", "record.services.0.domains.0", "🚀.com"),
    ("zero-width space in a domain", "record.services.0.domains.0", "exa\u200bmple.com"),
    ("10,000-character name", "record.entity.person_in_charge.name", "张" * 10_000),
    ("10,000-character domain", "record.services.0.domains.0", "a" * 10_000 + ".com"),
    ("10,000-character mobile", f"{PERSON}.mobile", "1" * 10_000),
    ("10,000-character order id", "order_id", "a" * 10_000),
]


def field_of(path: str) -> str:
    """``record.services.0.name`` → ``record.services[0].name`` (the path style of errors)."""
    out = ""
    for part in path.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


@pytest.mark.parametrize(("path", "value"), [(p, v) for _, p, v in REFUSED_TEXT], ids=[w for w, *_ in REFUSED_TEXT])
async def test_deceptive_unicode_is_refused_422_naming_the_field_and_rule_and_nothing_starts(
    http: httpx.AsyncClient, orders: OrderClient, path: str, value: str
) -> None:
    body = at(order_body(), path, value)
    errors = field_errors(await http.post("/v1/orders", json=body, headers=BACKEND))
    field = field_of(path)
    assert field in errors, errors
    assert errors[field]["rule_id"] == "R-FMT-1"
    assert errors[field]["message"]
    await nothing_started(orders, body)


async def test_a_filing_number_in_full_width_digits_is_refused_it_would_escape_r_lock_1(
    http: httpx.AsyncClient, orders: OrderClient
) -> None:
    """The same filing with ASCII digits already has an order in progress; written full-width, its workflow id
    would differ and a second order would start for the filing."""
    first = order_body()
    placed = await http.post("/v1/orders", json=first, headers=BACKEND)
    assert placed.status_code == 201, placed.text
    second = at(full_width_serials(first), "order_id", f"{first['order_id']}-fw")
    errors = field_errors(await http.post("/v1/orders", json=second, headers=BACKEND))
    assert {"filing_number", "record.entity_filing_number", "record.services[0].filing_number"} <= set(errors)
    assert all(e["rule_id"] == "R-FMT-1" for e in errors.values())
    assert "digits" in errors["filing_number"]["fix"]  # the format and the ASCII digits it takes
    await nothing_started(orders, second)
    await abandon_quietly(orders, first["order_id"])


ACCEPTED_TEXT = [
    ("a Chinese IDN domain", "record.services.0.domains.0", "例子.中国"),
    ("Chinese characters and a-z in one label", "record.services.0.domains.0", "例子abc.cn"),
    ("a Japanese label mixing kanji and kana", "record.services.0.domains.1", "テスト例.jp"),
    ("a combining accent in a passport holder's name", f"{PERSON}.name", "Jose\u0301 Garci\u0301a"),
    ("a middle dot in a minority name", "record.entity.person_in_charge.name", "阿卜杜拉·买买提"),
]


@pytest.mark.parametrize(("path", "value"), [(p, v) for _, p, v in ACCEPTED_TEXT], ids=[w for w, *_ in ACCEPTED_TEXT])
async def test_legitimate_unicode_is_accepted(
    http: httpx.AsyncClient, orders: OrderClient, path: str, value: str
) -> None:
    body = at(order_body(), path, value)
    response = await http.post("/v1/orders", json=body, headers=BACKEND)
    assert response.status_code == 201, response.text
    await abandon_quietly(orders, body["order_id"])


async def test_full_width_digits_in_an_sms_code_are_refused_422_and_the_order_is_unchanged(
    http: httpx.AsyncClient, orders: OrderClient, collecting: Collecting
) -> None:
    before = await quiet(orders, collecting.order_id)
    response = await http.post(
        f"/v1/orders/{collecting.order_id}/sms-verification",
        json={"event": "code_entered", "code": "１２３４５６"},
        headers=BACKEND,
    )
    errors = field_errors(response)
    assert errors["code"]["rule_id"] == "R-FMT-1" and "0-9" in errors["code"]["fix"]
    assert await snapshot(orders, collecting.order_id) == before


async def test_a_10000_character_reason_is_422_and_the_order_is_unchanged(
    http: httpx.AsyncClient, orders: OrderClient, collecting: Collecting
) -> None:
    before = await quiet(orders, collecting.order_id)
    response = await http.post(
        f"/v1/orders/{collecting.order_id}/abandon", json={"reason": "走" * 10_000}, headers=SUPPORT
    )
    assert field_errors(response)["reason"]["rule_id"] == "R-FMT-1"
    assert await snapshot(orders, collecting.order_id) == before


async def test_a_lone_surrogate_is_422_not_a_crash(
    http: httpx.AsyncClient, orders: OrderClient, collecting: Collecting
) -> None:
    """JSON may escape half a UTF-16 pair; Python reads it as a string no encoder can write back."""
    before = await quiet(orders, collecting.order_id)
    response = await http.post(
        f"/v1/orders/{collecting.order_id}/abandon",
        content=b'{"reason": "\\ud800 gone"}',
        headers=SUPPORT | {"content-type": "application/json"},
    )
    assert "reason" in field_errors(response)
    body = order_body()
    raw = json.dumps(body).replace(json.dumps(body["record"]["entity"]["name"]), '"\\udfff"').encode()
    errors = field_errors(
        await http.post("/v1/orders", content=raw, headers=BACKEND | {"content-type": "application/json"})
    )
    assert "record.entity.name" in errors
    await nothing_started(orders, body)
    assert await snapshot(orders, collecting.order_id) == before


# ============================================================================================ tokens


def configured_app(stack: Stack, orders: OrderClient) -> FastAPI:
    """Tokens configured by hash, as in production: the development tokens are no longer valid."""
    tokens = {
        "crm": TokenSpec(role=Role.BACKEND, sha256=hash_token("current-backend-secret")),
        "ops-li": TokenSpec(role=Role.SUPPORT, sha256=hash_token("current-support-secret")),
    }
    return create_app(dev_settings(stack, api_tokens=tokens), order_client=orders, sessions=orders.read_model)


def bad_tokens() -> Iterator[tuple[str, dict[str, str]]]:
    yield "none", {}
    yield "empty bearer", {"Authorization": "Bearer "}
    yield "basic scheme", {"Authorization": "Basic " + base64.b64encode(b"crm:current-backend-secret").decode()}
    yield "retired token", {"Authorization": "Bearer retired-backend-secret"}  # its hash is configured no more
    yield "dev token", BACKEND  # valid only where no tokens are configured
    yield "token and more", {"Authorization": "Bearer current-backend-secret extra"}
    yield "token as a cookie", {"Cookie": "icpflow_token=current-backend-secret"}  # the dashboard's, not the API's


@pytest.mark.parametrize("headers", [h for _, h in bad_tokens()], ids=[n for n, _ in bad_tokens()])
async def test_placing_without_a_valid_token_is_401_and_nothing_starts(
    stack: Stack, orders: OrderClient, headers: dict[str, str]
) -> None:
    body = order_body()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=configured_app(stack, orders)), base_url=BASE) as c:
        response = await c.post("/v1/orders", json=body, headers=headers)
        as_query = await c.post("/v1/orders", json=body, params={"token": "current-backend-secret"})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(as_query, 401, "unauthorized")  # the API reads the Authorization header only
    await nothing_started(orders, body)


async def test_a_token_that_is_not_latin_1_text_is_401(stack: Stack, orders: OrderClient) -> None:
    body = order_body()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=configured_app(stack, orders)), base_url=BASE) as c:
        response = await c.post("/v1/orders", json=body, headers=[(b"authorization", b"Bearer \xff\xfe\x00")])
    assert_error(response, 401, "unauthorized")
    await nothing_started(orders, body)


@pytest.mark.parametrize("role", ["viewer", "support"])
async def test_placing_with_a_role_that_may_not_is_403_and_nothing_starts(
    http: httpx.AsyncClient, orders: OrderClient, role: str
) -> None:
    body = order_body()
    error = assert_error(
        await http.post("/v1/orders", json=body, headers={"Authorization": f"Bearer dev-{role}"}), 403, "forbidden"
    )
    assert error["details"] == {"role": role, "allowed_roles": ["backend"]}
    await nothing_started(orders, body)


@pytest.mark.parametrize(
    ("path", "payload", "headers"),
    [
        ("abandon", {"reason": "not mine to do"}, BACKEND),
        ("abandon", {"reason": "not mine to do"}, VIEWER),
        ("extend", {"days": 90, "reason": "not mine to do"}, VIEWER),
        ("resume", {"reason": "not mine to do"}, BACKEND),
        ("initial-review", {"approved": True}, BACKEND),
        ("confirmation", None, SUPPORT),
        ("sms-verification", {"event": "verified"}, VIEWER),
        ("abandon", {"reason": "who am I"}, {}),
        ("abandon", {"reason": "who am I"}, {"Authorization": "Bearer dev-admin"}),
    ],
)
async def test_an_action_by_a_caller_who_may_not_is_refused_and_the_order_is_unchanged(
    http: httpx.AsyncClient,
    orders: OrderClient,
    collecting: Collecting,
    path: str,
    payload: dict[str, Any] | None,
    headers: dict[str, str],
) -> None:
    before = await quiet(orders, collecting.order_id)
    response = await http.post(f"/v1/orders/{collecting.order_id}/{path}", json=payload, headers=headers)
    if headers in (BACKEND, SUPPORT, VIEWER):
        assert_error(response, 403, "forbidden")
    else:
        assert_error(response, 401, "unauthorized")
    assert await snapshot(orders, collecting.order_id) == before


async def test_an_upload_by_a_caller_who_may_not_is_refused_and_nothing_is_stored(
    http: httpx.AsyncClient, orders: OrderClient, stack: Stack, collecting: Collecting
) -> None:
    before, on_disk = await quiet(orders, collecting.order_id), disk(stack)
    for headers, status in ((VIEWER, 403), (SUPPORT, 403), ({}, 401)):
        response = await http.post(
            f"/v1/orders/{collecting.order_id}/documents",
            data={"key": collecting.key},
            files={"file": ("id.jpg", colour_photo(width=128, height=96, seed=7), "image/jpeg")},
            headers=headers,
        )
        assert response.status_code == status, response.text
    assert await snapshot(orders, collecting.order_id) == before
    assert disk(stack) == on_disk


# ============================================================================================ the codec server


def sealed_payload(data: bytes, key_id: bytes = b"test-1") -> dict[str, Any]:
    return {
        "metadata": {
            "encoding": base64.b64encode(b"binary/encrypted").decode(),
            "encryption-key-id": base64.b64encode(key_id).decode(),
        },
        "data": base64.b64encode(data).decode(),
    }


@pytest.mark.parametrize(
    "payload",
    [
        sealed_payload(b"\x00" * 12 + b"not sealed by us, or altered on the way"),
        sealed_payload(b"short"),
        sealed_payload(b"\x00" * 40, key_id=b"\xff\xfe"),
    ],
    ids=["forged", "truncated", "key-id-not-utf8"],
)
async def test_a_forged_or_altered_payload_is_422_not_a_crash(http: httpx.AsyncClient, payload: dict[str, Any]) -> None:
    response = await http.post("/codec/decode", json={"payloads": [payload]}, headers=SUPPORT)
    assert_error(response, 422, "undecodable_payload")


@pytest.mark.parametrize("body", [b"null", b"1", b'"payloads"', b"[]", b"\xff\xfe"], ids=str)
async def test_a_codec_body_that_is_not_a_payloads_object_is_400(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post("/codec/decode", content=body, headers=SUPPORT | {"content-type": "application/json"})
    assert_error(response, 400, "bad_payloads")


@pytest.mark.parametrize("value", ["21", "1732780800", "-5", "1e9"])
async def test_a_bare_number_is_not_an_instant_in_list_filters(http: httpx.AsyncClient, value: str) -> None:
    """Found by schemathesis: pydantic would read a number as a Unix timestamp; the spec promises ISO 8601."""
    response = await http.get(
        "/v1/orders", params={"placed_from": value}, headers={"Authorization": "Bearer dev-viewer"}
    )
    assert_error(response, 422, "invalid_request")
    iso = await http.get(
        "/v1/orders",
        params={"placed_from": "2026-11-28T00:00:00+08:00"},
        headers={"Authorization": "Bearer dev-viewer"},
    )
    assert iso.status_code == 200
