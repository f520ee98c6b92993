"""Logging for every icpflow process: JSON in production, readable locally; each line carries the order id and
workflow id when it concerns an order, and personal data is masked before anything is written.

Names cannot be recognised by a pattern, so the rule is that code never logs a person's name; the patterns below
catch the identifiers that could slip into a message or an exception text (mobiles, ID numbers, emails).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

# The order an activity (or request) is working on, set by the worker's interceptor and the API.
current_order_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("icpflow_order_id", default=None)
current_workflow_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("icpflow_workflow_id", default=None)

_MASKS: tuple[tuple[re.Pattern[str], Any], ...] = (
    # Resident ID numbers (18 characters, last may be X) and unified social credit codes.
    (re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])"), r"\1********\2"),
    (
        re.compile(r"(?<![0-9A-Za-z])([0-9A-HJ-NP-RTUW-Y]{2}\d{6})[0-9A-HJ-NP-RTUW-Y]{10}(?![0-9A-Za-z])"),
        r"\1**********",
    ),
    # Mainland mobiles, with or without +86.
    (re.compile(r"(?<!\d)((?:\+?86)?1[3-9]\d)\d{4}(\d{4})(?!\d)"), r"\1****\2"),
    # Emails: keep the first character and the domain.
    (re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})"), r"\1***@\2"),
)


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


@contextmanager
def order_context(order_id: str | None, workflow_id: str | None = None) -> Iterator[None]:
    order_token = current_order_id.set(order_id)
    workflow_token = current_workflow_id.set(workflow_id)
    try:
        yield
    finally:
        current_order_id.reset(order_token)
        current_workflow_id.reset(workflow_token)


class OrderContextFilter(logging.Filter):
    """Adds ``order_id`` and ``workflow_id`` to every record: from the context, or from the extras Temporal's
    workflow and activity loggers attach."""

    def filter(self, record: logging.LogRecord) -> bool:
        temporal = getattr(record, "temporal_activity", None) or getattr(record, "temporal_workflow", None) or {}
        record.order_id = getattr(record, "order_id", None) or current_order_id.get()
        record.workflow_id = (
            getattr(record, "workflow_id", None) or current_workflow_id.get() or temporal.get("workflow_id")
        )
        return True


class MaskingFilter(logging.Filter):
    """Masks personal data in the rendered message and any exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "order_id": getattr(record, "order_id", None),
            "workflow_id": getattr(record, "workflow_id", None),
        }
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [f"{k}={v}" for k in ("order_id", "workflow_id") if (v := getattr(record, k, None))]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    """Install icpflow's handler on the root logger (idempotent)."""
    handler = logging.StreamHandler()
    handler.addFilter(OrderContextFilter())
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_icpflow", False):
            root.removeHandler(existing)
    handler._icpflow = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Every HTTP request of the SMS and HTTP clients at INFO would drown the service's own lines.
    for noisy in ("twilio", "httpx", "alembic", "aiosmtpd", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
