"""The order under validation: the order, the instant, the province's rules, the domains' expiry dates, and the
filing as the order would leave it — every value with the path of the field it came from, so a refusal names
``changes[2].new_person.mobile`` when the bad number is new and ``record.services[0].person_in_charge.mobile`` when
it was already on file.

How changes are read (the same reading as ``models.changes.apply_changes``):

- entity fields (name, credit code, address, type, person in charge, province) change the entity;
- service fields (``service_*``, ``domain_*``) change the website or app named by ``Change.service``;
- ``id_card_renewal``, ``contact_mobile`` and ``contact_email`` change the entity's person in charge when
  ``Change.service`` is empty, else that website's or app's; a renewed ID card belongs to the person, so it reaches
  every role the same person holds on the filing.

Changes that cannot be applied (a missing value, an unknown service) are skipped here; R-FMT-1 reports them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from models.identifiers import DomainError, normalise_domain
from models.order import (
    Change,
    ChangeField,
    Entity,
    EntityType,
    IdType,
    OrderKind,
    Person,
    PlaceOrder,
    Province,
    Service,
)
from models.provinces import ProvinceRules, ProvinceTable

F = ChangeField
ENTITY_FIELDS = frozenset(
    {
        F.ENTITY_NAME,
        F.ENTITY_CREDIT_CODE,
        F.ENTITY_ADDRESS,
        F.ENTITY_TYPE,
        F.ENTITY_PERSON_IN_CHARGE,
        F.PROVINCE,
    }
)
PERSON_FIELDS = frozenset({F.ID_CARD_RENEWAL, F.CONTACT_MOBILE, F.CONTACT_EMAIL})
SERVICE_FIELDS = frozenset(set(ChangeField) - ENTITY_FIELDS - PERSON_FIELDS)
# DOMAIN.md's order kinds: a website has domains and a hosting IP; an app has access information and platforms.
WEBSITE_ONLY_FIELDS = frozenset({F.DOMAIN_ADD, F.DOMAIN_CHANGE, F.DOMAIN_DELETE, F.SERVICE_IP})
APP_ONLY_FIELDS = frozenset({F.SERVICE_ACCESS, F.SERVICE_PLATFORMS})
VALUE_FIELDS = frozenset(set(ChangeField) - {F.ENTITY_PERSON_IN_CHARGE, F.SERVICE_PERSON_IN_CHARGE, F.ID_CARD_RENEWAL})

ENTITY = "entity"  # the target of an entity change, and the role key of the entity's person in charge
CHINA = timezone(timedelta(hours=8))  # ID cards expire on China's calendar day


def place(province: Province) -> str:
    """A province as messages name it: ``Inner Mongolia``."""
    return province.value.replace("_", " ").title()


def a_kind(kind: OrderKind) -> str:
    """``an entity``, ``a website``, ``an app``."""
    return f"{'a' if kind is OrderKind.WEBSITE else 'an'} {kind.value}"


def change_target(change: Change) -> str | None:
    """``"entity"``, the filing number of the website/app a change applies to, or None when a service change names
    no service."""
    if change.field in ENTITY_FIELDS:
        return ENTITY
    if change.field in PERSON_FIELDS:
        return change.service or ENTITY
    return change.service


def split_items(value: str) -> list[str]:
    """List-valued changes (IP addresses, platforms) separate items by commas, semicolons or whitespace."""
    return [item for item in re.split(r"[\s,;，；]+", value) if item]


def same_person(a: Person, b: Person) -> bool:
    return a.id_type is b.id_type and _compact(a.id_number) == _compact(b.id_number)


def _compact(id_number: str) -> str:
    return re.sub(r"[\s-]", "", id_number).upper()


@dataclass(frozen=True)
class PersonView:
    """A person in charge as the order leaves them. ``role`` is ``"entity"`` or a service's filing number."""

    role: str
    person: Person
    base: str
    overrides: Mapping[str, str] = field(default_factory=dict)

    def at(self, name: str) -> str:
        """The path of the field ``name`` of this person: where its value comes from."""
        return self.overrides.get(name, f"{self.base}.{name}")

    @property
    def label(self) -> str:
        return "the entity's person in charge" if self.role == ENTITY else f"the person in charge of {self.role}"


@dataclass(frozen=True)
class ServiceView:
    service: Service
    index: int  # position in record.services
    person: PersonView
    overrides: Mapping[str, str] = field(default_factory=dict)
    deleted: tuple[tuple[str, str], ...] = ()  # (normalised domain, path of the change that deletes it)

    def at(self, name: str) -> str:
        return self.overrides.get(name, f"record.services[{self.index}].{name}")

    def domains(self) -> Iterator[tuple[str, str]]:
        """(domain as filed, its path) for every domain the order leaves on this service."""
        gone = {d for d, _ in self.deleted}
        for j, domain in enumerate(self.service.domains):
            if normalise_or_self(domain) not in gone:
                yield domain, f"record.services[{self.index}].domains[{j}]"


@dataclass(frozen=True)
class EntityView:
    entity: Entity
    person: PersonView
    overrides: Mapping[str, str] = field(default_factory=dict)

    def at(self, name: str) -> str:
        return self.overrides.get(name, f"record.entity.{name}")


@dataclass(frozen=True)
class ResultingFiling:
    """The filing as the order would leave it."""

    entity: EntityView
    services: tuple[ServiceView, ...]

    def service(self, filing_number: str) -> ServiceView | None:
        return next((s for s in self.services if s.service.filing_number == filing_number), None)


def normalise_or_self(domain: str) -> str:
    """The normalised domain, or the name stripped and lower-cased when it is malformed (R-FMT-1 reports it)."""
    try:
        return normalise_domain(domain)
    except DomainError:
        return domain.strip().lower()


class _Person:
    """A person being edited while changes are applied."""

    def __init__(self, role: str, person: Person, base: str) -> None:
        self.role, self.person, self.base = role, person, base
        self.overrides: dict[str, str] = {}

    def replace(self, person: Person, base: str) -> None:
        self.person, self.base, self.overrides = person, base, {}

    def set(self, path: str, **values: Any) -> None:
        self.person = self.person.model_copy(update=values)
        for name in values:
            self.overrides[name] = path

    def view(self) -> PersonView:
        return PersonView(self.role, self.person, self.base, dict(self.overrides))


_ENTITY_ATTRIBUTE = {F.ENTITY_NAME: "name", F.ENTITY_CREDIT_CODE: "id_number", F.ENTITY_ADDRESS: "address"}
_SERVICE_ATTRIBUTE = {
    F.SERVICE_NAME: "name",
    F.SERVICE_CONTENT_CATEGORY: "content_category",
    F.SERVICE_LANGUAGE: "language",
}


def resulting_filing(order: PlaceOrder) -> ResultingFiling:
    """Apply the order's changes to a copy of its record, remembering where each value came from."""
    record = order.record
    entity_updates: dict[str, Any] = {}
    entity_paths: dict[str, str] = {}
    persons = {ENTITY: _Person(ENTITY, record.entity.person_in_charge, "record.entity.person_in_charge")}
    service_updates: dict[str, dict[str, Any]] = {}
    service_paths: dict[str, dict[str, str]] = {}
    deleted: dict[str, list[tuple[str, str]]] = {}
    for i, s in enumerate(record.services):
        base = f"record.services[{i}].person_in_charge"
        persons[s.filing_number] = _Person(s.filing_number, s.person_in_charge, base)
        service_updates[s.filing_number], service_paths[s.filing_number] = {}, {}
        deleted[s.filing_number] = []

    for i, change in enumerate(order.changes):
        at = f"changes[{i}]"
        value = change.new_value.strip() if change.new_value and change.new_value.strip() else None
        target = change_target(change)
        if target is None or target not in persons:
            continue  # names no service, or one not on record: R-FMT-1
        match change.field:
            case F.ENTITY_NAME | F.ENTITY_CREDIT_CODE | F.ENTITY_ADDRESS if value is not None:
                entity_updates[_ENTITY_ATTRIBUTE[change.field]] = value
                entity_paths[_ENTITY_ATTRIBUTE[change.field]] = f"{at}.new_value"
            case F.ENTITY_TYPE if value in {t.value for t in EntityType}:
                new_type = EntityType(value)
                # No change field sets the entity's ID type: it follows the type (an organisation files with its
                # business licence and credit code, an individual with a personal ID).
                id_type = record.entity.id_type
                if new_type is not EntityType.PERSONAL:
                    id_type = IdType.BUSINESS_LICENCE
                elif id_type is IdType.BUSINESS_LICENCE:
                    id_type = IdType.RESIDENT_ID_CARD
                entity_updates |= {"entity_type": new_type, "id_type": id_type}
                entity_paths |= {"entity_type": f"{at}.new_value", "id_type": f"{at}.new_value"}
            case F.ENTITY_PERSON_IN_CHARGE | F.SERVICE_PERSON_IN_CHARGE if change.new_person is not None:
                persons[target].replace(change.new_person, f"{at}.new_person")
            case F.CONTACT_MOBILE if value is not None:
                persons[target].set(f"{at}.new_value", mobile=value)
            case F.CONTACT_EMAIL if value is not None:
                persons[target].set(f"{at}.new_value", email=value)
            case F.ID_CARD_RENEWAL:
                _renew(persons, persons[target].person, change, at, value)
            case F.SERVICE_NAME | F.SERVICE_CONTENT_CATEGORY | F.SERVICE_LANGUAGE if value is not None:
                service_updates[target][_SERVICE_ATTRIBUTE[change.field]] = value
                service_paths[target][_SERVICE_ATTRIBUTE[change.field]] = f"{at}.new_value"
            case F.SERVICE_IP | F.SERVICE_ACCESS if value is not None:
                service_updates[target]["ip_addresses"] = split_items(value)
                service_paths[target]["ip_addresses"] = f"{at}.new_value"
            case F.SERVICE_PLATFORMS if value is not None:
                service_updates[target]["platforms"] = split_items(value)
                service_paths[target]["platforms"] = f"{at}.new_value"
            case F.DOMAIN_DELETE if value is not None:
                deleted[target].append((normalise_or_self(value), f"{at}.new_value"))
            case _:
                pass  # refused outright (province, domain add/change) or lacking its value: reported by the rules

    services = []
    for i, s in enumerate(record.services):
        view = ServiceView(
            service=s.model_copy(update=service_updates[s.filing_number]),
            index=i,
            person=persons[s.filing_number].view(),
            overrides=service_paths[s.filing_number],
            deleted=tuple(deleted[s.filing_number]),
        )
        services.append(view)
    entity = EntityView(record.entity.model_copy(update=entity_updates), persons[ENTITY].view(), entity_paths)
    return ResultingFiling(entity=entity, services=tuple(services))


def _renew(persons: dict[str, _Person], holder: Person, change: Change, at: str, value: str | None) -> None:
    """A renewed ID card belongs to a person, not a role: every role the same person holds gets it."""
    if change.new_person is not None:
        renewed: dict[str, Any] = {
            "id_type": change.new_person.id_type,
            "id_number": change.new_person.id_number,
            "id_valid_until": change.new_person.id_valid_until,
        }
        paths = {name: f"{at}.new_person.{name}" for name in renewed}
    elif value is not None:
        try:
            renewed = {"id_valid_until": date.fromisoformat(value)}
        except ValueError:
            return  # R-FMT-1
        paths = {"id_valid_until": f"{at}.new_value"}
    else:
        return
    for p in persons.values():
        if same_person(p.person, holder):
            for name, v in renewed.items():
                p.set(paths[name], **{name: v})


@dataclass(frozen=True)
class ValidationContext:
    """Everything a rule may look at. Built once per validation by :func:`context_for`."""

    order: PlaceOrder
    as_of: datetime  # timezone-aware
    rules: ProvinceRules
    domain_expiry: Mapping[str, datetime | None]  # keyed by normalised domain; None: not registered
    filing: ResultingFiling
    table: ProvinceTable  # every province's rules, for rules that look beyond the order's own province

    @property
    def today(self) -> date:
        """The calendar day in China at ``as_of``."""
        return self.as_of.astimezone(CHINA).date()

    @property
    def scope(self) -> tuple[ServiceView, ...]:
        return services_in_scope(self.order, self.filing)

    def persons_in_scope(self) -> list[PersonView]:
        """The persons in charge the order submits: the entity's (entity orders) and those of the services in
        scope. A person holding two roles appears once per role."""
        found = [self.filing.entity.person] if self.order.kind is OrderKind.ENTITY else []
        return found + [s.person for s in self.scope]

    def changes(self, *fields: ChangeField) -> Iterator[tuple[int, Change]]:
        for i, change in enumerate(self.order.changes):
            if change.field in fields:
                yield i, change

    def entity_changes(self) -> list[Change]:
        return [c for c in self.order.changes if change_target(c) == ENTITY]

    def service_changes(self) -> list[Change]:
        return [c for c in self.order.changes if change_target(c) not in (ENTITY, None)]

    def expiry(self, domain: str) -> tuple[bool, datetime | None]:
        """(looked up?, expiry instant or None when not registered)."""
        key = normalise_or_self(domain)
        if key not in self.domain_expiry:
            return False, None
        found = self.domain_expiry[key]
        return True, None if found is None else aware(found)


def services_in_scope(order: PlaceOrder, filing: ResultingFiling) -> tuple[ServiceView, ...]:
    """The websites and apps the order submits: all of the entity's for an entity order (the whole filing is
    re-examined when the entity changes), else the order's own website or app."""
    if order.kind is OrderKind.ENTITY:
        return filing.services
    own = filing.service(order.filing_number)
    return (own,) if own is not None else ()


def aware(instant: datetime) -> datetime:
    """A naive instant is taken as UTC (RDAP dates are UTC; Temporal's workflow.now() is aware)."""
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def context_for(
    order: PlaceOrder,
    as_of: datetime,
    domain_expiry: Mapping[str, datetime | None],
    table: ProvinceTable,
) -> ValidationContext:
    """Raises :class:`models.provinces.UnknownProvince` if the table does not know the order's province."""
    expiry = {normalise_or_self(d): at for d, at in domain_expiry.items()}
    rules = table.rules(order.record.province)
    return ValidationContext(order, aware(as_of), rules, expiry, resulting_filing(order), table)


def domains_on_order(order: PlaceOrder) -> list[str]:
    """Every well-formed domain the order keeps on the websites it submits, normalised (A-label, lower case),
    without duplicates: what R-DOM-3 needs an expiry date for."""
    found: dict[str, None] = {}
    for s in services_in_scope(order, resulting_filing(order)):
        for domain, _ in s.domains():
            try:
                found[normalise_domain(domain)] = None
            except DomainError:
                continue
    return list(found)
