"""Order kinds: R-KIND-1 (an entity change is tied to a website or app; an order changes only what its kind
covers) and R-KIND-2 (Jiangsu: one combined order)."""

from __future__ import annotations

from activities.validation.context import (
    APP_ONLY_FIELDS,
    ENTITY,
    PERSON_FIELDS,
    WEBSITE_ONLY_FIELDS,
    ValidationContext,
    a_kind,
    change_target,
    place,
)
from activities.validation.findings import Findings
from models.order import OrderKind


def entity_change_is_tied_to_a_service(ctx: ValidationContext) -> Findings:
    """R-KIND-1. An entity order needs at least one website or app on the record: the provider's form makes the
    applicant open one service even with no edits. We also hold each order to its kind (DOMAIN.md's "order kinds"
    section): a website or app order changes only that website or app, never the entity or another service, and
    a website-only change (domains, IP) cannot target an app nor an app-only one (access, platforms) a website."""
    found = Findings()
    order = ctx.order
    if order.kind is OrderKind.ENTITY and not order.record.services:
        found.refuse(
            "R-KIND-1",
            "record.services",
            "an entity change must be tied to at least one of the entity's websites or apps, and the record lists none",
            "include the entity's websites and apps in the record (the change is saved on one of them)",
        )
    for i, change in enumerate(order.changes):
        target = change_target(change)
        if order.kind is not OrderKind.ENTITY:
            if target == ENTITY:
                hint = (
                    f"; to change this {order.kind.value}'s person in charge, name {order.filing_number} in the "
                    "change's service"
                    if change.field in PERSON_FIELDS
                    else ""
                )
                found.refuse(
                    "R-KIND-1",
                    f"changes[{i}].field",
                    f"{a_kind(order.kind)} order cannot change the entity ({change.field.value})",
                    f"place an entity order for entity changes{hint}",
                )
            elif target is not None and target != order.filing_number:
                found.refuse(
                    "R-KIND-1",
                    f"changes[{i}].service",
                    f"{a_kind(order.kind)} order for {order.filing_number} cannot change {target}",
                    "place one order per website or app, or an entity order",
                )
        service = order.record.service(target) if target not in (None, ENTITY) else None
        if service is None:
            continue
        if service.kind is OrderKind.APP and change.field in WEBSITE_ONLY_FIELDS:
            found.refuse(
                "R-KIND-1",
                f"changes[{i}].field",
                f"{change.field.value} applies to websites; {service.filing_number} is an app",
                "change an app's access information or platforms instead",
            )
        if service.kind is OrderKind.WEBSITE and change.field in APP_ONLY_FIELDS:
            found.refuse(
                "R-KIND-1",
                f"changes[{i}].field",
                f"{change.field.value} applies to apps; {service.filing_number} is a website",
                "change a website's IP addresses instead",
            )
    return found


def jiangsu_takes_combined_orders_only(ctx: ValidationContext) -> Findings:
    """R-KIND-2. Where the province table says ``combined_order_only`` (Jiangsu), there is no entity-only or
    service-only change. A combined order, in terms of our model, is an **entity** order whose changes touch both
    the entity (an entity field, or the entity's person's ID/mobile/email) **and** at least one of its websites or
    apps (a change naming a service on the record). A website or app order is service-only; an entity order
    without a service change is entity-only; an entity order with only service changes is service-only."""
    found = Findings()
    fact = ctx.rules.combined_order_only
    if not fact.value:
        return found
    province = place(ctx.rules.province)
    fix = (
        f"place one entity order for {ctx.order.entity_filing_number} that carries both the entity's changes and "
        "the changes of at least one of its websites or apps"
    )
    if ctx.order.kind is not OrderKind.ENTITY:
        found.refuse(
            "R-KIND-2",
            "kind",
            f"{province} offers no service-only change: {a_kind(ctx.order.kind)} order is refused",
            fix,
        )
        return found
    entity_side = bool(ctx.entity_changes())
    service_side = any(ctx.order.record.service(c.service or "") is not None for c in ctx.service_changes())
    if not entity_side or not service_side:
        missing = "a website or app" if entity_side else "the entity"
        alone = "entity-only" if entity_side else "service-only"
        found.refuse(
            "R-KIND-2",
            "changes",
            f"{province} offers no {alone} change: the combined order must also change {missing}",
            fix,
        )
    return found
