"""The baseline workflow's input, state and message (kept outside the sandbox, like ``workflows/inputs.py``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from models.stages import Stage
from models.timing import TimingPolicy


class BaselineInput(BaseModel):
    """The order's shape: how many documents, and how long each wait lasts before its timer would fire (the
    order's own timing, so a timer fires in the baseline exactly when it would in the order)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str
    documents: int = 3
    collection_wait: timedelta = timedelta(seconds=20)
    confirmation_wait: timedelta = timedelta(minutes=5)
    initial_review_wait: timedelta = timedelta(seconds=20)
    sms_window: timedelta = timedelta(minutes=2)
    review_due: timedelta = timedelta(minutes=5)

    @classmethod
    def like(cls, timing: TimingPolicy, documents: int = 3) -> BaselineInput:
        """The shape of an order with ``documents`` documents under ``timing``. Business-day waits are taken as
        calendar days at the policy's scale: they only have to outlast the order, as the order's do."""
        day = timedelta(days=1) * timing.business_day_scale
        return cls(
            order_id="template",
            documents=documents,
            collection_wait=min(timing.reminder_interval, timing.collection_idle_limit),
            confirmation_wait=timing.confirmation_idle_limit,
            initial_review_wait=day * timing.initial_review_business_days,
            sms_window=timing.sms_window,
            review_due=day * timing.review_business_days,
        )


class BaselineState(BaseModel):
    order_id: str
    stage: Stage
    document_keys: list[str]


class BaselineUpload(BaseModel):
    key: str
