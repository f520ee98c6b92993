"""The entity: R-ENT-1 (certificate of change), R-ENT-2 (name changes per province), R-ENT-3 (type switches)."""

from __future__ import annotations

from activities.validation.context import ValidationContext, place, same_person
from activities.validation.findings import Findings
from models.order import ChangeField, EntityType
from models.provinces import SwitchPolicy
from models.stages import WaitingOn
from models.state import PendingAction


def name_change_needs_a_certificate(ctx: ValidationContext) -> Findings:
    """R-ENT-1. A change of the entity's name (or credit code: DOMAIN.md's document table asks the same for both)
    needs a certificate of change from the business administration. The certificate is collected with the other
    documents, so this is a pending action for the applicant, not a refusal: validation cannot see documents, and
    the document matrix lists the certificate itself."""
    found = Findings()
    fields = (ChangeField.ENTITY_NAME, ChangeField.ENTITY_CREDIT_CODE)
    changed = [c.field for c in ctx.order.changes if c.field in fields]
    if changed:
        what = " and ".join(
            sorted({"name" if f is ChangeField.ENTITY_NAME else "unified social credit code" for f in changed})
        )
        found.pending_actions.append(
            PendingAction(
                code="provide_change_certificate",
                description=(
                    f"the entity's {what} changes: upload the certificate of change issued by the business "
                    "administration, with the new business licence"
                ),
                owner=WaitingOn.APPLICANT,
                rule_id="R-ENT-1",
            )
        )
    return found


def province_allows_name_change(ctx: ValidationContext) -> Findings:
    """R-ENT-2. Whether an entity-name change is allowed comes from the province table, not from code."""
    found = Findings()
    fact = ctx.rules.entity_name_change_allowed
    if fact.value:
        return found
    for i, _ in ctx.changes(ChangeField.ENTITY_NAME):
        found.refuse(
            "R-ENT-2",
            f"changes[{i}].field",
            f"{place(ctx.rules.province)} does not allow changing the entity's name by modification {fact.cite}",
            "file anew under the new name, then cancel the old filing",
        )
    return found


def entity_type_switch_is_allowed(ctx: ValidationContext) -> Findings:
    """R-ENT-3. Enterprise → personal and personal → enterprise follow the province table (refused, allowed, or
    in Henan allowed only when the person of the individual filing is the company's legal representative: the
    entity's person in charge after the order must be that same person — same ID — and be marked as the legal
    representative). Other type changes are not covered by DOMAIN.md and pass."""
    found = Findings()
    old = ctx.order.record.entity.entity_type
    for i, change in ctx.changes(ChangeField.ENTITY_TYPE):
        if change.new_value is None or change.new_value.strip() not in {t.value for t in EntityType}:
            continue  # R-FMT-1
        new = EntityType(change.new_value.strip())
        fact = ctx.rules.type_switch(old, new)
        if fact is None or fact.value is SwitchPolicy.ALLOWED:
            continue
        province = place(ctx.rules.province)
        if fact.value is SwitchPolicy.FORBIDDEN:
            found.refuse(
                "R-ENT-3",
                f"changes[{i}].new_value",
                f"{province} does not allow a {old.value} filing to become a {new.value} filing {fact.cite}",
                f"file anew as a {new.value} entity, then cancel this filing",
            )
            continue
        filer = ctx.order.record.entity.person_in_charge
        person = ctx.filing.entity.person
        if not (person.person.is_legal_representative and same_person(person.person, filer)):
            found.refuse(
                "R-ENT-3",
                person.at("is_legal_representative"),
                f"{province} allows a {old.value} filing to become a {new.value} filing only when the person of "
                f"the individual filing is the company's legal representative {fact.cite}",
                "keep the individual as the entity's person in charge and mark them as the legal representative "
                "(they must be the company's legal representative), or file anew",
            )
    return found
