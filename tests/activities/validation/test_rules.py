"""Every R-* rule of DOMAIN.md, refused and accepted: each test names the rule id it covers."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from activities.validation import validate
from models.activity_io import ValidationResult
from models.order import (
    Change,
    ChangeField,
    Entity,
    EntityType,
    IdType,
    OrderKind,
    PlaceOrder,
    Province,
)
from models.provinces import TABLE, load_table
from tests.factories import (
    AS_OF,
    ENTITY_ID,
    USCC,
    change,
    expiry_for,
    make_order,
    make_person,
    make_record,
    mobile,
)

F = ChangeField


def check(
    order: PlaceOrder, *, days: float = 365, expiry: dict[str, datetime | None] | None = None
) -> ValidationResult:
    return validate(order, AS_OF, expiry if expiry is not None else expiry_for(order, AS_OF, days))


def rule_ids(result: ValidationResult) -> set[str]:
    return {v.rule_id for v in result.violations}


def only(result: ValidationResult, rule_id: str) -> list[str]:
    """The fields the given rule refused, asserting nothing else was refused."""
    assert rule_ids(result) == {rule_id}, result.violations
    return [v.field for v in result.violations]


def website_of(order: PlaceOrder) -> str:
    return next(s.filing_number for s in order.record.services if s.kind is OrderKind.WEBSITE)


def test_factory_orders_of_every_kind_are_valid_in_every_province() -> None:
    for province in Province:
        for kind in (None, OrderKind.ENTITY, OrderKind.WEBSITE, OrderKind.APP):
            if province is Province.JIANGSU and kind is not None:
                continue  # combined orders only (R-KIND-2)
            order = make_order(province=province, kind=kind)
            result = check(order)
            assert result.valid, (province, kind, result.violations)
            assert result.warnings == []


# ------------------------------------------------------------------------------------------------------ R-KIND


def test_r_kind_1_entity_order_without_any_website_or_app_is_refused() -> None:
    order = make_order(kind=OrderKind.ENTITY, record=make_record(services=[]))
    assert only(check(order), "R-KIND-1") == ["record.services"]


def test_r_kind_1_entity_order_tied_to_the_entitys_website_passes() -> None:
    order = make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_ADDRESS])
    assert check(order).valid


def test_r_kind_1_website_order_cannot_change_the_entity_or_another_service() -> None:
    order = make_order(kind=OrderKind.WEBSITE, changes=[F.ENTITY_NAME])
    app = next(s.filing_number for s in order.record.services if s.kind is OrderKind.APP)
    order = order.model_copy(update={"changes": [*order.changes, change(F.SERVICE_NAME, app, new_value="x")]})
    assert only(check(order), "R-KIND-1") == ["changes[0].field", "changes[1].service"]


def test_r_kind_1_website_only_change_cannot_target_an_app() -> None:
    order = make_order(kind=OrderKind.APP, changes=[F.SERVICE_IP])
    assert only(check(order), "R-KIND-1") == ["changes[0].field"]


def test_r_kind_2_jiangsu_refuses_a_service_only_website_order() -> None:
    order = make_order(province=Province.JIANGSU, kind=OrderKind.WEBSITE, changes=[F.SERVICE_NAME])
    result = check(order)
    assert only(result, "R-KIND-2") == ["kind"]
    assert "Jiangsu" in result.violations[0].message


def test_r_kind_2_jiangsu_refuses_an_entity_only_order() -> None:
    order = make_order(province=Province.JIANGSU, kind=OrderKind.ENTITY, changes=[F.ENTITY_ADDRESS])
    result = check(order)
    assert only(result, "R-KIND-2") == ["changes"]
    assert "entity-only" in result.violations[0].message


def test_r_kind_2_jiangsu_refuses_an_entity_order_with_only_service_changes() -> None:
    order = make_order(province=Province.JIANGSU, kind=OrderKind.ENTITY, changes=[F.SERVICE_NAME])
    assert "service-only" in check(order).violations[0].message


def test_r_kind_2_jiangsu_accepts_one_combined_order_of_entity_and_website_changes() -> None:
    order = make_order(
        province=Province.JIANGSU, kind=OrderKind.ENTITY, changes=[F.ENTITY_NAME, F.SERVICE_PERSON_IN_CHARGE]
    )
    assert check(order).valid


def test_r_kind_2_other_provinces_accept_entity_only_and_service_only_orders() -> None:
    assert check(make_order(province=Province.ZHEJIANG, kind=OrderKind.ENTITY, changes=[F.ENTITY_ADDRESS])).valid
    assert check(make_order(province=Province.ZHEJIANG, kind=OrderKind.WEBSITE, changes=[F.SERVICE_NAME])).valid


# ------------------------------------------------------------------------------------------------------- R-DOM


def test_r_dom_1_adding_or_changing_a_domain_is_refused() -> None:
    order = make_order(changes=[F.DOMAIN_ADD, F.DOMAIN_CHANGE])
    assert only(check(order), "R-DOM-1") == ["changes[0].field", "changes[1].field"]


def test_r_dom_1_deleting_a_domain_is_not_an_addition() -> None:
    assert check(make_order(changes=[F.DOMAIN_DELETE])).valid


def test_r_dom_2_deleting_one_of_two_domains_passes() -> None:
    order = make_order(changes=[F.DOMAIN_DELETE])
    result = check(order)
    assert result.valid
    assert order.changes[0].new_value == "example.cn"


def test_r_dom_2_deleting_the_last_domain_is_refused() -> None:
    order = make_order(changes=[F.DOMAIN_DELETE])
    site = website_of(order)
    both = [
        change(F.DOMAIN_DELETE, site, new_value="example.com"),
        change(F.DOMAIN_DELETE, site, new_value="example.cn"),
    ]
    result = check(order.model_copy(update={"changes": both}))
    assert only(result, "R-DOM-2") == ["changes[1].new_value"]
    assert "last domain" in result.violations[0].message


def test_r_dom_2_deleting_a_domain_the_website_does_not_have_is_refused() -> None:
    order = make_order(changes=[F.DOMAIN_DELETE])
    order = order.model_copy(update={"changes": [change(F.DOMAIN_DELETE, website_of(order), new_value="other.com")]})
    assert only(check(order), "R-DOM-2") == ["changes[0].new_value"]


def test_r_dom_3_expired_domain_must_be_renewed_first() -> None:
    order = make_order()
    expiry = expiry_for(order) | {"example.cn": AS_OF - timedelta(days=3)}
    result = check(order, expiry=expiry)
    assert only(result, "R-DOM-3") == ["record.services[0].domains[1]"]
    assert "expired" in result.violations[0].message and "renew" in result.violations[0].fix


def test_r_dom_3_unregistered_domain_is_refused() -> None:
    order = make_order()
    result = check(order, expiry=expiry_for(order) | {"example.com": None})
    assert only(result, "R-DOM-3") == ["record.services[0].domains[0]"]
    assert "not registered" in result.violations[0].message


@pytest.mark.parametrize(
    ("province", "days", "valid"),
    [
        (Province.BEIJING, 89, False),
        (Province.BEIJING, 90, False),
        (Province.BEIJING, 91, True),
        (Province.GUANGDONG, 89, False),
        (Province.GUANGDONG, 91, True),
        (Province.SHANDONG, 44, False),
        (Province.SHANDONG, 45, False),  # "more than 45 days"
        (Province.SHANDONG, 46, True),
    ],
)
def test_r_dom_3_domain_validity_is_3_months_and_more_than_45_days_in_shandong(
    province: Province, days: int, valid: bool
) -> None:
    result = check(make_order(province=province), days=days)
    assert result.valid is valid, result.violations
    if not valid:
        assert rule_ids(result) == {"R-DOM-3"}


def test_r_dom_3_domain_without_a_known_expiry_is_a_warning() -> None:
    order = make_order()
    result = check(order, expiry={"example.com": AS_OF + timedelta(days=400)})
    assert result.valid
    assert [(w.rule_id, w.field) for w in result.warnings] == [("R-DOM-3", "record.services[0].domains[1]")]


def test_r_dom_3_a_domain_being_deleted_need_not_stay_registered() -> None:
    order = make_order(changes=[F.DOMAIN_DELETE])
    assert check(order, expiry=expiry_for(order) | {"example.cn": AS_OF - timedelta(days=1)}).valid


def test_r_dom_3_an_entity_order_checks_every_website_of_the_entity() -> None:
    order = make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_ADDRESS])
    assert rule_ids(check(order, days=30)) == {"R-DOM-3"}


def test_r_dom_4_entity_name_change_asks_to_update_each_domain_holder_without_refusing() -> None:
    order = make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_NAME])
    result = check(order)
    assert result.valid
    holders = [p for p in result.pending_actions if p.rule_id == "R-DOM-4"]
    assert [p.code for p in holders] == ["update_domain_holder:example.com", "update_domain_holder:example.cn"]
    assert "新示例科技有限公司" in holders[0].description


def test_r_dom_4_credit_code_or_legal_representative_change_asks_too() -> None:
    for field in (F.ENTITY_CREDIT_CODE, F.ENTITY_PERSON_IN_CHARGE):
        result = check(make_order(kind=OrderKind.ENTITY, changes=[field]))
        assert result.valid
        assert any(p.rule_id == "R-DOM-4" for p in result.pending_actions), field


def test_r_dom_4_an_address_change_leaves_the_domain_holder_alone() -> None:
    result = check(make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_ADDRESS]))
    assert not [p for p in result.pending_actions if p.rule_id == "R-DOM-4"]


# ------------------------------------------------------------------------------------------------------ R-PROV


def test_r_prov_1_province_change_is_refused() -> None:
    result = check(make_order(kind=OrderKind.ENTITY, changes=[F.PROVINCE]))
    assert only(result, "R-PROV-1") == ["changes[0].field"]
    assert "new filing" in result.violations[0].fix


def test_r_prov_1_filing_number_of_another_province_is_refused() -> None:
    record = make_record(Province.BEIJING)
    moved = record.model_copy(update={"province": Province.SHANGHAI})
    result = check(make_order(record=moved))
    assert "R-PROV-1" in rule_ids(result)
    assert {"filing_number", "record.entity_filing_number"} <= {v.field for v in result.violations}


def test_r_prov_1_organisation_moving_its_address_to_another_province_is_refused() -> None:
    order = make_order(kind=OrderKind.ENTITY, changes=[change(F.ENTITY_ADDRESS, new_value="上海市浦东新区世纪大道1号")])
    assert only(check(order), "R-PROV-1") == ["changes[0].new_value"]


def test_r_prov_1_address_within_the_province_passes() -> None:
    order = make_order(kind=OrderKind.ENTITY, changes=[change(F.ENTITY_ADDRESS, new_value="北京市海淀区中关村大街1号")])
    assert check(order).valid


# ------------------------------------------------------------------------------------------------------- R-ENT


def test_r_ent_1_entity_name_change_needs_a_certificate_of_change_as_a_pending_action() -> None:
    result = check(make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_NAME]))
    assert result.valid
    [certificate] = [p for p in result.pending_actions if p.rule_id == "R-ENT-1"]
    assert certificate.code == "provide_change_certificate"
    assert "certificate of change" in certificate.description


def test_r_ent_1_no_certificate_without_a_name_change() -> None:
    result = check(make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_ADDRESS]))
    assert not [p for p in result.pending_actions if p.rule_id == "R-ENT-1"]


def _table_refusing_name_changes_in(province: Province) -> dict[str, object]:
    data = TABLE.model_dump(mode="json")
    data["provinces"][province.value]["entity_name_change_allowed"] = {"value": False, "source": "doc"}
    return data


def test_r_ent_2_province_table_refusing_name_changes_refuses_the_order() -> None:
    table = load_table(_table_refusing_name_changes_in(Province.BEIJING))
    order = make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_NAME])
    result = validate(order, AS_OF, expiry_for(order), table=table)
    assert only(result, "R-ENT-2") == ["changes[0].field"]
    assert "Beijing" in result.violations[0].message


def test_r_ent_2_name_change_allowed_where_the_table_allows_it() -> None:
    table = load_table(_table_refusing_name_changes_in(Province.BEIJING))
    order = make_order(province=Province.HUBEI, kind=OrderKind.ENTITY, changes=[F.ENTITY_NAME])
    assert validate(order, AS_OF, expiry_for(order), table=table).valid
    assert check(make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_NAME])).valid  # the packaged table


def _personal_order(province: Province, *extra: Change, legal_representative: bool = True) -> PlaceOrder:
    """An individual's filing becoming a company's: type, name and credit code change together."""
    person = make_person(mobile=mobile(province, 8000), emergency_mobile=mobile(province, 8001))
    person = person.model_copy(update={"is_legal_representative": legal_representative})
    entity = Entity(
        name=person.name,
        entity_type=EntityType.PERSONAL,
        id_type=IdType.RESIDENT_ID_CARD,
        id_number=ENTITY_ID,
        person_in_charge=person,
    )
    changes = [
        change(F.ENTITY_TYPE, new_value="enterprise"),
        change(F.ENTITY_NAME, new_value="张三科技有限公司"),
        change(F.ENTITY_CREDIT_CODE, new_value=USCC),
        *extra,
    ]
    return make_order(
        province=province, kind=OrderKind.ENTITY, record=make_record(province, entity=entity), changes=changes
    )


@pytest.mark.parametrize("province", [Province.BEIJING, Province.GANSU, Province.SHANXI])
def test_r_ent_3_personal_to_enterprise_is_refused_in_beijing_gansu_shanxi(province: Province) -> None:
    result = check(_personal_order(province))
    assert only(result, "R-ENT-3") == ["changes[0].new_value"]


def test_r_ent_3_personal_to_enterprise_is_allowed_elsewhere() -> None:
    assert check(_personal_order(Province.GUANGDONG, legal_representative=False)).valid


def test_r_ent_3_henan_allows_personal_to_enterprise_when_the_person_is_the_legal_representative() -> None:
    assert check(_personal_order(Province.HENAN)).valid


def test_r_ent_3_henan_refuses_personal_to_enterprise_when_the_person_is_not_the_legal_representative() -> None:
    result = check(_personal_order(Province.HENAN, legal_representative=False))
    assert only(result, "R-ENT-3") == ["record.entity.person_in_charge.is_legal_representative"]


def test_r_ent_3_henan_refuses_when_someone_else_becomes_the_legal_representative() -> None:
    someone = make_person(
        name="钱七",
        id_number="110101199003070038",
        mobile=mobile(Province.HENAN, 8100),
        emergency_mobile=mobile(Province.HENAN, 8101),
        is_legal_representative=True,
    )
    result = check(_personal_order(Province.HENAN, change(F.ENTITY_PERSON_IN_CHARGE, new_person=someone)))
    assert only(result, "R-ENT-3") == ["changes[3].new_person.is_legal_representative"]


def test_r_ent_3_enterprise_to_personal_is_refused() -> None:
    order = make_order(
        province=Province.GUANGDONG, kind=OrderKind.ENTITY, changes=[change(F.ENTITY_TYPE, new_value="personal")]
    )
    assert "R-ENT-3" in rule_ids(check(order))


# -------------------------------------------------------------------------------------------------------- R-ID


@pytest.mark.parametrize("id_type", [IdType.HOUSEHOLD_REGISTER, IdType.TEMPORARY_ID_CARD])
def test_r_id_1_id_card_update_with_household_register_or_temporary_card_is_refused(id_type: IdType) -> None:
    renewed = make_person(id_type=id_type, id_valid_until=date(2040, 1, 1))
    order = make_order(kind=OrderKind.ENTITY, changes=[change(F.ID_CARD_RENEWAL, new_person=renewed)])
    result = check(order)
    assert only(result, "R-ID-1") == ["changes[0].new_person.id_type"]
    assert "lost card" in result.violations[0].fix and "extension" in result.violations[0].fix


def test_r_id_1_id_card_update_with_a_resident_id_card_passes() -> None:
    renewed = make_person(id_valid_until=date(2040, 1, 1))
    assert check(make_order(kind=OrderKind.ENTITY, changes=[change(F.ID_CARD_RENEWAL, new_person=renewed)])).valid


def test_r_id_2_id_valid_for_less_than_3_months_is_refused() -> None:
    record = make_record()
    site = record.services[0]
    soon = site.person_in_charge.model_copy(update={"id_valid_until": date(2025, 8, 1)})
    record = record.model_copy(
        update={"services": [site.model_copy(update={"person_in_charge": soon}), *record.services[1:]]}
    )
    result = check(make_order(record=record, changes=[F.SERVICE_NAME]))
    assert only(result, "R-ID-2") == ["record.services[0].person_in_charge.id_valid_until"]


@pytest.mark.parametrize(("until", "valid"), [(date(2025, 9, 2), False), (date(2025, 9, 3), True), (None, True)])
def test_r_id_2_id_must_stay_valid_more_than_3_months(until: date | None, valid: bool) -> None:
    # as_of is 2 June 2025: 3 months later is 2 September, so the card must be valid at least until 3 September.
    order = make_order(changes=[F.SERVICE_PERSON_IN_CHARGE])
    person = order.changes[0].new_person
    assert person is not None
    new = order.changes[0].model_copy(update={"new_person": person.model_copy(update={"id_valid_until": until})})
    result = check(order.model_copy(update={"changes": [new]}))
    assert result.valid is valid, result.violations
    if not valid:
        assert only(result, "R-ID-2") == ["changes[0].new_person.id_valid_until"]


def test_r_id_2_renewing_the_card_in_the_same_order_fixes_it() -> None:
    record = make_record()
    person = record.entity.person_in_charge.model_copy(update={"id_valid_until": date(2025, 7, 1)})
    record = record.model_copy(update={"entity": record.entity.model_copy(update={"person_in_charge": person})})
    stale = make_order(kind=OrderKind.ENTITY, record=record, changes=[F.ENTITY_ADDRESS])
    assert only(check(stale), "R-ID-2") == ["record.entity.person_in_charge.id_valid_until"]
    renewed = stale.model_copy(update={"changes": [change(F.ID_CARD_RENEWAL, new_value="2045-07-01")]})
    assert check(renewed).valid


# ----------------------------------------------------------------------------------------------------- R-PHONE


def _website_person(**numbers: str | None) -> ValidationResult:
    order = make_order(changes=[F.SERVICE_PERSON_IN_CHARGE])
    person = order.changes[0].new_person
    assert person is not None
    new = order.changes[0].model_copy(update={"new_person": person.model_copy(update=numbers)})
    return check(order.model_copy(update={"changes": [new]}))


def test_r_phone_1_entity_and_website_persons_sharing_a_mobile_is_refused() -> None:
    result = _website_person(mobile="+86 138 0013 8000")  # the entity's person's mobile, written differently
    assert only(result, "R-PHONE-1") == ["changes[0].new_person.mobile"]


def test_r_phone_1_sharing_an_emergency_number_is_refused() -> None:
    assert only(_website_person(emergency_mobile=mobile(n=8001)), "R-PHONE-1") == [
        "changes[0].new_person.emergency_mobile"
    ]


def test_r_phone_1_swapped_numbers_are_refused() -> None:
    result = _website_person(mobile=mobile(n=8001), emergency_mobile=mobile(n=8000))
    assert sorted(only(result, "R-PHONE-1")) == [
        "changes[0].new_person.emergency_mobile",
        "changes[0].new_person.mobile",
    ]


def test_r_phone_1_distinct_numbers_pass() -> None:
    assert _website_person(mobile=mobile(n=8300), emergency_mobile=mobile(n=8301)).valid


def test_r_phone_1_one_person_holding_both_roles_may_keep_one_number() -> None:
    order = make_order(changes=[F.SERVICE_PERSON_IN_CHARGE])
    same = order.changes[0].model_copy(update={"new_person": order.record.entity.person_in_charge})
    assert check(order.model_copy(update={"changes": [same]})).valid


def test_r_phone_1_does_not_cover_an_apps_person_in_charge() -> None:
    order = make_order(kind=OrderKind.APP, changes=[F.SERVICE_PERSON_IN_CHARGE])
    person = order.changes[0].new_person
    assert person is not None
    shared = order.changes[0].model_copy(update={"new_person": person.model_copy(update={"mobile": mobile(n=8000)})})
    assert check(order.model_copy(update={"changes": [shared]})).valid


@pytest.mark.parametrize("province", [Province.GANSU, Province.JIANGSU, Province.HUNAN, Province.SHANXI])
def test_r_phone_2_local_mobile_provinces_refuse_a_mobile_from_elsewhere(province: Province) -> None:
    order = make_order(province=province)
    target = order.changes[-1]
    assert target.new_person is not None
    foreign = target.new_person.model_copy(update={"mobile": mobile(Province.BEIJING, 8400)})
    order = order.model_copy(
        update={"changes": [*order.changes[:-1], target.model_copy(update={"new_person": foreign})]}
    )
    result = check(order)
    assert only(result, "R-PHONE-2") == [f"changes[{len(order.changes) - 1}].new_person.mobile"]
    assert "Beijing" in result.violations[0].message


def test_r_phone_2_local_mobile_passes_and_other_provinces_take_any_mobile() -> None:
    assert check(make_order(province=Province.GANSU)).valid
    order = make_order(province=Province.GUANGDONG, changes=[F.CONTACT_MOBILE])
    elsewhere = order.changes[0].model_copy(update={"new_value": mobile(Province.GANSU)})
    assert check(order.model_copy(update={"changes": [elsewhere]})).valid


def test_r_phone_2_a_number_the_data_cannot_place_is_a_warning() -> None:
    order = make_order(province=Province.HUNAN, changes=[F.CONTACT_MOBILE])
    unplaced = order.changes[0].model_copy(update={"new_value": "13800400001"})  # geocoded only as "China"
    result = check(order.model_copy(update={"changes": [unplaced]}))
    assert result.valid
    assert [(w.rule_id, w.field) for w in result.warnings] == [("R-PHONE-2", "changes[0].new_value")]


# ------------------------------------------------------------------------------------------------------- R-FMT


def test_r_fmt_1_bad_identifiers_are_refused_naming_each_field() -> None:
    record = make_record()
    entity_person = record.entity.person_in_charge.model_copy(update={"id_number": "110105194912310021"})
    entity = record.entity.model_copy(update={"id_number": "91350100M00010", "person_in_charge": entity_person})
    site = record.services[0]
    site = site.model_copy(update={"domains": ["www.example.com"]})
    record = record.model_copy(update={"entity": entity, "services": [site, *record.services[1:]]})
    order = make_order(
        kind=OrderKind.ENTITY, record=record, changes=[change(F.CONTACT_EMAIL, new_value="not-an-email")]
    )
    fields = only(check(order), "R-FMT-1")
    assert fields == [
        "record.entity.id_number",
        "record.entity.person_in_charge.id_number",
        "changes[0].new_value",
        "record.services[0].domains[0]",
    ]


def test_r_fmt_1_new_values_are_checked_where_they_come_from() -> None:
    order = make_order(changes=[F.CONTACT_MOBILE, F.SERVICE_IP])
    bad = [
        order.changes[0].model_copy(update={"new_value": "12800138000"}),
        order.changes[1].model_copy(update={"new_value": "203.0.113.300"}),
    ]
    result = check(order.model_copy(update={"changes": bad}))
    assert sorted(only(result, "R-FMT-1")) == ["changes[0].new_value", "changes[1].new_value"]
    assert any("13800138000" in v.fix for v in result.violations)


def test_r_fmt_1_credit_code_failing_only_its_check_character_is_a_warning() -> None:
    order = make_order(kind=OrderKind.ENTITY, changes=[change(F.ENTITY_CREDIT_CODE, new_value="91350100M000100Y44")])
    result = check(order)
    assert result.valid
    assert [(w.rule_id, w.field) for w in result.warnings] == [("R-FMT-1", "changes[0].new_value")]


def test_r_fmt_1_changes_must_name_a_service_on_record_and_carry_their_value() -> None:
    order = make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_ADDRESS])
    bad = [
        Change(field=F.SERVICE_NAME, new_value="x"),
        Change(field=F.SERVICE_NAME, service="京ICP备99999999号-1", new_value="x"),
        Change(field=F.ENTITY_NAME),
        Change(field=F.ENTITY_TYPE, new_value="cooperative"),
    ]
    result = check(order.model_copy(update={"changes": bad}))
    assert only(result, "R-FMT-1") == [
        "changes[0].service",
        "changes[1].service",
        "changes[2].new_value",
        "changes[3].new_value",
    ]


def test_r_fmt_1_a_service_filed_under_another_entity_is_refused() -> None:
    record = make_record(serial=12345678)
    stray = record.services[0].model_copy(update={"filing_number": "京ICP备87654321号-1"})
    order = make_order(kind=OrderKind.ENTITY, record=record.model_copy(update={"services": [stray]}))
    result = check(order)
    assert only(result, "R-FMT-1") == ["record.services[0].filing_number"]


def test_r_fmt_1_valid_identifiers_pass() -> None:
    assert check(make_order(kind=OrderKind.ENTITY, changes=[F.ENTITY_CREDIT_CODE, F.CONTACT_MOBILE])).valid


# -------------------------------------------------------------------------------------------------- altogether


def test_order_with_three_violations_reports_all_three() -> None:
    order = make_order(changes=[F.DOMAIN_ADD, F.CONTACT_MOBILE])
    bad_mobile = order.changes[1].model_copy(update={"new_value": "12345"})
    order = order.model_copy(update={"changes": [order.changes[0], bad_mobile]})
    result = check(order, expiry=expiry_for(order) | {"example.com": AS_OF - timedelta(days=1)})
    assert [(v.rule_id, v.field) for v in result.violations] == [
        ("R-FMT-1", "changes[1].new_value"),
        ("R-DOM-1", "changes[0].field"),
        ("R-DOM-3", "record.services[0].domains[0]"),
    ]


def test_naive_as_of_is_taken_as_utc() -> None:
    order = make_order()
    assert validate(order, AS_OF.replace(tzinfo=None), expiry_for(order)).valid
