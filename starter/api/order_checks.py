"""Identifier checks at the door (R-FMT-1): a malformed identifier anywhere in a placed order is refused before a
workflow starts, with the field path, the rule id and the fix.

The checks read the raw JSON body, not a parsed :class:`~models.order.PlaceOrder`, so they also run when the body's
shape is wrong elsewhere: one 422 then lists every invalid field, shape and identifier alike. Warnings (a credit code
failing only its check character, a resident ID from an unknown region) are not refusals here; the workflow's
validation reports them on the order. The other rules (R-LOCK-1, R-DOM-*, R-ENT-*, …) are the workflow's to decide.

Three checks here go beyond the identifier algorithms, for text a person reads and compares: digits must be 0-9 (a
filing number written with full-width digits would name another workflow than the same number in ASCII, and get
round R-LOCK-1); a domain label may not mix scripts that look alike (Latin with Cyrillic: ``pаypal.com``), as no
registry lets one be registered; and a name may hold no control or invisible formatting characters (zero-width
joiners, right-to-left overrides) nor emoji, so a name reads as it is written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

import idna

from models.identifiers import (
    RULE_ID,
    DomainError,
    check_domain,
    check_email,
    check_filing_number,
    check_id_number,
    check_mobile,
    check_uscc,
    normalise_domain,
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
        found += _digits(check_filing_number(number, "filing_number", kind=kind), number, "filing_number")
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
        at = "record.entity_filing_number"
        found += _digits(check_filing_number(number, at, kind=OrderKind.ENTITY), number, at)
    entity = record.get("entity")
    if isinstance(entity, Mapping):
        id_type = _enum(IdType, entity.get("id_type", IdType.BUSINESS_LICENCE.value))
        if id_type is not None and isinstance(id_number := entity.get("id_number"), str):
            at = "record.entity.id_number"
            found += _digits(check_id_number(id_type, id_number, at, today=today).violations, id_number, at)
        found += _name(entity.get("name"), "record.entity.name")
        found += _person(entity.get("person_in_charge"), "record.entity.person_in_charge", today)
    services = record.get("services")
    if isinstance(services, list):
        for i, service in enumerate(services):
            if not isinstance(service, Mapping):
                continue
            at = f"record.services[{i}]"
            if isinstance(number := service.get("filing_number"), str):
                kind = _enum(OrderKind, service.get("kind"))
                found += _digits(
                    check_filing_number(number, f"{at}.filing_number", kind=kind), number, f"{at}.filing_number"
                )
            found += _name(service.get("name"), f"{at}.name")
            domains = service.get("domains")
            if isinstance(domains, list):
                for j, domain in enumerate(domains):
                    if isinstance(domain, str):
                        found += _domain(domain, f"{at}.domains[{j}]")
            found += _person(service.get("person_in_charge"), f"{at}.person_in_charge", today)
    return found


def _change(change: Mapping[str, Any], at: str, today: date) -> list[Violation]:
    found: list[Violation] = []
    if isinstance(service := change.get("service"), str):
        found += _digits(check_filing_number(service, f"{at}.service"), service, f"{at}.service")
    found += _person(change.get("new_person"), f"{at}.new_person", today)
    value = change.get("new_value")
    if not isinstance(value, str) or not value.strip():
        return found  # a missing value is the workflow's to report, with the change's other requirements
    match _enum(ChangeField, change.get("field")):
        case ChangeField.CONTACT_MOBILE:
            found += _digits(check_mobile(value, f"{at}.new_value"), value, f"{at}.new_value")
        case ChangeField.CONTACT_EMAIL:
            found += check_email(value, f"{at}.new_value")
        case ChangeField.ENTITY_CREDIT_CODE:
            found += check_uscc(value, f"{at}.new_value").violations
        case ChangeField.DOMAIN_DELETE:
            found += _domain(value, f"{at}.new_value")
        case ChangeField.ENTITY_NAME | ChangeField.SERVICE_NAME:
            found += _name(value, f"{at}.new_value")
        case _:
            pass
    return found


def _person(person: Any, at: str, today: date) -> list[Violation]:
    if not isinstance(person, Mapping):
        return []
    found: list[Violation] = _name(person.get("name"), f"{at}.name")
    id_type = _enum(IdType, person.get("id_type", IdType.RESIDENT_ID_CARD.value))
    if id_type is not None and isinstance(id_number := person.get("id_number"), str):
        checked = check_id_number(id_type, id_number, f"{at}.id_number", today=today).violations
        found += _digits(checked, id_number, f"{at}.id_number")
    if isinstance(mobile := person.get("mobile"), str):
        found += _digits(check_mobile(mobile, f"{at}.mobile"), mobile, f"{at}.mobile")
    if isinstance(emergency := person.get("emergency_mobile"), str) and emergency.strip():
        found += _digits(check_mobile(emergency, f"{at}.emergency_mobile"), emergency, f"{at}.emergency_mobile")
    if isinstance(email := person.get("email"), str):
        found += check_email(email, f"{at}.email")
    return found


def _enum(cls: type[E], value: Any) -> E | None:
    try:
        return cls(value)
    except ValueError:
        return None


# ------------------------------------------------------------------------------------- text a person reads


def _digits(found: list[Violation], value: str, field: str) -> list[Violation]:
    """``found`` (the field's own check), or, when that passed, a refusal of digits other than 0-9: Python's
    ``\\d`` and int() take full-width and other scripts' digits, so the algorithms alone let them through."""
    if found:
        return found
    odd = "".join(dict.fromkeys(ch for ch in value if ch.isdigit() and not ch.isascii()))
    if not odd:
        return []
    return [
        Violation(
            rule_id=RULE_ID,
            field=field,
            message=f"{value!r} has digits other than 0-9 ({odd}): full-width digits or another script's",
            fix="type the number with the digits 0-9",
        )
    ]


# Scripts a registry lets share a label: Han with kana (Japanese) or with hangul (Korean), either with a-z (the
# CNNIC, JPRS and KISA tables). Any other mix is refused: Latin with Cyrillic or Greek is how look-alikes are made.
_HAN_MIXES = (
    frozenset({"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "LATIN"}),
    frozenset({"CJK", "HANGUL", "LATIN"}),
)


def _script(ch: str) -> str:
    # The first word of a letter's Unicode name is its script for every script a domain label can hold
    # ("CYRILLIC SMALL LETTER A", "CJK UNIFIED IDEOGRAPH-4F8B"): close enough to UTS #39 for this one question.
    return unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]


def _domain(value: str, field: str) -> list[Violation]:
    """The domain's own check, then: nothing invisible, and no label mixing scripts no registry lets a label mix."""
    found = check_domain(value, field)
    if found:
        return found
    # IDNA drops some invisible characters (a zero-width space) and accepts the rest: the filing would still hold them.
    invisible = [f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) in ("Cc", "Cf")]
    if invisible:
        return [
            Violation(
                rule_id=RULE_ID,
                field=field,
                message=f"{value!r} holds invisible characters ({', '.join(dict.fromkeys(invisible))})",
                fix="type the domain again: the name as registered, without invisible characters",
            )
        ]
    try:
        labels = idna.decode(normalise_domain(value)).split(".")  # xn-- labels too, as the letters they stand for
    except (idna.IDNAError, DomainError, UnicodeError):
        return []  # check_domain accepted it; nothing more to say
    for label in labels:
        scripts = {_script(ch) for ch in label if unicodedata.category(ch).startswith("L")}
        if len(scripts) > 1 and not any(scripts <= allowed for allowed in _HAN_MIXES):
            return [
                Violation(
                    rule_id=RULE_ID,
                    field=field,
                    message=f"{value!r} mixes alphabets in the label {label!r} ({', '.join(sorted(scripts)).lower()}): "
                    "letters that look alike but are not the same",
                    fix="type the domain in one alphabet (a Chinese domain may mix Chinese characters with a-z)",
                )
            ]
    return []


# Control characters, invisible formatting (zero-width joiners, bidi overrides, BOM), surrogates, private-use and
# unassigned code points, line and paragraph separators, and symbols (emoji).
_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "So"})


def _name(value: Any, field: str) -> list[Violation]:
    """A name as a person reads it: nothing invisible, no control characters, no emoji."""
    if not isinstance(value, str):
        return []
    odd = list(dict.fromkeys(ch for ch in value if unicodedata.category(ch) in _NOT_IN_NAMES))
    if not odd:
        return []
    shown = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, '(unnamed)')}" for ch in odd[:5])
    return [
        Violation(
            rule_id=RULE_ID,
            field=field,
            message=f"the name holds characters that are invisible, control characters or symbols: {shown}",
            fix="type the name as it is written on the ID document or business licence",
        )
    ]
