"""The closed loop the held-load test keeps up: clients carrying orders to approval through the HTTP API, a reader,
and a sampler of the processes' memory — plus the arithmetic the test asserts on.

Each client places an order (``POST /v1/orders``), waits for each stage by reading the order back
(``GET /v1/orders/{id}``), uploads every document, confirms, records the initial review (support token), enters
the code the regulator texted (read from the SMS sink), waits for ``completed``, and reads the order once more; then
the next one. The reader lists (first page and the next by cursor, a stage filter), gets a finished order, asks for
the stats, the health check, the Prometheus metrics and an order that does not exist (the one 4xx expected: 404).

Every request is recorded with its operation, status and latency. Anything else than the status expected —
a 5xx, an unexpected 4xx, a transport error — is an error; so is an order that ends anywhere but ``completed``
(``approved``) or does not get there in time (stuck).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.driver import Photos, SmsInbox, bench_order
from models.order import PlaceOrder
from models.stages import Stage, Status
from tests.reliability.load_stack import LoadStack

BACKEND = {"Authorization": "Bearer dev-backend"}
SUPPORT = {"Authorization": "Bearer dev-support"}
VIEWER = {"Authorization": "Bearer dev-viewer"}

REQUEST_TIMEOUT_S = 120.0  # generous: the machine is shared; the API's own action timeout (30 s) answers first
STAGE_POLL_S = 0.25  # how often a client reads its order back while it waits for a stage
STAGE_TIMEOUT_S = 180.0  # an order not reaching its next stage within this is stuck
READER_PAUSE_S = 0.5
MAX_ERRORS = 25  # past this many errors the loop stops early: the test has failed already


class LoadError(Exception):
    pass


@dataclass
class Recorder:
    """Every request's operation, status and latency; every error with what it was."""

    started: float = field(default_factory=time.monotonic)
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    errors: list[dict[str, Any]] = field(default_factory=list)
    orders_placed: int = 0
    orders_completed: int = 0
    order_latencies_s: list[float] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic() - self.started

    @property
    def requests(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values())

    def error(self, kind: str, **details: Any) -> None:
        self.errors.append({"at_s": round(self.now(), 1), "kind": kind, **details})
        if len(self.errors) >= MAX_ERRORS:
            self.stop.set()

    async def call(
        self,
        http: httpx.AsyncClient,
        op: str,
        method: str,
        url: str,
        *,
        expect: Iterable[int] = (200,),
        **kwargs: Any,
    ) -> httpx.Response:
        t0 = time.perf_counter()
        try:
            response = await http.request(method, url, **kwargs)
        except httpx.HTTPError as err:
            self.statuses[op][0] += 1  # 0: no HTTP answer at all
            self.error("transport", op=op, url=url, detail=f"{type(err).__name__}: {err}")
            raise LoadError(f"{op} {url}: {type(err).__name__}") from None
        self.latencies_ms[op].append((time.perf_counter() - t0) * 1000)
        self.statuses[op][response.status_code] += 1
        if response.status_code not in tuple(expect):
            self.error("status", op=op, url=url, status=response.status_code, body=response.text[:500])
            raise LoadError(f"{op} {url}: {response.status_code}")
        return response

    def summary(self) -> dict[str, Any]:
        every = [ms for values in self.latencies_ms.values() for ms in values]
        by_status: Counter[int] = Counter()
        for counts in self.statuses.values():
            by_status.update(counts)
        return {
            "orders_placed": self.orders_placed,
            "orders_completed": self.orders_completed,
            "requests": self.requests,
            "errors": len(self.errors),
            "by_status": {str(k): v for k, v in sorted(by_status.items())},
            "latency_ms": percentiles(every),
            "latency_ms_by_op": {op: percentiles(v) | {"n": len(v)} for op, v in sorted(self.latencies_ms.items())},
            "statuses_by_op": {op: {str(k): v for k, v in c.items()} for op, c in sorted(self.statuses.items())},
            "order_latency_s": percentiles(self.order_latencies_s),
        }


def percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 1)}


class Applicant:
    """One closed-loop user: one order at a time, from placement to approval and a last read."""

    def __init__(self, stack: LoadStack, recorder: Recorder, numbers: itertools.count[int], photos: Photos) -> None:
        self.stack = stack
        self.rec = recorder
        self.numbers = numbers
        self.photos = photos
        self.inbox = SmsInbox(stack.outside)
        self.finished: list[str] = []

    async def run(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(base_url=self.stack.api_url, timeout=REQUEST_TIMEOUT_S) as http:
            while loop.time() < deadline and not self.rec.stop.is_set():
                order = bench_order(next(self.numbers), self.stack.timing)
                try:
                    await self.one_order(http, order)
                except LoadError:
                    continue  # recorded already; the next order

    async def one_order(self, http: httpx.AsyncClient, order: PlaceOrder) -> None:
        oid = order.order_id
        t0 = time.monotonic()
        self.rec.orders_placed += 1
        await self.rec.call(
            http, "place", "POST", "/v1/orders", json=order.model_dump(mode="json"), headers=BACKEND, expect=(201,)
        )
        state = await self.until(http, oid, Stage.DOCUMENT_COLLECTION)
        for doc in state["documents"]:
            if doc["status"] != "missing":
                continue
            data = self.photos.unique(f"{oid}:{doc['key']}")
            await self.rec.call(
                http,
                "upload",
                "POST",
                f"/v1/orders/{oid}/documents",
                data={"key": doc["key"]},
                files={"file": (f"{doc['kind']}.jpg", data, "image/jpeg")},
                headers=BACKEND,
            )
        await self.until(http, oid, Stage.CONFIRMATION)
        await self.rec.call(http, "confirm", "POST", f"/v1/orders/{oid}/confirmation", headers=BACKEND)
        await self.until(http, oid, Stage.INITIAL_REVIEW)
        await self.rec.call(
            http, "review", "POST", f"/v1/orders/{oid}/initial-review", json={"approved": True}, headers=SUPPORT
        )
        await self.until(http, oid, Stage.SMS_VERIFICATION)
        code = await self.code_for(order)
        await self.rec.call(
            http,
            "sms",
            "POST",
            f"/v1/orders/{oid}/sms-verification",
            json={"event": "code_entered", "code": code},
            headers=BACKEND,
        )
        final = await self.until(http, oid, Stage.COMPLETED)
        if final["status"] != Status.APPROVED.value:
            self.rec.error("order", order_id=oid, detail=f"completed with status {final['status']}")
            raise LoadError(oid)
        back = (await self.rec.call(http, "readback", "GET", f"/v1/orders/{oid}", headers=VIEWER)).json()
        if (back["stage"], back["status"]) != (Stage.COMPLETED.value, Status.APPROVED.value):
            self.rec.error("order", order_id=oid, detail=f"read back as {back['stage']}/{back['status']}")
            raise LoadError(oid)
        self.rec.orders_completed += 1
        self.rec.order_latencies_s.append(time.monotonic() - t0)
        self.finished.append(oid)

    async def until(self, http: httpx.AsyncClient, oid: str, stage: Stage) -> dict[str, Any]:
        """Read the order back until it is at ``stage``; an order ending elsewhere failed, one not getting there in
        time is stuck."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STAGE_TIMEOUT_S
        while True:
            state: dict[str, Any] = (
                await self.rec.call(http, "get", "GET", f"/v1/orders/{oid}", headers=VIEWER)
            ).json()
            if state["stage"] == stage.value:
                return state
            if Stage(state["stage"]).terminal or state["status"] == Status.PAUSED.value:
                self.rec.error("order", order_id=oid, detail=f"at {state['stage']}/{state['status']}, not {stage}")
                raise LoadError(oid)
            if loop.time() > deadline:
                self.rec.error("stuck", order_id=oid, detail=f"still at {state['stage']} after {STAGE_TIMEOUT_S:g} s")
                raise LoadError(oid)
            await asyncio.sleep(STAGE_POLL_S)

    async def code_for(self, order: PlaceOrder) -> str:
        """The code the regulator texted the order's contact (sent before the stage changed; this only guards)."""
        number = order.contact_person().mobile
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STAGE_TIMEOUT_S
        while not (codes := self.inbox.codes_to(number)):
            if loop.time() > deadline:
                self.rec.error("stuck", order_id=order.order_id, detail="no SMS code texted")
                raise LoadError(order.order_id)
            await asyncio.sleep(STAGE_POLL_S)
        return codes[-1]


async def reader(stack: LoadStack, rec: Recorder, finished: Sequence[list[str]], deadline: float) -> None:
    """What dashboards and support do meanwhile: lists, one order, stats, health, and a miss."""
    loop = asyncio.get_running_loop()
    rng = random.Random(11)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=REQUEST_TIMEOUT_S) as http:
        while loop.time() < deadline and not rec.stop.is_set():
            try:
                page = (await rec.call(http, "list", "GET", "/v1/orders", params={"limit": 20}, headers=VIEWER)).json()
                if page["next_cursor"]:
                    params = {"limit": 20, "cursor": page["next_cursor"]}
                    await rec.call(http, "list", "GET", "/v1/orders", params=params, headers=VIEWER)
                params = {"stage": "completed", "limit": 10}
                await rec.call(http, "list", "GET", "/v1/orders", params=params, headers=SUPPORT)
                done = [oid for ids in finished for oid in ids[-50:]]
                if done:
                    await rec.call(http, "get_done", "GET", f"/v1/orders/{rng.choice(done)}", headers=VIEWER)
                await rec.call(http, "stats", "GET", "/v1/stats", headers=VIEWER)
                await rec.call(http, "healthz", "GET", "/healthz")
                await rec.call(http, "metrics", "GET", "/metrics")
                await rec.call(http, "get_unknown", "GET", "/v1/orders/no-such-order", headers=VIEWER, expect=(404,))
            except LoadError:
                pass
            await asyncio.sleep(READER_PAUSE_S)


# ------------------------------------------------------------------------------------------------ memory


@dataclass
class Sample:
    at_s: float
    worker_kib: int
    api_kib: int
    server_kib: int
    worker_cpu_s: float
    api_cpu_s: float
    orders_completed: int
    requests: int
    loadavg_1m: float


async def sampler(stack: LoadStack, rec: Recorder, samples: list[Sample], every_s: float, until: asyncio.Event) -> None:
    """RSS (and CPU time) of the worker, the API and the server from ``/proc``, every ``every_s`` seconds. A child
    that died stops the loop: the test reports it."""
    while True:
        if not (stack.worker.alive() and stack.api.alive()):
            rec.error("process", detail="the worker or the API exited during the run")
            rec.stop.set()
            return
        samples.append(
            Sample(
                at_s=round(rec.now(), 1),
                worker_kib=stack.worker.rss_kib(),
                api_kib=stack.api.rss_kib(),
                server_kib=stack.server.rss_kib(),
                worker_cpu_s=round(stack.worker.cpu_seconds(), 2),
                api_cpu_s=round(stack.api.cpu_seconds(), 2),
                orders_completed=rec.orders_completed,
                requests=rec.requests,
                loadavg_1m=os.getloadavg()[0],
            )
        )
        try:
            await asyncio.wait_for(until.wait(), every_s)
            return
        except TimeoutError:
            pass


@dataclass(frozen=True)
class Growth:
    """How one process's RSS moved after the warm-up: the median of the first ``window_s`` after it against the
    median of the last ``window_s`` (medians: one GC pause or burst of uploads does not decide), and the
    least-squares slope over every sample after the warm-up."""

    start_mib: float
    end_mib: float
    growth_mib: float
    slope_mib_per_min: float
    peak_mib: float
    samples: int

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self.__dict__.items()}


def growth(series: Sequence[tuple[float, float]], *, warmup_s: float, window_s: float) -> Growth:
    """``series``: (seconds, KiB). Needs at least one sample in each window."""
    after = [(t, kib / 1024) for t, kib in series if t >= warmup_s]
    if len(after) < 3:
        raise ValueError(f"only {len(after)} samples after the warm-up: the run was too short to judge memory")
    first = [m for t, m in after if t < after[0][0] + window_s]
    last = [m for t, m in after if t > after[-1][0] - window_s]
    start, end = statistics.median(first), statistics.median(last)
    ts, ms = [t for t, _ in after], [m for _, m in after]
    slope = statistics.linear_regression(ts, ms).slope * 60 if len(set(ts)) > 1 else 0.0
    return Growth(
        start_mib=start,
        end_mib=end,
        growth_mib=end - start,
        slope_mib_per_min=slope,
        peak_mib=max(kib for _, kib in series) / 1024,
        samples=len(after),
    )
