"""messages: how long support's abandon and resume take, through the API, until the order's ``state`` shows them.

Orders are placed through the API and left idle in document collection with an idle limit of a few seconds, so
the workflow pauses them (status ``paused``, waiting on support). Then, one order at a time, support resumes it
(``POST /v1/orders/{id}/resume``) and abandons it (``POST …/abandon``), and the bench polls ``GET
/v1/orders/{id}`` (the workflow's ``state`` query) until the change shows: ``visible`` is from sending the action
to the first state that shows it, ``post`` the action's own response time (the API's actions are workflow
updates: resume answers once applied, abandon once the order has reached ``abandoned``). For comparison, some
orders are resumed with the ``resume`` signal instead (what ``temporal workflow signal`` sends): a signal returns
once the server has it, and only the polling sees when the workflow applied it.

The stack: the dev server, the real worker as a subprocess, the API as a uvicorn subprocess, the read model.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx

from bench import latency
from bench.driver import PARKED_SMS_WINDOW, bench_order, parking_timing
from bench.rig import api_stack
from bench.scenarios import Context, Row, Scenario
from models.messages import SupportAction
from models.order import PlaceOrder
from starter.client import workflow_id_of

BACKEND = {"Authorization": "Bearer dev-backend"}
SUPPORT = {"Authorization": "Bearer dev-support"}
IDLE_LIMIT = timedelta(seconds=3)
POLL_S = 0.005
GOAL_P99_MS = 200.0


async def run(ctx: Context) -> dict[str, Any]:
    count = (ctx.options.get("orders") or [4 if ctx.tiny else 60])[-1]
    budget: float = ctx.options.get("budget_s") or (60.0 if ctx.tiny else 120.0)
    timing = parking_timing().model_copy(update={"collection_idle_limit": IDLE_LIMIT})
    async with api_stack(ctx.work_dir, kind=ctx.read_model, sms_window=PARKED_SMS_WINDOW, runner=ctx.runner) as stack:
        async with httpx.AsyncClient(base_url=stack.api.url, timeout=60) as http:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + budget
            orders = [bench_order(n, timing) for n in range(count)]
            placed = await _place_all(http, orders, deadline)
            ctx.log(f"messages: {len(placed)} orders placed; waiting for them to pause")
            figures: dict[str, list[float]] = {k: [] for k in KEYS}
            for i, order in enumerate(placed):
                if loop.time() > deadline:
                    break
                await _until(http, order, lambda s: s["status"] == "paused", deadline + 30)
                if i % 4 == 3:
                    handle = stack.client.get_workflow_handle(workflow_id_of(order))
                    action = SupportAction(actor="bench-support", reason="bench: resume by signal")
                    t = time.perf_counter()
                    await handle.signal("resume", action)
                    figures["resume_signal_post"].append((time.perf_counter() - t) * 1000)
                    figures["resume_signal_visible"].append(
                        await _visible_after(http, order, t, lambda s: s["status"] == "active")
                    )
                else:
                    post, visible = await _act(http, order, "resume", lambda s: s["status"] == "active")
                    figures["resume_post"].append(post)
                    figures["resume_visible"].append(visible)
                post, visible = await _act(http, order, "abandon", lambda s: s["stage"] == "abandoned")
                figures["abandon_post"].append(post)
                figures["abandon_visible"].append(visible)
        setup = stack.describe()
    done = len(figures["abandon_visible"])
    return {
        "orders": done,
        "target": count,
        "scaled": done < count,
        **{k: latency.summary(v) for k, v in figures.items()},
        "goal": {"visible_p99_ms": GOAL_P99_MS},
        "setup": setup
        | {
            "paused_by": f"collection idle limit {IDLE_LIMIT.total_seconds():g} s (parking timing otherwise)",
            "visible": f"GET /v1/orders/{{id}} polled every {POLL_S * 1000:g} ms from the moment the action is sent",
            "signal_share": "every fourth order is resumed by the resume signal instead of the API",
        },
    }


KEYS = (
    "resume_post",
    "resume_visible",
    "abandon_post",
    "abandon_visible",
    "resume_signal_post",
    "resume_signal_visible",
)


async def _place_all(http: httpx.AsyncClient, orders: list[PlaceOrder], deadline: float) -> list[PlaceOrder]:
    placed: list[PlaceOrder] = []
    queue = list(orders)
    loop = asyncio.get_running_loop()

    async def placer() -> None:
        while queue and loop.time() < deadline:
            order = queue.pop(0)
            response = await http.post("/v1/orders", json=order.model_dump(mode="json"), headers=BACKEND)
            response.raise_for_status()
            placed.append(order)

    await asyncio.gather(*(placer() for _ in range(4)))
    return placed


async def _state(http: httpx.AsyncClient, order: PlaceOrder) -> dict[str, Any]:
    response = await http.get(f"/v1/orders/{order.order_id}", headers=SUPPORT)
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


async def _until(http: httpx.AsyncClient, order: PlaceOrder, shows: Any, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while not shows(await _state(http, order)):
        if loop.time() > deadline:
            raise TimeoutError(f"{order.order_id} never got there")
        await asyncio.sleep(0.1)


async def _visible_after(http: httpx.AsyncClient, order: PlaceOrder, t: float, shows: Any) -> float:
    """Milliseconds from ``t`` (perf_counter) until the order's state shows the change."""
    for _ in range(20_000):
        if shows(await _state(http, order)):
            return (time.perf_counter() - t) * 1000
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{order.order_id}: the change never showed")


async def _act(http: httpx.AsyncClient, order: PlaceOrder, action: str, shows: Any) -> tuple[float, float]:
    t = time.perf_counter()
    response = await http.post(
        f"/v1/orders/{order.order_id}/{action}", json={"reason": f"bench: {action}"}, headers=SUPPORT
    )
    post = (time.perf_counter() - t) * 1000
    response.raise_for_status()
    return post, await _visible_after(http, order, t, shows)


def rows(result: dict[str, Any]) -> list[Row]:
    def p50_p99(s: dict[str, Any]) -> str:
        return f"{s['p50']} / {s['p99']} ms"

    goal = f"goal p99 ≤ {GOAL_P99_MS:g} ms"
    return [
        ("orders resumed and abandoned", str(result["orders"]), f"target {result['target']}"),
        ("resume via API → visible in state, p50/p99", p50_p99(result["resume_visible"]), goal),
        ("abandon via API → visible in state, p50/p99", p50_p99(result["abandon_visible"]), goal),
        ("resume by signal → visible, p50/p99", p50_p99(result["resume_signal_visible"]), "for comparison"),
        (
            "API response resume | abandon, p50",
            f"{result['resume_post']['p50']} | {result['abandon_post']['p50']} ms",
            "",
        ),
    ]


SCENARIO = Scenario(
    name="messages",
    summary="support's abandon and resume through the API until the order's state shows them: p50/p99",
    run=run,
    rows=rows,
    needs=("api", "worker", "temporal"),
    result_keys=("orders", "resume_visible", "abandon_visible", "resume_post", "abandon_post"),
)
