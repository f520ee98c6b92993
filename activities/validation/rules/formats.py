"""R-FMT-1: identifiers checked by their own algorithms, and the order's references and values well-formed."""

from __future__ import annotations

import ipaddress
from datetime import date

from activities.validation.context import (
    ENTITY,
    ENTITY_FIELDS,
    VALUE_FIELDS,
    ValidationContext,
    change_target,
    split_items,
)
from activities.validation.findings import Findings
from models.identifiers import (
    check_domain,
    check_email,
    check_filing_number,
    check_id_number,
    check_mobile,
)
from models.order import FILING_NUMBER_RE, ChangeField, EntityType, OrderKind
from models.state import Violation

F = ChangeField
RULE = "R-FMT-1"


def _entity_part(filing_number: str) -> str | None:
    m = FILING_NUMBER_RE.match(filing_number.strip())
    return None if m is None else f"{m['abbr']}ICP备{m['serial']}号"


def identifiers_are_well_formed(ctx: ValidationContext) -> Findings:
    """R-FMT-1. Every identifier the order submits is checked by its own algorithm (filing numbers, unified social
    credit codes, resident IDs, mainland mobiles, domains, emails, IP addresses), and every change names what it
    needs (its service, its value, its new person). Each failure names the field path and what is expected. A
    credit code failing only its check character, or a resident ID whose region code is not in the code table,
    is a warning."""
    found = Findings()
    _filing_numbers(ctx, found)
    _changes(ctx, found)
    _identifiers(ctx, found)
    return found


def _filing_numbers(ctx: ValidationContext, found: Findings) -> None:
    order, record = ctx.order, ctx.order.record
    entity_number = record.entity_filing_number.strip()
    found.violations += check_filing_number(entity_number, "record.entity_filing_number", kind=OrderKind.ENTITY)
    for i, service in enumerate(record.services):
        path = f"record.services[{i}].filing_number"
        problems = check_filing_number(service.filing_number, path, kind=service.kind)
        found.violations += problems
        if not problems and _entity_part(service.filing_number) != entity_number:
            found.refuse(
                RULE,
                path,
                f"{service.filing_number} is not a website or app of {entity_number}",
                f"expected {entity_number}-n (website) or {entity_number}-nA (app)",
            )
    # PlaceOrder already refuses an unparsable filing number; its kind and its place in the record remain.
    problems = check_filing_number(order.filing_number, "filing_number", kind=order.kind)
    found.violations += problems
    if problems:
        return
    if order.kind is OrderKind.ENTITY:
        if order.filing_number != entity_number:
            found.refuse(
                RULE,
                "filing_number",
                f"the order is for {order.filing_number} but the record is the filing of {entity_number}",
                f"expected {entity_number}",
            )
    elif record.service(order.filing_number) is None:
        found.refuse(
            RULE,
            "filing_number",
            f"{order.filing_number} is not among the record's websites and apps",
            "place the order for a website or app on the record: "
            + (", ".join(s.filing_number for s in record.services) or "(the record lists none)"),
        )


def _changes(ctx: ValidationContext, found: Findings) -> None:
    record = ctx.order.record
    for i, change in enumerate(ctx.order.changes):
        at = f"changes[{i}]"
        target = change_target(change)
        if target is None:
            found.refuse(
                RULE,
                f"{at}.service",
                f"a {change.field.value} change must name the website or app it applies to",
                "set service to the website's or app's filing number",
            )
        elif change.field in ENTITY_FIELDS and change.service is not None:
            found.refuse(
                RULE,
                f"{at}.service",
                f"{change.field.value} changes the entity; it names no website or app",
                "leave service empty",
            )
        elif target != ENTITY and record.service(target) is None:
            found.refuse(
                RULE,
                f"{at}.service",
                f"{target!r} is not a website or app of this filing",
                "expected one of: " + (", ".join(s.filing_number for s in record.services) or "(none on record)"),
            )
        value = (change.new_value or "").strip()
        if change.field in VALUE_FIELDS and not value:
            found.refuse(RULE, f"{at}.new_value", f"a {change.field.value} change needs its new value", "set new_value")
            continue
        if change.field in (F.ENTITY_PERSON_IN_CHARGE, F.SERVICE_PERSON_IN_CHARGE) and change.new_person is None:
            found.refuse(
                RULE,
                f"{at}.new_person",
                f"a {change.field.value} change needs the new person in charge",
                "set new_person",
            )
        if change.field is F.ID_CARD_RENEWAL and change.new_person is None:
            try:
                date.fromisoformat(value)
            except ValueError:
                found.refuse(
                    RULE,
                    f"{at}.new_value",
                    f"an ID-card renewal needs the renewed card: {value!r} is not a date",
                    "set new_person to the person with the renewed ID, or new_value to its new expiry (YYYY-MM-DD)",
                )
        if change.field is F.ENTITY_TYPE and value not in {t.value for t in EntityType}:
            found.refuse(
                RULE,
                f"{at}.new_value",
                f"{value!r} is not an entity type",
                "expected one of: " + ", ".join(t.value for t in EntityType),
            )
        if change.field is F.SERVICE_IP:
            for item in split_items(value):
                try:
                    ipaddress.ip_address(item)
                except ValueError:
                    found.refuse(
                        RULE,
                        f"{at}.new_value",
                        f"{item!r} is not an IP address",
                        "expected IPv4 or IPv6 addresses separated by commas, e.g. 203.0.113.10, 2001:db8::1",
                    )


def _identifiers(ctx: ValidationContext, found: Findings) -> None:
    seen: set[str] = set()

    def add(violations: list[Violation], warnings: list[Violation] | None = None) -> None:
        # A person holding two roles, or a renewal reaching both, would report the same finding twice.
        for v in violations:
            if (key := f"v|{v.field}|{v.message}") not in seen:
                seen.add(key)
                found.violations.append(v)
        for w in warnings or []:
            if (key := f"w|{w.field}|{w.message}") not in seen:
                seen.add(key)
                found.warnings.append(w)

    if ctx.order.kind is OrderKind.ENTITY:
        entity = ctx.filing.entity
        add(*check_id_number(entity.entity.id_type, entity.entity.id_number, entity.at("id_number"), today=ctx.today))
    for person in ctx.persons_in_scope():
        p = person.person
        add(*check_id_number(p.id_type, p.id_number, person.at("id_number"), today=ctx.today))
        add(check_mobile(p.mobile, person.at("mobile")))
        if p.emergency_mobile is not None and p.emergency_mobile.strip():
            # The emergency contact on a filing is a mobile number as well.
            add(check_mobile(p.emergency_mobile, person.at("emergency_mobile")))
        add(check_email(p.email, person.at("email")))
    for view in ctx.scope:
        for domain, path in view.domains():
            add(check_domain(domain, path))
