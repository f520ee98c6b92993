"""Identifier checks (R-FMT-1): each identifier by its own algorithm, every failure naming the field and the fix.

Checks never raise on bad input: they return :class:`~models.state.Violation` values that name the field path
(``record.entity.person_in_charge.id_number``), rule R-FMT-1, what was found and what is expected. The checks whose
algorithm can disagree with reality (a unified social credit code failing only its check character, a resident
ID with a region code missing from the code table) return a :class:`Checked` pair so such findings are warnings,
not refusals. Everything here runs offline: the check algorithms come from python-stdnum, mobile numbering and
geography from phonenumbers' bundled metadata, the public suffix list from the publicsuffixlist package.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from typing import NamedTuple

import email_validator
import idna
import phonenumbers
from phonenumbers import geocoder
from publicsuffixlist import PublicSuffixList
from stdnum import numdb
from stdnum.cn import ric, uscc

from models.order import FILING_NUMBER_RE, IdType, OrderKind, Province
from models.state import Violation

RULE_ID = "R-FMT-1"


class Checked(NamedTuple):
    """What a check found: refusals and warnings (a warning is shown to the applicant but lets the order go on)."""

    violations: list[Violation]
    warnings: list[Violation]


def _violation(field: str, message: str, fix: str) -> Violation:
    return Violation(rule_id=RULE_ID, field=field, message=message, fix=fix)


# ---------------------------------------------------------------------------------------------- ICP filing numbers

_FILING_EXAMPLE = "京ICP备12345678号 (entity), 京ICP备12345678号-1 (website), 京ICP备12345678号-1A (app)"


def check_filing_number(value: str, field: str, *, kind: OrderKind | None = None) -> list[Violation]:
    """An ICP filing number: ``{province}ICP备{8 or 10 digits}号``, ``-{n}`` for a website, ``-{n}A`` for an app,
    the province one of the 31 abbreviations. With ``kind``, the number must also be of that kind."""
    m = FILING_NUMBER_RE.match(value.strip())
    if m is None:
        return [
            _violation(
                field,
                f"{value!r} is not an ICP filing number",
                f"expected {{province abbreviation}}ICP备{{8 or 10 digits}}号, e.g. {_FILING_EXAMPLE}",
            )
        ]
    if kind is None:
        return []
    found = OrderKind.ENTITY if m["n"] is None else OrderKind.APP if m["app"] else OrderKind.WEBSITE
    if found is not kind:
        return [
            _violation(
                field,
                f"{value!r} is the filing number of {_a(found)}, not of {_a(kind)}",
                f"expected {_a(kind)}'s filing number: {_FILING_EXAMPLE}",
            )
        ]
    return []


def _a(kind: OrderKind) -> str:
    return {OrderKind.ENTITY: "an entity", OrderKind.WEBSITE: "a website", OrderKind.APP: "an app"}[kind]


# ------------------------------------------------------------------------------ unified social credit code (USCC)

# GB 32100-2015: 18 characters from 0-9 and the capital letters without I, O, Z, S, V.
_USCC_RE = re.compile(r"^[0-9A-HJ-NP-RTUW-Y]{18}$")


def check_uscc(value: str, field: str) -> Checked:
    """A unified social credit code. A malformed code is a violation; a well-formed code whose check character
    does not match is only a warning, because some real codes are reported to fail it (DOMAIN.md)."""
    code = uscc.compact(value)
    if not _USCC_RE.match(code):
        return Checked(
            [
                _violation(
                    field,
                    f"{value!r} is not a unified social credit code",
                    "expected 18 characters from 0-9 and A-Z without I, O, Z, S, V, e.g. 91350100M000100Y43",
                )
            ],
            [],
        )
    expected = uscc.calc_check_digit(code[:17])
    if code[17] != expected:
        return Checked(
            [],
            [
                _violation(
                    field,
                    f"the check character of unified social credit code {code} is {code[17]!r}; "
                    f"GB 32100-2015 gives {expected!r}",
                    "compare the code with the business licence; if it matches the licence, it can stay",
                )
            ],
        )
    return Checked([], [])


# ------------------------------------------------------------------------------------------------------ resident ID


@cache
def _region_codes() -> numdb.NumDB:
    return numdb.get("cn/loc")


def _known_region(code: str) -> bool:
    found = {key for _, props in _region_codes().info(code) for key in props}
    return "county" in found


def check_resident_id(value: str, field: str, *, today: date | None = None) -> Checked:
    """A resident ID number (GB 11643-1999): 17 digits and a check character (0-9 or X), a real birth date (not
    after ``today`` when given). A region code missing from the code table is a warning: the table lags reality
    and a code is kept for life even when the district is later renamed or merged."""
    number = ric.compact(value)
    fix = "expected 18 characters: 17 digits and a check digit or X, e.g. 11010519491231002X"
    if len(number) != 18 or not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return Checked([_violation(field, f"{value!r} is not a resident ID number", fix)], [])
    if number[17] != ric.calc_check_digit(number):
        return Checked(
            [
                _violation(
                    field,
                    f"resident ID number {number} fails its check character",
                    "copy the number again from the ID card: one character is wrong",
                )
            ],
            [],
        )
    try:
        born = ric.get_birth_date(number)
    except ValueError:  # stdnum's InvalidComponent is a ValueError
        return Checked(
            [_violation(field, f"resident ID number {number} holds no valid birth date", fix)],
            [],
        )
    if today is not None and born > today:
        return Checked(
            [_violation(field, f"resident ID number {number} gives a birth date in the future ({born})", fix)],
            [],
        )
    if not _known_region(number[:6]):
        return Checked(
            [],
            [
                _violation(
                    field,
                    f"the region code {number[:6]} of resident ID number {number} is not in the code table",
                    "compare the number with the ID card",
                )
            ],
        )
    return Checked([], [])


# These documents carry the holder's resident ID number, so the number follows GB 11643-1999.
RESIDENT_ID_TYPES = frozenset({IdType.RESIDENT_ID_CARD, IdType.TEMPORARY_ID_CARD, IdType.HOUSEHOLD_REGISTER})


def check_id_number(id_type: IdType, value: str, field: str, *, today: date | None = None) -> Checked:
    """The ID number of an entity or a person, by the algorithm its document type implies. Passports and
    Hong Kong, Macau and Taiwan permits have no public check algorithm and pass as they are."""
    if id_type is IdType.BUSINESS_LICENCE:
        return check_uscc(value, field)
    if id_type in RESIDENT_ID_TYPES:
        return check_resident_id(value, field, today=today)
    return Checked([], [])


# ---------------------------------------------------------------------------------------------- mainland mobiles

_SEPARATORS = re.compile(r"[\s\-()]")
# [0-9], not \d: \d also matches full-width and other scripts' digits (１３８…), which must be refused.
_MOBILE_RE = re.compile(r"^(?:\+86)?(1[3-9][0-9]{9})$")


def normalise_mobile(value: str) -> str | None:
    """The 11-digit national form of a mainland mobile number (``+86 138-0013-8000`` → ``13800138000``), or None
    when it is not one: 11 digits starting with 1 then 3-9, optionally after +86, and a number phonenumbers'
    metadata knows as a mobile number."""
    m = _MOBILE_RE.match(_SEPARATORS.sub("", value))
    if m is None:
        return None
    try:
        parsed = phonenumbers.parse(m[1], "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.number_type(parsed) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None
    return m[1]


def check_mobile(value: str, field: str) -> list[Violation]:
    """A mainland mobile number (``1[3-9]`` and 9 digits, optional ``+86``)."""
    if normalise_mobile(value) is None:
        return [
            _violation(
                field,
                f"{value!r} is not a mainland China mobile number",
                "expected 11 digits starting with 13-19, optionally after +86, e.g. 13800138000",
            )
        ]
    return []


def mobile_province(value: str) -> Province | None:
    """The province a mobile number was issued in, from phonenumbers' offline geocoding data, or None when the
    number is not a mainland mobile or the data does not say (some virtual-operator ranges only say 'China')."""
    national = normalise_mobile(value)
    if national is None:
        return None
    # English descriptions end with the province: "Beijing", "Changzhou, Jiangsu", "Hohhot, Inner Mongolia".
    description = geocoder.description_for_number(phonenumbers.parse(national, "CN"), "en")
    name = description.rsplit(", ", 1)[-1].strip().lower().replace(" ", "_")
    try:
        return Province(name)
    except ValueError:
        return None


def is_local_mobile(value: str, province: Province) -> bool | None:
    """Whether ``value`` is a mobile number of ``province`` (R-PHONE-2); None when the data cannot tell."""
    found = mobile_province(value)
    return None if found is None else found is province


# ------------------------------------------------------------------------------------------------------- domains


@cache
def _public_suffixes() -> PublicSuffixList:
    # The list bundled with the package; ICANN section only, so a name under a private suffix (github.io) is not
    # taken for a registrable domain, and an unknown top-level domain is not accepted.
    return PublicSuffixList(only_icann=True, accept_unknown=False)


class DomainError(ValueError):
    pass


def normalise_domain(value: str) -> str:
    """The ASCII (A-label), lower-case form of a domain name without a trailing dot: ``例子.中国`` →
    ``xn--fsqu00a.xn--fiqs8s``. Raises :class:`DomainError` saying why when the name is not IDNA-encodable."""
    name = value.strip().rstrip(".")
    if not name:
        raise DomainError("the domain name is empty")
    if any(c in name for c in "/:@*? \t"):
        raise DomainError("a domain name has no scheme, path, port, user or wildcard")
    try:
        encoded = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as e:
        raise DomainError(f"not an IDNA-encodable domain name ({e})") from None
    if len(encoded) > 253:
        raise DomainError("longer than 253 characters")
    return encoded.lower()


def registrable_domain(value: str) -> str | None:
    """The registrable domain (public suffix plus one label) ``value`` belongs to, in A-label form, or None."""
    try:
        name = normalise_domain(value)
    except DomainError:
        return None
    found: str | None = _public_suffixes().privatesuffix(name)
    return found


def check_domain(value: str, field: str) -> list[Violation]:
    """A domain as filed: IDNA-encodable, and itself a registrable domain under an ICANN public suffix
    (``example.com.cn``, not ``www.example.com.cn`` nor ``com.cn``): a filing lists the domains one registers."""
    fix = "expected a registered domain such as example.com or example.com.cn (no www., no scheme or path)"
    try:
        name = normalise_domain(value)
    except DomainError as e:
        return [_violation(field, f"{value!r} is not a domain name: {e}", fix)]
    registrable = _public_suffixes().privatesuffix(name)
    if registrable is None:
        return [_violation(field, f"{value!r} is not under a known public suffix, or is a suffix itself", fix)]
    if registrable != name:
        return [_violation(field, f"{value!r} is a subdomain of {registrable}", f"file the domain {registrable}")]
    return []


# -------------------------------------------------------------------------------------------------------- emails


def check_email(value: str, field: str) -> list[Violation]:
    """An email address, checked by syntax only (no DNS look-up)."""
    try:
        email_validator.validate_email(value, check_deliverability=False)
    except email_validator.EmailNotValidError as e:
        return [_violation(field, f"{value!r} is not an email address: {e}", "expected e.g. name@example.com")]
    return []
