"""Search attributes of an order's workflow. None carries personal data (DESIGN.md: personal data stays private)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

ORDER_ID = SearchAttributeKey.for_keyword("IcpOrderId")
STAGE = SearchAttributeKey.for_keyword("IcpStage")
PROVINCE = SearchAttributeKey.for_keyword("IcpProvince")
KIND = SearchAttributeKey.for_keyword("IcpKind")
OVERDUE = SearchAttributeKey.for_bool("IcpOverdue")

ALL = (ORDER_ID, STAGE, PROVINCE, KIND, OVERDUE)


def dev_server_args() -> list[str]:
    """``--search-attribute`` arguments that register these on a Temporal CLI dev server."""
    args: list[str] = []
    for key in ALL:
        args += ["--search-attribute", f"{key.name}={key._metadata_type}"]
    return args
