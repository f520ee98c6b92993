"""Domains: R-DOM-1 (no domain added or changed), R-DOM-2 (never the last domain), R-DOM-3 (registered long
enough), R-DOM-4 (the domain holder follows the entity)."""

from __future__ import annotations

from datetime import timedelta

from activities.validation.context import ValidationContext, change_target, normalise_or_self, place, same_person
from activities.validation.findings import Findings
from models.identifiers import DomainError, normalise_domain
from models.order import ChangeField
from models.stages import WaitingOn
from models.state import PendingAction

F = ChangeField


def domains_are_not_added_or_changed(ctx: ValidationContext) -> Findings:
    """R-DOM-1. A filed website's domain cannot be changed, and no domain can be added by modification."""
    found = Findings()
    for i, change in ctx.changes(F.DOMAIN_ADD, F.DOMAIN_CHANGE):
        verb = "added" if change.field is F.DOMAIN_ADD else "changed"
        found.refuse(
            "R-DOM-1",
            f"changes[{i}].field",
            f"a domain cannot be {verb} by modifying a filing",
            "file a new website for a new domain (a new filing); an old domain can only be deleted",
        )
    return found


def last_domain_is_not_deleted(ctx: ValidationContext) -> Findings:
    """R-DOM-2. A domain can be deleted only when the website keeps at least one; the domain deleted must be one
    of the website's."""
    found = Findings()
    last_deletion: dict[str, int] = {}
    for i, change in ctx.changes(F.DOMAIN_DELETE):
        target = change_target(change)
        view = ctx.filing.service(target) if target else None
        if view is None or change.new_value is None:
            continue  # R-FMT-1 names the missing service or value
        last_deletion[view.service.filing_number] = i
        on_site = {normalise_or_self(d) for d in view.service.domains}
        deleted = normalise_or_self(change.new_value)
        if deleted not in on_site:
            found.refuse(
                "R-DOM-2",
                f"changes[{i}].new_value",
                f"{change.new_value!r} is not a domain of {view.service.filing_number}",
                f"delete one of its domains: {', '.join(view.service.domains) or '(none on record)'}",
            )
    for filing_number, i in last_deletion.items():
        view = ctx.filing.service(filing_number)
        if view is not None and view.service.domains and not list(view.domains()):
            found.refuse(
                "R-DOM-2",
                f"changes[{i}].new_value",
                f"the order would delete every domain of {filing_number}; the last domain cannot be deleted",
                "keep at least one domain, or cancel the website's filing instead",
            )
    return found


def domains_stay_registered(ctx: ValidationContext) -> Findings:
    """R-DOM-3. Every domain the order keeps on the websites it submits must stay registered for the province's
    period after ``as_of`` (3 months = 90 days by default, Shandong more than 45 days): the expiry must fall
    strictly after ``as_of`` plus that many days. An expired or unregistered domain must be renewed first. A domain
    whose expiry could not be looked up is a warning (checked by hand), not a refusal."""
    found = Findings()
    days = ctx.rules.domain_validity_days.value
    limit = ctx.as_of + timedelta(days=days)
    province = place(ctx.rules.province)
    for view in ctx.scope:
        for domain, path in view.domains():
            try:
                normalise_domain(domain)
            except DomainError:
                continue  # R-FMT-1
            known, expires = ctx.expiry(domain)
            if not known:
                found.warn(
                    "R-DOM-3",
                    path,
                    f"the expiry date of {domain} could not be looked up",
                    f"check at the registrar that {domain} stays registered more than {days} days",
                )
            elif expires is None:
                found.refuse(
                    "R-DOM-3",
                    path,
                    f"{domain} is not registered (the registry has no record of it)",
                    f"register or renew {domain} before modifying the filing",
                )
            elif expires <= ctx.as_of:
                found.refuse(
                    "R-DOM-3",
                    path,
                    f"{domain} expired on {expires.date().isoformat()}",
                    f"renew {domain} first, then place the order again",
                )
            elif expires <= limit:
                left = (expires - ctx.as_of).days
                found.refuse(
                    "R-DOM-3",
                    path,
                    f"{domain} expires on {expires.date().isoformat()}, {left} days from now; {province} needs "
                    f"every domain to stay registered more than {days} days",
                    f"renew {domain} so that it expires after {limit.date().isoformat()}",
                )
    return found


def domain_holder_follows_the_entity(ctx: ValidationContext) -> Findings:
    """R-DOM-4. When the entity's name, ID type, ID number or legal representative changes, the holder of each of
    its domains must be updated at the registrar: one pending action per domain for the applicant, not a refusal.
    A legal representative is taken to change when the new person in charge is marked as the legal
    representative and is not the person on record."""
    found = Findings()
    record = ctx.order.record
    what: list[str] = []
    if any(True for _ in ctx.changes(F.ENTITY_NAME)):
        what.append("name")
    if ctx.filing.entity.entity.entity_type is not record.entity.entity_type:
        what.append("ID type")
    if any(True for _ in ctx.changes(F.ENTITY_CREDIT_CODE)):
        what.append("ID number")
    for _, change in ctx.changes(F.ENTITY_PERSON_IN_CHARGE):
        new = change.new_person
        if new is not None and new.is_legal_representative and not same_person(new, record.entity.person_in_charge):
            what.append("legal representative")
            break
    if not what:
        return found
    holder = ctx.filing.entity.entity.name
    for view in ctx.filing.services:
        for domain, _ in view.domains():
            found.pending_actions.append(
                PendingAction(
                    code=f"update_domain_holder:{domain}",
                    description=(
                        f"the entity's {', '.join(what)} changes: update the holder of {domain} at its registrar "
                        f"to match ({holder})"
                    ),
                    owner=WaitingOn.APPLICANT,
                    rule_id="R-DOM-4",
                )
            )
    return found
