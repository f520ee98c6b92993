"""Identifier checks (R-FMT-1): each identifier by its own algorithm; failures name the field and what is expected.

The property tests compute check characters with DOMAIN.md's own formulas (an oracle independent of the code
under test, which uses python-stdnum).
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.identifiers import (
    check_domain,
    check_email,
    check_filing_number,
    check_id_number,
    check_mobile,
    check_resident_id,
    check_uscc,
    is_local_mobile,
    mobile_province,
    normalise_domain,
    normalise_mobile,
    registrable_domain,
)
from models.order import IdType, OrderKind, Province

FIELD = "record.entity.person_in_charge.id_number"

# -------------------------------------------------------------------------------------------------- resident ID

RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RIC_CHECK = "10X98765432"  # Σ mod 11 → check character (GB 11643-1999, as DOMAIN.md gives it)
REGIONS = ["110105", "310104", "440305", "320102", "510107", "620102", "410105", "430102", "140105", "370102"]


def ric_check(body: str) -> str:
    return RIC_CHECK[sum(int(c) * w for c, w in zip(body, RIC_WEIGHTS, strict=True)) % 11]


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(REGIONS))
    born = draw(st.dates(min_value=date(1930, 1, 1), max_value=date(2010, 12, 31)))
    body = f"{region}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return body + ric_check(body)


def test_r_fmt_1_documented_resident_id_example_is_valid() -> None:
    assert check_resident_id("11010519491231002X", FIELD) == ([], [])
    assert check_resident_id("11010519491231002x", FIELD) == ([], [])  # a lower-case x is the same character


@given(resident_ids())
def test_r_fmt_1_generated_valid_resident_ids_pass(number: str) -> None:
    assert check_resident_id(number, FIELD) == ([], [])


@given(resident_ids(), st.data())
def test_r_fmt_1_every_single_character_corruption_of_a_resident_id_fails(number: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, 17))
    replacement = data.draw(st.sampled_from([c for c in "0123456789X" if c != number[position]]))
    corrupted = number[:position] + replacement + number[position + 1 :]
    violations, _ = check_resident_id(corrupted, FIELD)
    assert violations, corrupted
    assert all(v.rule_id == "R-FMT-1" and v.field == FIELD for v in violations)


@pytest.mark.parametrize(
    "number",
    ["", "1101051949123100", "11010519491231002XX", "A1010519491231002X", "110105194902300021", "1101051949123100-X"],
)
def test_r_fmt_1_malformed_resident_ids_are_refused_with_the_expected_shape(number: str) -> None:
    violations, warnings = check_resident_id(number, FIELD)
    assert len(violations) == 1 and warnings == []
    assert violations[0].field == FIELD
    assert violations[0].fix


def test_r_fmt_1_resident_id_born_in_the_future_is_refused() -> None:
    body = "110105" + "20300101" + "001"
    violations, _ = check_resident_id(body + ric_check(body), FIELD, today=date(2025, 6, 2))
    assert "future" in violations[0].message


def test_r_fmt_1_resident_id_with_an_unknown_region_is_only_a_warning() -> None:
    body = "999999" + "19800101" + "001"
    violations, warnings = check_resident_id(body + ric_check(body), FIELD)
    assert violations == [] and len(warnings) == 1
    assert "region code 999999" in warnings[0].message


# ------------------------------------------------------------------------------------- unified social credit code

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_check(body: str) -> str:
    weights = [3**i % 31 for i in range(17)]  # 3^(i-1) mod 31 for positions 1..17
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, weights, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


@st.composite
def credit_codes(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(st.sampled_from(USCC_ALPHABET), min_size=17, max_size=17)))
    return body + uscc_check(body)


def test_r_fmt_1_documented_credit_code_example_is_valid() -> None:
    assert check_uscc("91350100M000100Y43", "record.entity.id_number") == ([], [])


@given(credit_codes())
def test_r_fmt_1_generated_valid_credit_codes_pass(code: str) -> None:
    assert check_uscc(code, "record.entity.id_number") == ([], [])


@given(credit_codes(), st.data())
def test_r_fmt_1_every_single_character_corruption_of_a_credit_code_is_a_warning(
    code: str, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, 17))
    replacement = data.draw(st.sampled_from([c for c in USCC_ALPHABET if c != code[position]]))
    corrupted = code[:position] + replacement + code[position + 1 :]
    violations, warnings = check_uscc(corrupted, "record.entity.id_number")
    assert violations == [], "a well-formed code failing its check character is not refused"
    assert len(warnings) == 1 and warnings[0].rule_id == "R-FMT-1"
    assert warnings[0].field == "record.entity.id_number"


@pytest.mark.parametrize(
    "code", ["", "91350100M000100Y4", "91350100M000100Y433", "91350100M000100I43", "9135010-M00010OY43"]
)
def test_r_fmt_1_malformed_credit_codes_are_refused(code: str) -> None:
    violations, warnings = check_uscc(code, "changes[0].new_value")
    assert len(violations) == 1 and warnings == []
    assert violations[0].field == "changes[0].new_value"
    assert "18 characters" in violations[0].fix


def test_r_fmt_1_id_number_is_checked_by_its_document_type() -> None:
    assert check_id_number(IdType.BUSINESS_LICENCE, "91350100M000100Y43", "f") == ([], [])
    assert check_id_number(IdType.RESIDENT_ID_CARD, "11010519491231002X", "f") == ([], [])
    assert check_id_number(IdType.TEMPORARY_ID_CARD, "110105194912310021", "f").violations
    assert check_id_number(IdType.BUSINESS_LICENCE, "11010519491231002X", "f").warnings
    assert check_id_number(IdType.PASSPORT, "E12345678", "f") == ([], [])  # no public algorithm


# ------------------------------------------------------------------------------------------------- mobiles


@pytest.mark.parametrize(
    "number", ["13800138000", "+8613800138000", "+86 138 0013 8000", "138-0013-8000", "19912345678"]
)
def test_r_fmt_1_mainland_mobiles_pass(number: str) -> None:
    assert check_mobile(number, "f") == []
    assert normalise_mobile(number) == number.replace("+86", "").replace(" ", "").replace("-", "")


@pytest.mark.parametrize(
    "number",
    ["", "12800138000", "1380013800", "138001380000", "23800138000", "+8513800138000", "8613800138000", "010-12345678"],
)
def test_r_fmt_1_non_mobiles_are_refused_naming_the_field(number: str) -> None:
    [violation] = check_mobile(number, "record.services[0].person_in_charge.mobile")
    assert violation.rule_id == "R-FMT-1"
    assert violation.field == "record.services[0].person_in_charge.mobile"
    assert "11 digits" in violation.fix


def test_mobile_province_comes_from_offline_geocoding_data() -> None:
    assert mobile_province("13800138000") is Province.BEIJING
    assert mobile_province("+86 13800930001") is Province.GANSU
    assert mobile_province("13800470001") is Province.INNER_MONGOLIA
    assert mobile_province("13800300001") is Province.SHANXI
    assert mobile_province("13800290001") is Province.SHAANXI
    assert mobile_province("13800400001") is None  # the data only says "China"
    assert mobile_province("not a number") is None


def test_is_local_mobile_says_yes_no_or_cannot_tell() -> None:
    assert is_local_mobile("13800930001", Province.GANSU) is True
    assert is_local_mobile("13800138000", Province.GANSU) is False
    assert is_local_mobile("13800400001", Province.GANSU) is None


# ------------------------------------------------------------------------------------------------- domains


@pytest.mark.parametrize(
    "domain", ["example.com", "example.com.cn", "EXAMPLE.cn.", "例子.中国", "xn--fsqu00a.xn--fiqs8s", "bücher.de"]
)
def test_r_fmt_1_registrable_domains_pass(domain: str) -> None:
    assert check_domain(domain, "f") == []


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("www.example.com", "example.com"),
        ("com.cn", "registered domain"),
        ("example", "registered domain"),
        ("example.notatld", "registered domain"),
        ("user.github.io", "github.io"),  # private suffixes are not registries
        ("http://example.com/", "registered domain"),
        ("ex_ample.com", "registered domain"),
        ("-bad.com", "registered domain"),
        ("a..com", "registered domain"),
        ("*.example.com", "registered domain"),
        ("", "registered domain"),
    ],
)
def test_r_fmt_1_other_names_are_refused_saying_what_to_file(domain: str, expected: str) -> None:
    [violation] = check_domain(domain, "record.services[0].domains[0]")
    assert violation.field == "record.services[0].domains[0]"
    assert expected in violation.fix


def test_domains_normalise_to_lower_case_a_labels() -> None:
    assert normalise_domain("例子.中国") == "xn--fsqu00a.xn--fiqs8s"
    assert normalise_domain(" Example.COM. ") == "example.com"
    assert registrable_domain("www.example.com.cn") == "example.com.cn"
    assert registrable_domain("com.cn") is None


# -------------------------------------------------------------------------------------------------- emails


def test_r_fmt_1_emails_are_checked_by_syntax_offline() -> None:
    assert check_email("zhangsan@example.com", "f") == []
    assert check_email("张三@例子.中国", "f") == []
    for bad in ["", "zhangsan", "zhangsan@", "@example.com", "a b@example.com", "a@@example.com"]:
        [violation] = check_email(bad, "record.entity.person_in_charge.email")
        assert violation.field == "record.entity.person_in_charge.email"


# ------------------------------------------------------------------------------------------------ filing numbers


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("京ICP备12345678号", OrderKind.ENTITY),
        ("苏ICP备2021012345号", OrderKind.ENTITY),
        ("粤ICP备12345678号-3", OrderKind.WEBSITE),
        ("陇ICP备2021012345号-12A", OrderKind.APP),
    ],
)
def test_r_fmt_1_filing_numbers_of_each_kind_pass(number: str, kind: OrderKind) -> None:
    assert check_filing_number(number, "filing_number") == []
    assert check_filing_number(number, "filing_number", kind=kind) == []


@pytest.mark.parametrize(
    "number",
    [
        "港ICP备12345678号",
        "京ICP备123456789号",
        "京ICP备1234567号",
        "京ICP证12345678号",
        "京ICP备12345678号-0",
        "京ICP备12345678号-1B",
        "",
    ],
)
def test_r_fmt_1_malformed_filing_numbers_are_refused(number: str) -> None:
    [violation] = check_filing_number(number, "filing_number")
    assert violation.field == "filing_number" and "京ICP备12345678号" in violation.fix


def test_r_fmt_1_filing_number_of_the_wrong_kind_is_refused() -> None:
    [violation] = check_filing_number("京ICP备12345678号-1", "filing_number", kind=OrderKind.APP)
    assert "a website, not of an app" in violation.message


def test_all_31_province_abbreviations_make_filing_numbers() -> None:
    for province in Province:
        assert check_filing_number(f"{province.abbreviation}ICP备12345678号-1", "f", kind=OrderKind.WEBSITE) == []
