"""ID documents: R-ID-1 (what an ID-card update may use), R-ID-2 (valid more than 3 months)."""

from __future__ import annotations

import calendar
from datetime import date

from activities.validation.context import ENTITY, ValidationContext, change_target
from activities.validation.findings import Findings
from models.order import ChangeField, IdType

REFUSED_FOR_UPDATE = {
    IdType.HOUSEHOLD_REGISTER: "a household register",
    IdType.TEMPORARY_ID_CARD: "a temporary ID card",
}


def id_update_uses_a_resident_id_card(ctx: ValidationContext) -> Findings:
    """R-ID-1. An ID-card update cannot use a household register or a temporary ID card; a lost card must be
    replaced first (support can grant the applicant an extension meanwhile)."""
    found = Findings()
    for i, change in ctx.changes(ChangeField.ID_CARD_RENEWAL):
        if change.new_person is not None:
            id_type, path = change.new_person.id_type, f"changes[{i}].new_person.id_type"
        else:
            target = change_target(change)
            holder = ctx.filing.entity.person if target == ENTITY else None
            view = ctx.filing.service(target) if target and target != ENTITY else None
            holder = view.person if view is not None else holder
            if holder is None:
                continue  # R-FMT-1
            id_type, path = holder.person.id_type, holder.at("id_type")
        if id_type in REFUSED_FOR_UPDATE:
            found.refuse(
                "R-ID-1",
                path,
                f"an ID-card update cannot use {REFUSED_FOR_UPDATE[id_type]}",
                "use the resident ID card; a lost card must be replaced first — ask support for an extension "
                "while the new card is made",
            )
    return found


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, clamped to the month's end (31 Nov → 30 Nov)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def id_documents_stay_valid(ctx: ValidationContext) -> Findings:
    """R-ID-2. The ID documents of every person in charge the order submits must stay valid for more than 3 months
    after ``as_of`` (China's calendar day): valid until a day strictly after today plus 3 calendar months. A
    document with no end date (long-term, 长期) passes."""
    found = Findings()
    limit = add_months(ctx.today, 3)
    for view in ctx.persons_in_scope():
        until = view.person.id_valid_until
        if until is not None and until <= limit:
            state = "expired on" if until < ctx.today else "is valid only until"
            found.refuse(
                "R-ID-2",
                view.at("id_valid_until"),
                f"the ID document of {view.label} {state} {until.isoformat()}; it must stay valid more than 3 "
                f"months (after {limit.isoformat()})",
                "renew the ID document first and include the renewal (id_card_renewal) in the order",
            )
    return found
