"""dashboard: the read model at 100,000 orders — list with each filter, deep pages, stats — through the real API.

A realistic year of orders (``bench/seed.py``: stages, provinces, kinds, overdue, the audit trail) is written in bulk
into a fresh PostgreSQL database (created and dropped here) and a SQLite file, both migrated to head. For each, the
API runs as production runs it (``bench.rig.ApiProcess``: uvicorn on loopback, its own process) on that database
and a dev server, and one client times, one request after another:

- ``GET /v1/orders`` with no filter and with each filter it supports (a busy and a rare value where it matters),
  each several times;
- deep pages: the whole list walked with ``next_cursor`` (keyset pagination: a page far back costs what the first
  one does), timed per page and grouped by depth;
- ``GET /v1/stats``: the snapshot as a dashboard reads it, and (once) the cold computation behind it.

Each query's plan is captured (``bench/explain.py``: PostgreSQL ``EXPLAIN (ANALYZE, BUFFERS)``, SQLite ``EXPLAIN
QUERY PLAN``) on the same statement the API runs, and any plan reading a whole table is flagged.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Executable

from bench import latency
from bench.explain import plan, scans_whole_table
from bench.rig import ApiProcess, DevServer, Outside, bench_settings, read_model
from bench.scenarios import Context, Row, Scenario
from bench.seed import NOW, generate, seed
from models.order import OrderKind, Province
from models.stages import Stage, Status
from starter.api.stats import stage_times
from store import db, queries

VIEWER = {"Authorization": "Bearer dev-viewer"}
GOAL_P99_MS = 50.0


def filters(sample: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every filter the list endpoint takes, with a busy and a rare value where the difference matters."""
    return {
        "no filter": {},
        "stage=document_collection": {"stage": Stage.DOCUMENT_COLLECTION},
        "stage=record_update (rare)": {"stage": Stage.RECORD_UPDATE},
        "status=paused": {"status": Status.PAUSED},
        "province=guangdong": {"province": Province.GUANGDONG},
        "province=tibet (rare)": {"province": Province.TIBET},
        "kind=entity": {"kind": OrderKind.ENTITY},
        "overdue=true": {"overdue": True},
        "filing_number (entity)": {"filing_number": sample["entity_filing_number"]},
        "placed_from/placed_to (10 days)": {
            "placed_from": NOW - timedelta(days=200),
            "placed_to": NOW - timedelta(days=190),
        },
        "province=guangdong&stage=completed": {"province": Province.GUANGDONG, "stage": Stage.COMPLETED},
    }


def _params(f: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in f.items():
        out[k] = v.isoformat() if hasattr(v, "isoformat") else str(v).lower() if isinstance(v, bool) else str(v)
    return out


async def run(ctx: Context) -> dict[str, Any]:
    n = (ctx.options.get("orders") or [1_000 if ctx.tiny else 100_000])[-1]
    repeats = 3 if ctx.tiny else 30
    walk_limit = 100
    walk_budget: float = ctx.options.get("budget_s") or (30.0 if ctx.tiny else 40.0)
    ctx.log(f"dashboard: generating {n:,} orders")
    t0 = time.monotonic()
    rows = generate(n)
    generated_s = time.monotonic() - t0
    backends: dict[str, Any] = {}
    outside = await Outside.start(sms_window=timedelta(minutes=2))
    try:
        for kind in ("postgres", "sqlite"):
            async with read_model(kind, ctx.work_dir) as (model_kind, url):
                backends[model_kind] = await _one_backend(ctx, outside, url, rows, repeats, (walk_limit, walk_budget))
    finally:
        await outside.stop()
    worst = max(
        (s["p99"] for b in backends.values() for s in [*b["list"].values(), b["stats"], b["deep_pages"]["all"]]
         if s.get("p99") is not None),
        default=None,
    )  # fmt: skip
    return {
        "orders": n,
        "events": len(rows.events),
        "generated_s": round(generated_s, 1),
        "backends": backends,
        "worst_p99_ms": worst,
        "goal": {"p99_ms": GOAL_P99_MS},
        "setup": {
            "client": "one httpx client, requests one after another, viewer token",
            "repeats_per_filter": repeats,
            "walk_page_size": walk_limit,
            "walk_budget_s": walk_budget,
            "seed": "bench/seed.py (deterministic): a year of orders, weighted provinces and kinds, ended and "
            "open stages, paused and overdue orders, ~9 audit events per order",
        },
    }


async def _one_backend(
    ctx: Context, outside: Outside, url: str, rows: Any, repeats: int, walk: tuple[int, float]
) -> dict[str, Any]:
    engine = db.create_engine(url)
    server = DevServer(ctx.work_dir / f"temporal-{engine.dialect.name}")
    settings = bench_settings(ctx.work_dir, outside, server.address, url)
    try:
        seeded = await seed(engine, rows)
        ctx.log(f"dashboard: {engine.dialect.name}: seeded {seeded.orders:,} orders in {seeded.seconds} s")
        await server.start(settings)
        api = ApiProcess(settings, ctx.work_dir)
        await api.start()
        try:
            async with httpx.AsyncClient(base_url=api.url, headers=VIEWER, timeout=120) as http:
                stats_cold_ms = await _cold_stats(engine)
                figures = await _measure(http, filters(seeded.sample), repeats, walk)
                figures["stats_first_request_ms"] = figures.pop("stats_first")
        finally:
            await api.stop()
        figures["plans"] = await _plans(engine, filters(seeded.sample))
        figures["whole_table_scans"] = [q for q, p in figures["plans"].items() if scans_whole_table(p["plan"])]
        return {
            "seeded": {"orders": seeded.orders, "events": seeded.events, "seconds": seeded.seconds},
            "stats_cold_compute_ms": stats_cold_ms,
            **figures,
            "api": api.describe(),
        }
    finally:
        await server.stop()
        await engine.dispose()


async def _cold_stats(engine: Any) -> float:
    """What one stats snapshot costs to compute (the work the API does in the background every max age)."""
    async with db.session_factory(engine)() as session:
        t = time.perf_counter()
        await stage_times(session)
        return round((time.perf_counter() - t) * 1000, 1)


async def _measure(
    http: httpx.AsyncClient, cases: dict[str, dict[str, Any]], repeats: int, walk_spec: tuple[int, float]
) -> dict[str, Any]:
    async def get(path: str, params: dict[str, str] | None = None) -> httpx.Response:
        response = await http.get(path, params=params)
        response.raise_for_status()
        return response

    listed: dict[str, Any] = {}
    for name, f in cases.items():
        await get("/v1/orders", _params(f))  # warm the path once
        times = [(await latency.timed(lambda f=f: get("/v1/orders", _params(f))))[1] for _ in range(repeats)]  # type: ignore[misc]
        listed[name] = latency.summary(times)
    # Deep pages: the whole list, page after page, by cursor (until the walk's time budget is spent).
    walk, budget = walk_spec
    stop_at = time.monotonic() + budget
    by_depth: dict[str, list[float]] = {}
    every: list[float] = []
    cursor: str | None = None
    page = 0
    while True:
        params = {"limit": str(walk)} | ({"cursor": cursor} if cursor else {})
        response, ms = await latency.timed(lambda params=params: get("/v1/orders", params))  # type: ignore[misc]
        every.append(ms)
        depth = page * walk
        bucket = "first 1,000" if depth < 1_000 else "1,000–10,000" if depth < 10_000 else "past 10,000"
        by_depth.setdefault(bucket, []).append(ms)
        cursor = response.json()["next_cursor"]
        page += 1
        if cursor is None or time.monotonic() > stop_at:
            break
    stats_first = (await latency.timed(lambda: get("/v1/stats")))[1]
    stats_times = [(await latency.timed(lambda: get("/v1/stats")))[1] for _ in range(repeats)]
    return {
        "list": listed,
        "deep_pages": {
            "pages": page,
            "whole_list": cursor is None,
            "page_size": walk,
            "all": latency.summary(every),
            "by_depth": {k: latency.summary(v) for k, v in by_depth.items()},
        },
        "stats": latency.summary(stats_times),
        "stats_first": round(stats_first, 1),
    }


async def _plans(engine: Any, cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    deep = queries.encode_cursor(NOW - timedelta(days=330), "ord-")
    statements: dict[str, Executable] = {name: queries.list_statement(**f) for name, f in cases.items()}
    statements["deep page (cursor 330 days back)"] = queries.list_statement(cursor=deep)
    statements["deep page, province=guangdong"] = queries.list_statement(province=Province.GUANGDONG, cursor=deep)
    statements["stats: counts"] = queries.stats_statement()
    out: dict[str, Any] = {}
    async with db.session_factory(engine)() as session:
        for name, statement in statements.items():
            lines = await plan(session, statement)
            out[name] = {"plan": lines}
    return out


def rows(result: dict[str, Any]) -> list[Row]:
    out: list[Row] = [("orders | audit events seeded", f"{result['orders']:,} | {result['events']:,}", "")]
    for name, b in result["backends"].items():
        lists = b["list"]
        worst = max(lists, key=lambda k: lists[k]["p99"] or 0)
        out.append(
            (
                f"{name}: list, worst filter p50/p95/p99",
                latency.row_text(lists[worst]),
                f"{worst}; goal p99 ≤ {GOAL_P99_MS:g} ms",
            )
        )
        out.append(
            (
                f"{name}: deep pages p50/p95/p99",
                latency.row_text(b["deep_pages"]["all"]),
                f"{b['deep_pages']['pages']} pages by cursor",
            )
        )
        out.append(
            (
                f"{name}: stats p50/p95/p99",
                latency.row_text(b["stats"]),
                f"snapshot; cold compute {b['stats_cold_compute_ms']} ms",
            )
        )
        scans = b["whole_table_scans"]
        out.append((f"{name}: plans reading a whole table", str(len(scans)), ", ".join(scans)))
    return out


SCENARIO = Scenario(
    name="dashboard",
    summary="the read model at 100,000 orders: list with each filter, deep pages and stats through the API, plans",
    run=run,
    rows=rows,
    needs=("api", "temporal", "read model"),
    result_keys=("orders", "events", "backends", "worst_p99_ms"),
)
