"""``validate``: run every rule on an order and report everything found, at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from activities.validation.catalogue import CHECKS
from activities.validation.context import context_for
from activities.validation.findings import Findings
from models.activity_io import ValidationResult
from models.order import PlaceOrder
from models.provinces import TABLE, ProvinceTable


def validate(
    order: PlaceOrder,
    as_of: datetime,
    domain_expiry: Mapping[str, datetime | None],
    *,
    table: ProvinceTable | None = None,
) -> ValidationResult:
    """Check ``order`` against every rule as of ``as_of`` (a naive instant is taken as UTC).

    ``domain_expiry`` maps each domain (any spelling: ``例子.中国`` or its A-label) to its expiry instant, or None
    when the registry says it is not registered; a domain missing from the map is reported as a warning. Use
    :func:`activities.validation.context.domains_on_order` for the domains to look up. ``table`` replaces the
    packaged province table (tests).

    Pure and deterministic: no I/O, no clock. Every violation of every rule is reported together; identical
    findings are reported once. The order is valid when there are no violations; warnings and pending actions
    do not refuse it."""
    ctx = context_for(order, as_of, domain_expiry, table or TABLE)
    found = Findings()
    for _, check in CHECKS:
        found.extend(check(ctx))
    return ValidationResult(
        violations=list(dict.fromkeys(found.violations)),
        warnings=list(dict.fromkeys(found.warnings)),
        pending_actions=list(dict.fromkeys(found.pending_actions)),
    )
