"""Every benchmark scenario runs end to end at its tiny size and writes a result with its figures, so the
benchmarks cannot rot between full runs. Nothing here judges a figure: timings on a test machine mean nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from bench import scenarios
from bench.__main__ import run_one

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMMON_KEYS = {"scenario", "size", "started_at", "duration_s", "machine", "versions"}


@pytest.mark.parametrize("name", scenarios.ALL)
async def test_scenario_runs_at_tiny_size_and_writes_its_result(name: str, tmp_path: Path) -> None:
    await run_one(name, "tiny", tmp_path, "auto", {}, Console(quiet=True), keep=False)

    written = tmp_path / f"{name}.tiny.json"
    assert written.exists(), f"{name} wrote no result"
    result = json.loads(written.read_text())
    assert result.keys() >= COMMON_KEYS
    assert result["scenario"] == name and result["size"] == "tiny"
    if result.get("skipped"):  # profile without py-spy installed
        pytest.skip(result["skipped"])
    missing = set(scenarios.get(name).result_keys) - result.keys()
    assert not missing, f"{name} result lacks {sorted(missing)}"
