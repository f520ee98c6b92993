"""Apply an approved order's changes to the filing record. Pure: the same record and changes give the same result.

Validation (activities/validation) refuses impossible changes before anything is collected; the refusals here are a
last line of defence, so a change that slipped through fails loudly instead of corrupting the record on file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

from models.order import Change, ChangeField, Entity, EntityType, FilingRecord, Person, Service


class ChangeNotApplicable(ValueError):
    """A change that cannot be applied to the record; ``rule_id`` names the domain rule it breaks, if any."""

    def __init__(self, change: Change, message: str, rule_id: str | None = None) -> None:
        prefix = f"{rule_id}: " if rule_id else ""
        target = f" on {change.service}" if change.service else ""
        super().__init__(f"{prefix}cannot apply {change.field.value}{target}: {message}")
        self.change = change
        self.rule_id = rule_id


def apply_changes(record: FilingRecord, changes: list[Change]) -> FilingRecord:
    """The record as it stands once ``changes`` are applied, in order. ``record`` itself is not modified.

    List-valued changes (IP addresses, platforms, access information) take ``new_value`` as items separated by
    commas, semicolons or whitespace and replace the whole list. Raises :class:`ChangeNotApplicable` for changes
    the domain forbids (province, adding or changing a domain, deleting the last domain) or that lack a value.
    """
    for change in changes:
        record = _apply_one(record, change)
    return record


def _apply_one(record: FilingRecord, change: Change) -> FilingRecord:
    f = ChangeField
    match change.field:
        case f.PROVINCE:
            raise ChangeNotApplicable(change, "a filing cannot move province; file anew there", "R-PROV-1")
        case f.DOMAIN_ADD | f.DOMAIN_CHANGE:
            raise ChangeNotApplicable(change, "domains cannot be added or changed by modification", "R-DOM-1")
        case f.ENTITY_NAME:
            return _entity(record, name=_value(change))
        case f.ENTITY_CREDIT_CODE:
            return _entity(record, id_number=_value(change))
        case f.ENTITY_ADDRESS:
            return _entity(record, address=_value(change))
        case f.ENTITY_TYPE:
            try:
                entity_type = EntityType(_value(change))
            except ValueError as e:
                raise ChangeNotApplicable(change, f"unknown entity type {change.new_value!r}") from e
            return _entity(record, entity_type=entity_type)
        case f.ENTITY_PERSON_IN_CHARGE:
            return _entity(record, person_in_charge=_person(change))
        case f.SERVICE_PERSON_IN_CHARGE:
            return _service(record, change, person_in_charge=_person(change))
        case f.CONTACT_MOBILE:
            mobile = _value(change)
            return _update_person(record, change, lambda p: p.model_copy(update={"mobile": mobile}))
        case f.CONTACT_EMAIL:
            email = _value(change)
            return _update_person(record, change, lambda p: p.model_copy(update={"email": email}))
        case f.ID_CARD_RENEWAL:
            return _renew_id(record, change)
        case f.SERVICE_NAME:
            return _service(record, change, name=_value(change))
        case f.SERVICE_CONTENT_CATEGORY:
            return _service(record, change, content_category=_value(change))
        case f.SERVICE_LANGUAGE:
            return _service(record, change, language=_value(change))
        case f.SERVICE_IP | f.SERVICE_ACCESS:
            # The access information on record is where the service is hosted: its IP addresses.
            return _service(record, change, ip_addresses=_items(change))
        case f.SERVICE_PLATFORMS:
            return _service(record, change, platforms=_items(change))
        case f.DOMAIN_DELETE:
            return _delete_domain(record, change)
    raise ChangeNotApplicable(change, "unknown change")  # pragma: no cover - the match above is exhaustive


def _value(change: Change) -> str:
    if change.new_value is None or not change.new_value.strip():
        raise ChangeNotApplicable(change, "new_value is required")
    return change.new_value.strip()


def _items(change: Change) -> list[str]:
    return [item for item in re.split(r"[\s,;，；]+", _value(change)) if item]


def _person(change: Change) -> Person:
    if change.new_person is None:
        raise ChangeNotApplicable(change, "new_person is required")
    return change.new_person


def _entity(record: FilingRecord, **update: object) -> FilingRecord:
    entity: Entity = record.entity.model_copy(update=update)
    return record.model_copy(update={"entity": entity})


def _find_service(record: FilingRecord, change: Change) -> Service:
    if change.service is None:
        raise ChangeNotApplicable(change, "the change must name the website or app it applies to")
    service = record.service(change.service)
    if service is None:
        raise ChangeNotApplicable(change, "no such website or app on this filing")
    return service


def _replace_service(record: FilingRecord, new: Service) -> FilingRecord:
    services = [new if s.filing_number == new.filing_number else s for s in record.services]
    return record.model_copy(update={"services": services})


def _service(record: FilingRecord, change: Change, **update: object) -> FilingRecord:
    return _replace_service(record, _find_service(record, change).model_copy(update=update))


def _update_person(record: FilingRecord, change: Change, edit: Callable[[Person], Person]) -> FilingRecord:
    """Edit the entity's person in charge, or the named service's when ``change.service`` is set."""
    if change.service is None:
        return _entity(record, person_in_charge=edit(record.entity.person_in_charge))
    service = _find_service(record, change)
    return _replace_service(record, service.model_copy(update={"person_in_charge": edit(service.person_in_charge)}))


def _renew_id(record: FilingRecord, change: Change) -> FilingRecord:
    """A renewed ID card belongs to a person, not a role: every role that person holds on the filing gets it."""
    if change.service is None:
        holder = record.entity.person_in_charge
    else:
        holder = _find_service(record, change).person_in_charge
    if change.new_person is not None:
        renewed = {
            "id_type": change.new_person.id_type,
            "id_number": change.new_person.id_number,
            "id_valid_until": change.new_person.id_valid_until,
        }
    else:
        try:
            renewed = {"id_valid_until": date.fromisoformat(_value(change))}
        except ValueError as e:
            raise ChangeNotApplicable(change, "new_value must be the new expiry date (YYYY-MM-DD)") from e

    def renew(person: Person) -> Person:
        if person.id_type is holder.id_type and person.id_number == holder.id_number:
            return person.model_copy(update=renewed)
        return person

    entity = record.entity.model_copy(update={"person_in_charge": renew(record.entity.person_in_charge)})
    services = [s.model_copy(update={"person_in_charge": renew(s.person_in_charge)}) for s in record.services]
    return record.model_copy(update={"entity": entity, "services": services})


def _delete_domain(record: FilingRecord, change: Change) -> FilingRecord:
    service = _find_service(record, change)
    domain = _value(change).lower().rstrip(".")
    remaining = [d for d in service.domains if d.lower().rstrip(".") != domain]
    if len(remaining) == len(service.domains):
        raise ChangeNotApplicable(change, f"{domain} is not on this website")
    if not remaining:
        raise ChangeNotApplicable(change, "the last domain of a website cannot be deleted", "R-DOM-2")
    return _replace_service(record, service.model_copy(update={"domains": remaining}))
