"""``python -m bench [scenario ...] [--size tiny|full]``: run benchmark scenarios, write one JSON result each under
``bench/results/`` (and a PNG chart where a picture helps), print a summary table. See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import report, scenarios
from bench.rig import READ_MODELS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "scenario", nargs="*", default=[], help=f"one or more of: {', '.join(scenarios.ALL)} (default: all)"
    )
    parser.add_argument("--size", choices=("tiny", "full"), default="full", help="tiny: a handful of orders")
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR, help="where results go (%(default)s)")
    parser.add_argument(
        "--read-model",
        choices=READ_MODELS,
        default="auto",
        help="the app database the worker writes: PostgreSQL on 127.0.0.1 when it answers (auto), or SQLite",
    )
    parser.add_argument("--concurrency", help="throughput: the ramp, e.g. 1,2,4,8 (default 1,2,4,8,16,32)")
    parser.add_argument("--window", type=float, help="throughput: seconds per measured round")
    parser.add_argument("--orders", help="memory: the two parked counts, e.g. 2000,5000; open_orders: one count")
    parser.add_argument("--budget", type=float, help="seconds a scenario may spend placing orders")
    parser.add_argument(
        "--runner",
        choices=("sandboxed", "unsandboxed"),
        help="the worker's workflow runner, to measure what the sandbox costs (default: sandboxed, as production)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scenario's temporary folder (logs, databases)")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if args.concurrency:
        found["concurrency"] = [int(c) for c in args.concurrency.split(",")]
    if args.window:
        found["window_s"] = args.window
    if args.orders:
        found["orders"] = [int(n) for n in args.orders.split(",")]
    if args.budget:
        found["budget_s"] = args.budget
    if args.runner:
        found["workflow_runner"] = args.runner
    return found


async def run_one(
    name: str, size: scenarios.Size, out: Path, read_model: str, opts: dict[str, Any], console: Console, keep: bool
) -> tuple[dict[str, Any], list[scenarios.Row]]:
    """Run one scenario and write its result; returns the result and its summary rows."""
    scenario = scenarios.get(name)
    work = Path(tempfile.mkdtemp(prefix=f"icpflow-bench-{name}-"))
    ctx = scenarios.Context(size=size, work_dir=work, out_dir=out, read_model=read_model, options=opts, console=console)
    started, t0 = report.now(), time.monotonic()
    machine_before = report.machine()
    try:
        figures = await scenario.run(ctx)
    finally:
        if keep:
            console.log(f"{name}: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result: dict[str, Any] = {
        "scenario": name,
        "size": size,
        "summary": scenario.summary,
        "started_at": started,
        "duration_s": round(time.monotonic() - t0, 1),
        "machine": machine_before,
        "load_average_after": report.machine()["load_average"],
        "versions": report.versions(),
        "workflow_runner": ctx.runner,
        **figures,
    }
    if scenario.chart is not None:
        chart_path = report.chart_path(out, name, size)
        try:
            if scenario.chart(result, chart_path):
                result["chart"] = str(chart_path)
        except ImportError as e:  # matplotlib is the bench extra's; the figures stand without their picture
            result["chart"] = f"not drawn: {e}"
    path = report.write(result, out)
    console.log(f"{name}: {result['duration_s']} s → {path}")
    return result, scenario.rows(result)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 140)
    names = args.scenario or list(scenarios.ALL)
    for name in names:
        scenarios.get(name)  # unknown names fail before anything starts
    rows: list[tuple[str, str, str, str]] = []
    t0 = time.monotonic()
    for name in names:
        _, scenario_rows = await run_one(name, args.size, args.out, args.read_model, options(args), console, args.keep)
        rows += [(name, *row) for row in scenario_rows]
    rows.append(("all", "wall-clock time", f"{time.monotonic() - t0:.0f} s", "goal: full run < 20 min"))
    report.print_summary(console, rows)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
