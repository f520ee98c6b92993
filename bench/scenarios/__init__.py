"""The scenarios ``python -m bench`` knows, by name, in the order ``python -m bench`` runs them.

A scenario is a coroutine taking a :class:`Context` and returning its figures as a JSON-able dict; the runner
(``bench.__main__``) adds what every result carries (machine, size, duration, versions), writes
``bench/results/<name>.json``, draws its chart and prints its rows. A new scenario (the HTTP API ones, when the API
lands) is one module here with a ``SCENARIO`` and one line in ``ALL``; ``needs`` says which parts of the stack it
drives, so the runner can tell the reader what it measured.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

Size = Literal["tiny", "full"]
Row = tuple[str, str, str]  # what, value, goal or note


@dataclass
class Context:
    """What a scenario is run with."""

    size: Size
    work_dir: Path  # a fresh temporary folder, removed afterwards
    out_dir: Path  # where results and charts go
    read_model: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)  # scenario-specific overrides from the command line
    console: Console = field(default_factory=Console)

    @property
    def tiny(self) -> bool:
        return self.size == "tiny"

    @property
    def runner(self) -> str:
        """The worker's workflow runner: ``sandboxed`` unless the command line asked otherwise."""
        return str(self.options.get("workflow_runner", "sandboxed"))

    def log(self, message: str) -> None:
        self.console.log(message)


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    run: Callable[[Context], Awaitable[dict[str, Any]]]
    rows: Callable[[dict[str, Any]], list[Row]]
    chart: Callable[[dict[str, Any], Path], bool] | None = None  # draws a PNG; False when there was nothing to draw
    needs: tuple[str, ...] = ("worker", "temporal")  # later: "api" for the HTTP API scenarios
    result_keys: tuple[str, ...] = ()  # the figures every result of this scenario has (the smoke test checks them)


# The order `python -m bench` runs them in.
ALL = ("throughput", "memory", "history", "open_orders", "profile", "api_latency", "dashboard", "messages")


def get(name: str) -> Scenario:
    if name not in ALL:
        raise KeyError(f"no scenario {name!r}; there are: {', '.join(ALL)}")
    module = importlib.import_module(f"bench.scenarios.{name}")
    scenario: Scenario = module.SCENARIO
    return scenario
