"""Identifier checks at the door (R-FMT-1): a malformed identifier anywhere in a placed order is refused before a
workflow starts, with the field path, the rule id and the fix.

The checks read the raw JSON body, not a parsed :class:`~models.order.PlaceOrder`, so they also run when the body's
shape is wrong elsewhere: one 422 then lists every invalid field, shape and identifier alike. Warnings (a credit code
failing only its check character, a resident ID from an unknown region) are not refusals here; the workflow's
validation reports them on the order. The other rules (R-LOCK-1, R-DOM-*, R-ENT-*, …) are the workflow's to decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from models.identifiers import (
    check_domain,
    check_email,
    check_filing_number,
    check_id_number,
    check_mobile,
    check_uscc,
)
from models.order import ChangeField, IdType, OrderKind
from models.state import Violation

E = TypeVar("E", OrderKind, IdType, ChangeField)

CHINA = timezone(timedelta(hours=8))  # an ID card's birth date is a date on China's calendar


def china_today() -> date:
    return datetime.now(CHINA).date()


def identifier_violations(payload: Any, *, today: date | None = None) -> list[Violation]:
    """Every malformed identifier in a PlaceOrder-shaped ``payload`` (parts of the wrong shape are skipped)."""
    if not isinstance(payload, Mapping):
        return []
    today = today or china_today()
    found: list[Violation] = []
    kind = _enum(OrderKind, payload.get("kind"))
    if isinstance(number := payload.get("filing_number"), str):
        found += check_filing_number(number, "filing_number", kind=kind)
    record = payload.get("record")
    if isinstance(record, Mapping):
        found += _record(record, today)
    changes = payload.get("changes")
    if isinstance(changes, list):
        for i, change in enumerate(changes):
            if isinstance(change, Mapping):
                found += _change(change, f"changes[{i}]", today)
    return found


def _record(record: Mapping[str, Any], today: date) -> list[Violation]:
    found: list[Violation] = []
    if isinstance(number := record.get("entity_filing_number"), str):
        found += check_filing_number(number, "record.entity_filing_number", kind=OrderKind.ENTITY)
    entity = record.get("entity")
    if isinstance(entity, Mapping):
        id_type = _enum(IdType, entity.get("id_type", IdType.BUSINESS_LICENCE.value))
        if id_type is not None and isinstance(id_number := entity.get("id_number"), str):
            found += check_id_number(id_type, id_number, "record.entity.id_number", today=today).violations
        found += _person(entity.get("person_in_charge"), "record.entity.person_in_charge", today)
    services = record.get("services")
    if isinstance(services, list):
        for i, service in enumerate(services):
            if not isinstance(service, Mapping):
                continue
            at = f"record.services[{i}]"
            if isinstance(number := service.get("filing_number"), str):
                kind = _enum(OrderKind, service.get("kind"))
                found += check_filing_number(number, f"{at}.filing_number", kind=kind)
            domains = service.get("domains")
            if isinstance(domains, list):
                for j, domain in enumerate(domains):
                    if isinstance(domain, str):
                        found += check_domain(domain, f"{at}.domains[{j}]")
            found += _person(service.get("person_in_charge"), f"{at}.person_in_charge", today)
    return found


def _change(change: Mapping[str, Any], at: str, today: date) -> list[Violation]:
    found: list[Violation] = []
    if isinstance(service := change.get("service"), str):
        found += check_filing_number(service, f"{at}.service")
    found += _person(change.get("new_person"), f"{at}.new_person", today)
    value = change.get("new_value")
    if not isinstance(value, str) or not value.strip():
        return found  # a missing value is the workflow's to report, with the change's other requirements
    match _enum(ChangeField, change.get("field")):
        case ChangeField.CONTACT_MOBILE:
            found += check_mobile(value, f"{at}.new_value")
        case ChangeField.CONTACT_EMAIL:
            found += check_email(value, f"{at}.new_value")
        case ChangeField.ENTITY_CREDIT_CODE:
            found += check_uscc(value, f"{at}.new_value").violations
        case ChangeField.DOMAIN_DELETE:
            found += check_domain(value, f"{at}.new_value")
        case _:
            pass
    return found


def _person(person: Any, at: str, today: date) -> list[Violation]:
    if not isinstance(person, Mapping):
        return []
    found: list[Violation] = []
    id_type = _enum(IdType, person.get("id_type", IdType.RESIDENT_ID_CARD.value))
    if id_type is not None and isinstance(id_number := person.get("id_number"), str):
        found += check_id_number(id_type, id_number, f"{at}.id_number", today=today).violations
    if isinstance(mobile := person.get("mobile"), str):
        found += check_mobile(mobile, f"{at}.mobile")
    if isinstance(emergency := person.get("emergency_mobile"), str) and emergency.strip():
        found += check_mobile(emergency, f"{at}.emergency_mobile")
    if isinstance(email := person.get("email"), str):
        found += check_email(email, f"{at}.email")
    return found


def _enum(cls: type[E], value: Any) -> E | None:
    try:
        return cls(value)
    except ValueError:
        return None
