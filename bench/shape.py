"""The shape of an order: what its history holds, counted the same way for the real order and the baseline."""

from __future__ import annotations

from collections import Counter
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

E = EventType
# What the baseline must mirror, by the event that starts each.
MIRRORED = {
    "activities": E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    "timers": E.EVENT_TYPE_TIMER_STARTED,
    "signals": E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    "updates": E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    "search_attribute_upserts": E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
}
# A timer is started only when a wait has to wait: one whose message is already there starts none. How many a run
# starts therefore depends on how fast the driver answers, for the order and the baseline alike.
TIMING_DEPENDENT = ("timers",)


async def shape_of(handle: WorkflowHandle[Any, Any]) -> dict[str, int]:
    history = await handle.fetch_history()
    kinds = Counter(e.event_type for e in history.events)
    counts = {name: kinds[event] for name, event in MIRRORED.items()}
    counts["workflow_tasks"] = kinds[E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
    counts["events"] = len(history.events)
    return counts


def compare(pipeline: dict[str, int], baseline: dict[str, int]) -> dict[str, Any]:
    exact = [name for name in MIRRORED if name not in TIMING_DEPENDENT]
    mismatched = [name for name in exact if pipeline[name] != baseline[name]]
    return {
        "pipeline": pipeline,
        "baseline": baseline,
        "matches": not mismatched,
        "mismatched": mismatched,
        "note": "timers are started only by waits that have to wait, so their count follows the driver's pace",
    }
