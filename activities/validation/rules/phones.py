"""Phone numbers: R-PHONE-1 (no shared or swapped numbers between roles), R-PHONE-2 (local mobiles)."""

from __future__ import annotations

from activities.validation.context import PersonView, ValidationContext, place, same_person
from activities.validation.findings import Findings
from models.identifiers import mobile_province, normalise_mobile
from models.order import OrderKind


def _number(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return normalise_mobile(value) or value.strip()


def _blame(entity: PersonView, website: PersonView, entity_field: str, website_field: str) -> str:
    """Name the side this order sets, so the applicant fixes what they are changing."""
    if not website.at(website_field).startswith("changes") and entity.at(entity_field).startswith("changes"):
        return entity.at(entity_field)
    return website.at(website_field)


def roles_do_not_share_numbers(ctx: ValidationContext) -> Findings:
    """R-PHONE-1. The entity's person in charge and a website's person in charge may not share a mobile number or
    an emergency number, nor swap them (one's mobile as the other's emergency number).

    Our reading, literal: the rule is about two people, so it applies when the two roles are held by different
    persons (different ID numbers); when one person holds both roles their numbers are naturally the same, and
    DOMAIN.md's SMS step ("one SMS if they share a number") expects that. It applies to websites, as written; an
    app's person in charge is not covered."""
    found = Findings()
    entity = ctx.filing.entity.person
    e_mobile, e_emergency = _number(entity.person.mobile), _number(entity.person.emergency_mobile)
    fix = "give each role its own mobile and emergency numbers (or make the same person hold both roles)"
    for view in ctx.scope:
        if view.service.kind is not OrderKind.WEBSITE or same_person(view.person.person, entity.person):
            continue
        site = view.person
        w_mobile, w_emergency = _number(site.person.mobile), _number(site.person.emergency_mobile)
        name = view.service.filing_number
        if e_mobile is not None and e_mobile == w_mobile:
            found.refuse(
                "R-PHONE-1",
                _blame(entity, site, "mobile", "mobile"),
                f"the entity's person in charge and the person in charge of {name} share the mobile {w_mobile}",
                fix,
            )
        if e_emergency is not None and e_emergency == w_emergency:
            found.refuse(
                "R-PHONE-1",
                _blame(entity, site, "emergency_mobile", "emergency_mobile"),
                f"the entity's person in charge and the person in charge of {name} share the emergency number "
                f"{w_emergency}",
                fix,
            )
        if e_mobile is not None and e_mobile == w_emergency:
            found.refuse(
                "R-PHONE-1",
                _blame(entity, site, "mobile", "emergency_mobile"),
                f"the entity's mobile {e_mobile} is the emergency number of the person in charge of {name}",
                fix,
            )
        if e_emergency is not None and e_emergency == w_mobile:
            found.refuse(
                "R-PHONE-1",
                _blame(entity, site, "emergency_mobile", "mobile"),
                f"the entity's emergency number {e_emergency} is the mobile of the person in charge of {name}",
                fix,
            )
    return found


def mobiles_are_local(ctx: ValidationContext) -> Findings:
    """R-PHONE-2. Where the province table requires a local mobile number (Gansu, Jiangsu, Hunan, Shanxi), every
    person in charge the order submits needs a mobile issued in that province, by phonenumbers' offline geocoding
    data. A number the data cannot place is a warning, not a refusal."""
    found = Findings()
    fact = ctx.rules.local_mobile_required
    if not fact.value:
        return found
    province = ctx.rules.province
    for view in ctx.persons_in_scope():
        mobile = normalise_mobile(view.person.mobile)
        if mobile is None:
            continue  # R-FMT-1
        where = mobile_province(mobile)
        if where is None:
            found.warn(
                "R-PHONE-2",
                view.at("mobile"),
                f"cannot tell where {mobile} ({view.label}) was issued; {place(province)} requires a local mobile",
                f"make sure it is a {place(province)} number",
            )
        elif where is not province:
            found.refuse(
                "R-PHONE-2",
                view.at("mobile"),
                f"the mobile {mobile} of {view.label} is a {place(where)} number; {place(province)} requires a "
                f"local mobile number {fact.cite}",
                f"use a mobile number issued in {place(province)}",
            )
    return found
