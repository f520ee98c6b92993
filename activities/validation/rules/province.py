"""R-PROV-1: a filing stays in its province."""

from __future__ import annotations

from activities.validation.context import ValidationContext, place
from activities.validation.findings import Findings
from models.order import FILING_NUMBER_RE, ChangeField, EntityType, Province


def province_does_not_change(ctx: ValidationContext) -> Findings:
    """R-PROV-1. The province of a filing cannot change; that needs a new filing in the target province. Beyond a
    ``province`` change, we refuse two quieter moves: a filing number whose province abbreviation is not the
    record's province, and a new registered address of an organisation that starts with another province's name
    (an organisation files where it is registered)."""
    found = Findings()
    province = ctx.order.record.province
    fix = "file anew with the target province's administration (a new filing), then cancel this one"
    for i, change in ctx.changes(ChangeField.PROVINCE):
        found.refuse(
            "R-PROV-1",
            f"changes[{i}].field",
            f"the province of a filing cannot change (it is {place(province)}, the change asks for "
            f"{change.new_value or 'another'})",
            fix,
        )
    for path, number in (
        ("filing_number", ctx.order.filing_number),
        ("record.entity_filing_number", ctx.order.record.entity_filing_number),
    ):
        m = FILING_NUMBER_RE.match(number.strip())
        if m is not None and m["abbr"] != province.abbreviation:
            found.refuse(
                "R-PROV-1",
                path,
                f"{number} is a filing of {place(Province.from_abbreviation(m['abbr']))} ({m['abbr']}), but the "
                f"record is in {place(province)} ({province.abbreviation})",
                "place the order with the province the filing belongs to",
            )
    if ctx.filing.entity.entity.entity_type is EntityType.PERSONAL:
        return found
    for i, change in ctx.changes(ChangeField.ENTITY_ADDRESS):
        address = (change.new_value or "").strip()
        for other, entry in ctx.table.provinces.items():
            if other is not province and address.startswith(entry.name_zh):
                found.refuse(
                    "R-PROV-1",
                    f"changes[{i}].new_value",
                    f"the new address is in {entry.name_zh} ({place(other)}); the filing is in {place(province)}",
                    fix,
                )
    return found
