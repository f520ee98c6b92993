"""The worker's SDK metrics, scraped from its Prometheus endpoint, and quantiles of their histograms.

The Temporal runtime reports durations in milliseconds by default. Its default buckets jump from 500 ms to 1 s to
2 s, too coarse to tell whether a p95 passed 1 s, so the worker process asks for finer ones
(``HISTOGRAM_BUCKETS_MS``). Quantiles interpolate linearly inside a bucket, as Prometheus' ``histogram_quantile``
does, and are taken over the difference between two scrapes, so one step of a ramp is measured on its own.
"""

from __future__ import annotations

import math
import re
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

SCHEDULE_TO_START = "temporal_workflow_task_schedule_to_start_latency"
WFT_EXECUTION = "temporal_workflow_task_execution_latency"
WFT_REPLAY = "temporal_workflow_task_replay_latency"
ACTIVITY_SCHEDULE_TO_START = "temporal_activity_schedule_to_start_latency"
ACTIVITY_EXECUTION = "temporal_activity_execution_latency"

_FINE_MS = [
    1,
    2,
    5,
    10,
    20,
    50,
    75,
    100,
    150,
    200,
    300,
    400,
    500,
    650,
    800,
    1000,
    1250,
    1500,
    2000,
    3000,
    5000,
    10000,
    30000,
    60000,
]
HISTOGRAM_BUCKETS_MS: dict[str, list[float]] = {
    name: [float(b) for b in _FINE_MS]
    for name in (SCHEDULE_TO_START, WFT_EXECUTION, WFT_REPLAY, ACTIVITY_SCHEDULE_TO_START, ACTIVITY_EXECUTION)
}

_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Histogram:
    """Cumulative bucket counts (upper bound → count), summed over the label sets that matched."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        return Histogram(
            buckets={le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            count=self.count - earlier.count,
            total=self.total - earlier.total,
        )

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0–1) in the histogram's unit, or None when it holds no observation."""
        if self.count <= 0:
            return None
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for le in sorted(self.buckets):
            n = self.buckets[le]
            if n >= rank:
                if math.isinf(le):
                    return lower_bound  # beyond the last finite bucket: all we can say is "at least"
                width = n - lower_count
                fraction = (rank - lower_count) / width if width > 0 else 1.0
                return lower_bound + (le - lower_bound) * fraction
            lower_bound, lower_count = le, n
        return lower_bound

    def mean(self) -> float | None:
        return self.total / self.count if self.count > 0 else None


Sample = tuple[str, dict[str, str], float]


def parse(text: str) -> list[Sample]:
    samples: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        labels = dict(_LABEL.findall(m.group("labels") or ""))
        samples.append((m.group("name"), labels, float(m.group("value"))))
    return samples


def scrape(url: str, timeout: float = 10) -> list[Sample]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse(response.read().decode())


def histogram(samples: list[Sample], name: str, **match: str) -> Histogram:
    """The histogram ``name`` summed over every label set that has the ``match`` labels."""
    buckets: dict[float, float] = defaultdict(float)
    h = Histogram()
    for sample_name, labels, value in samples:
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        if sample_name == f"{name}_bucket":
            buckets[float(labels["le"])] += value
        elif sample_name == f"{name}_count":
            h.count += value
        elif sample_name == f"{name}_sum":
            h.total += value
    h.buckets = dict(buckets)
    return h


def counter(samples: list[Sample], name: str, **match: str) -> float:
    return sum(
        value
        for sample_name, labels, value in samples
        if sample_name == name and all(labels.get(k) == v for k, v in match.items())
    )
