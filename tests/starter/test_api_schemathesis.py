"""The API against its own OpenAPI document, with generated requests (schemathesis).

For every operation schemathesis generates requests that fit the document (positive) and requests that break it on
purpose (negative: wrong types, missing fields, out-of-range values, malformed bodies). Each is sent in process,
through ASGI, to an app wired to the real stack (Temporal dev server, worker, simulators, SQLite read model), with a
caller drawn per request: mostly a token whose role may call the operation, sometimes no token, a token nobody
configured, or a role that may not. Every answer must be what the document promises:

* never a server error (5xx);
* a documented status code, with the documented content type, body schema and headers;
* every 4xx is the JSON error ``{code, message, details}``;
* a missing or unknown token is 401 and a role that may not call the operation 403, whatever else the request holds,
  except what is refused before anyone is authenticated: a path no route matches, a body over the size limit, and a
  body FastAPI cannot parse (it parses the body before it resolves any dependency);
* a negative request is refused (4xx).

Generated requests for the write endpoints almost never describe a real order (a filing number, credit code, ID
number and mobile that all pass their algorithms): placed orders are counted from the answers, cross-checked with
Temporal's visibility, and abandoned at the end so nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema
from temporalio.testing import WorkflowEnvironment

from models import search
from models.messages import SupportAction
from starter.api import create_app
from starter.client import ActionRefused, OrderClient
from tests.conftest import Stack
from tests.starter.test_api import dev_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BACKEND, SUPPORT, VIEWER = "backend", "support", "viewer"
READERS = frozenset({BACKEND, SUPPORT, VIEWER})
NO_TOKEN = "no token"
UNKNOWN_TOKEN = "unknown token"

# Who may call each operation (None: open to everyone). Every operation in the document must be listed here, so a
# new endpoint cannot escape the run.
ALLOWED: dict[str, frozenset[str] | None] = {
    "POST /v1/orders": frozenset({BACKEND}),
    "GET /v1/orders": READERS,
    "GET /v1/orders/{order_id}": READERS,
    "POST /v1/orders/{order_id}/documents": frozenset({BACKEND}),
    "POST /v1/orders/{order_id}/confirmation": frozenset({BACKEND}),
    "POST /v1/orders/{order_id}/sms-verification": frozenset({BACKEND}),
    "POST /v1/orders/{order_id}/resubmission": frozenset({BACKEND}),
    "POST /v1/orders/{order_id}/initial-review": frozenset({SUPPORT}),
    "POST /v1/orders/{order_id}/abandon": frozenset({SUPPORT}),
    "POST /v1/orders/{order_id}/resume": frozenset({SUPPORT}),
    "POST /v1/orders/{order_id}/extend": frozenset({SUPPORT}),
    "GET /v1/stats": READERS,
    "GET /healthz": None,
    "GET /metrics": None,
    "POST /codec/decode": frozenset({SUPPORT}),
    "POST /codec/encode": frozenset({SUPPORT}),
}

# Cases per operation and generation mode. Operations without inputs have few distinct cases, so Hypothesis stops
# early there; the total is asserted below.
MAX_EXAMPLES = 45
MIN_CASES = 1_000

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # each case is a real request to a real stack
    database=None,  # no example database written into the work tree
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
    print_blob=True,
    # The same cases on every CI run, so a red build means a change broke something; set ICPFLOW_FUZZ_RANDOM=1 to
    # explore new cases locally (what it finds becomes an explicit test in test_hostile_input.py).
    derandomize=os.environ.get("ICPFLOW_FUZZ_RANDOM") is None,
)


def callers(allowed: frozenset[str] | None) -> st.SearchStrategy[str]:
    """Whose token a request carries: three times in four one that may call the operation, else no token, a token
    nobody configured, or a role that may not (first in the list, so a failure shrinks to an allowed caller)."""
    if allowed is None:
        return st.sampled_from([*sorted(READERS), NO_TOKEN, UNKNOWN_TOKEN])
    refused = [NO_TOKEN, UNKNOWN_TOKEN, *sorted(READERS - allowed)]
    admitted = sorted(allowed) * max(1, 3 * len(refused) // len(allowed))
    return st.sampled_from([*admitted, *refused])


def authorization(caller: str) -> str | None:
    if caller == NO_TOKEN:
        return None
    if caller == UNKNOWN_TOKEN:
        return "Bearer dev-admin"  # shaped like the dev tokens, but no configured token hashes to it
    return f"Bearer dev-{caller}"


def sent_by(response: schemathesis.Response) -> str:
    """Who the request that was actually sent speaks for."""
    token = response.request.headers.get("Authorization")
    if token is None:
        return NO_TOKEN
    return next((role for role in READERS if token == authorization(role)), UNKNOWN_TOKEN)


@dataclass
class Run:
    """What the generated requests did: cases per operation and generation mode, answers, callers, orders placed."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    callers: Counter[str] = field(default_factory=Counter)
    placed: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.cases.values())


def label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def refused_before_authentication(response: schemathesis.Response) -> bool:
    """Refusals that come before the token is looked at: a path no route matches, a body over the size limit, and
    a body that cannot be parsed (not UTF-8, not JSON, a broken form), since FastAPI parses the body before it
    resolves any dependency. None of them reads a field or touches an order."""
    status, error = response.status_code, response.json()
    if status == 404:
        return bool(error["code"] == "not_found")
    if status == 422:
        return all(e["message"].startswith("the body is not valid JSON") for e in error["details"]["errors"])
    return status in (400, 413)


def exercise(run: Run, operation_label: str, case: schemathesis.Case[Any], caller: str) -> None:
    allowed = ALLOWED[operation_label]
    case.headers.pop("Authorization", None)  # the caller's token replaces whatever was generated
    if (token := authorization(caller)) is not None:
        case.headers["Authorization"] = token
    response = case.call(timeout=60)
    # A negative case may be "the required Authorization header is missing": schemathesis then sends none.
    caller = sent_by(response)
    run.statuses[f"{operation_label} {response.status_code}"] += 1
    run.callers[caller] += 1
    case.validate_response(response, checks=CHECKS)

    status = response.status_code
    if status >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.text
        error = response.json()
        assert set(error) == {"code", "message", "details"}, error
        assert isinstance(error["code"], str) and error["code"], error
        assert isinstance(error["message"], str) and error["message"], error
        assert isinstance(error["details"], dict), error
    if allowed is not None and not refused_before_authentication(response):
        sent = f"{operation_label} as {caller}, headers {dict(response.request.headers)}: {status} {response.text}"
        if caller in (NO_TOKEN, UNKNOWN_TOKEN):
            assert status == 401, sent
            assert response.headers["www-authenticate"] == ["Bearer"]
        elif caller not in allowed:
            assert status == 403, sent
            assert response.json()["details"]["role"] == caller
    if operation_label == "POST /v1/orders" and status in (200, 201):
        run.placed.add(response.json()["order_id"])


def fuzz(schema: OpenApiSchema, run: Run) -> None:
    """Every operation, in both generation modes (runs in a thread: the session loop keeps serving the worker)."""
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        name = label(operation)
        assert name in ALLOWED, f"{name} is not in ALLOWED: say who may call it"
        has_inputs = bool(list(operation.iter_parameters())) or bool(operation.body)
        for mode in [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if has_inputs else [GenerationMode.POSITIVE]:
            fuzz_operation(run, operation, name, mode)


def fuzz_operation(run: Run, operation: Any, name: str, mode: GenerationMode) -> None:
    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode), caller=callers(ALLOWED[name]))
    def one_case(case: schemathesis.Case[Any], caller: str) -> None:
        run.cases[f"{name} [{mode.value}]"] += 1
        exercise(run, name, case, caller)

    one_case()


async def test_generated_requests_get_documented_answers_and_never_a_server_error(
    stack: Stack, temporal_env: WorkflowEnvironment, orders: OrderClient
) -> None:
    target = temporal_env.client.service_client.config.target_host
    app = create_app(dev_settings(stack, temporal_address=target))
    started_at = datetime.now(UTC)
    known_before = await _order_ids(orders, f"TaskQueue = '{stack.settings.task_queue}'")
    clock = time.monotonic()
    run = Run()

    def load_and_fuzz() -> None:
        try:
            # The app connects to Temporal and the read model in its lifespan, on schemathesis' own event loop.
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            fuzz(schema, run)
        finally:
            shutdown_lifespans()

    try:
        await asyncio.to_thread(load_and_fuzz)
    finally:
        report = "\n".join(f"  {n:6} {k}" for k, n in sorted(run.cases.items()))
        print(f"\n{run.total} generated cases in {time.monotonic() - clock:.0f} s:\n{report}")
        print("callers:", dict(run.callers.most_common()))
        print("statuses:", dict(sorted(run.statuses.items())))
        print(f"valid orders placed by generated requests: {sorted(run.placed) or 'none'}")
        await _abandon(orders, run.placed)

    assert run.total >= MIN_CASES, run.cases
    assert {case.rsplit(" [", 1)[0] for case in run.cases} == set(ALLOWED), "an operation left the document"
    # Nothing started but what the answers say. Orders of earlier tests may continue as new meanwhile: a new run of
    # an order known before is not a new order.
    query = f"TaskQueue = '{stack.settings.task_queue}' AND StartTime >= '{started_at.isoformat()}'"
    assert await _order_ids(orders, query) - known_before == run.placed


async def _order_ids(orders: OrderClient, query: str) -> set[str]:
    return {
        order_id
        async for execution in orders.client.list_workflows(query)
        if (order_id := execution.typed_search_attributes.get(search.ORDER_ID)) is not None
    }


async def _abandon(orders: OrderClient, order_ids: set[str]) -> None:
    for order_id in order_ids:
        with contextlib.suppress(ActionRefused):  # already ended (an invalid order ends by itself)
            await orders.abandon(order_id, SupportAction(actor="schemathesis", reason="generated by a fuzzing test"))
