"""Log lines carry the order and workflow ids and no personal data (starter/logs.py)."""

from __future__ import annotations

import io
import json
import logging

from models.order import ChangeField
from models.stages import Stage
from starter.logs import JsonFormatter, MaskingFilter, OrderContextFilter, mask, order_context
from tests.workflows.driver import Driver, new_order


def test_mobiles_id_numbers_credit_codes_and_emails_are_masked() -> None:
    line = mask("call 13800138000 or +8613900139000, id 11010519491231002X, uscc 91350100M000100Y43, a@b.example.com")
    for secret in ("13800138000", "8613900139000", "11010519491231002X", "91350100M000100Y43", "a@b.example.com"):
        assert secret not in line
    assert "138****8000" in line and "110105********002X" in line
    assert mask("order order-10000042 at 2026-11-28 stage sms_verification") == (
        "order order-10000042 at 2026-11-28 stage sms_verification"
    )


def capture() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(OrderContextFilter())
    handler.addFilter(MaskingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.logs.{id(out)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, out


def test_json_lines_carry_order_and_workflow_ids_and_mask_arguments_and_exceptions() -> None:
    logger, out = capture()
    with order_context("order-1", "icp-filing-beijing-12345678"):
        logger.info("texting %s", "13800138000")
        try:
            raise ValueError("bad id 11010519491231002X")
        except ValueError:
            logger.exception("failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["order_id"] == "order-1" and first["workflow_id"] == "icp-filing-beijing-12345678"
    assert first["message"] == "texting 138****8000"
    assert "11010519491231002X" not in second["exception"]


async def test_activity_log_lines_name_their_order(temporal_env, orders, stack) -> None:  # type: ignore[no-untyped-def]
    """The worker's interceptor puts the order id of each activity into the logging context."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    keep.addFilter(OrderContextFilter())
    logging.getLogger().addHandler(keep)
    activity_logger = logging.getLogger("temporalio.activity")
    level = activity_logger.level
    activity_logger.setLevel(logging.INFO)
    try:
        driver = Driver(temporal_env, orders, stack)
        order = new_order(changes=[ChangeField.SERVICE_PERSON_IN_CHARGE])
        await driver.place(order)
        await driver.until_stage(order.order_id, Stage.DOCUMENT_COLLECTION)
        await driver.until_idle(await orders.handle(order.order_id))
    finally:
        logging.getLogger().removeHandler(keep)
        activity_logger.setLevel(level)
    sent = [r for r in records if "sent" in r.getMessage() and getattr(r, "order_id", None) == order.order_id]
    assert sent, "no activity log line carried the order id"
    assert all(getattr(r, "workflow_id", None) == f"icp-filing-{order.filing_key}" for r in sent)
