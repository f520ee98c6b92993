"""The workflow's own input: the order as placed plus what a continued run carries over."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from models.order import PlaceOrder
from models.state import OrderState

WORKFLOW_TYPE = "ModificationOrderWorkflow"
TASK_QUEUE = "icp-modification"


def workflow_id_for(filing_key: str) -> str:
    """One workflow id per filing entity, so Temporal itself refuses a second in-progress order (R-LOCK-1)."""
    return f"icp-filing-{filing_key}"


class OrderInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order: PlaceOrder
    # Set only on a continued run: the whole state of the order so far (DESIGN.md: continue-as-new carries it whole).
    carried: OrderState | None = None
    # Continue as new past this many history events even before the server suggests it (tests use a small number).
    history_limit: int | None = Field(default=None, ge=50)
