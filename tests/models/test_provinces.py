"""The province table: data, validated at import, every province present, unknown ones refused loudly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.documents import DocumentKind
from models.order import EntityType, Province
from models.provinces import (
    TABLE,
    DocumentCondition,
    ProvinceTableError,
    Source,
    SwitchPolicy,
    UnknownProvince,
    load_table,
    province_rules,
)


def packaged() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).parents[2] / "models" / "provinces.json").read_text("utf-8"))
    return data


def test_all_31_provinces_are_in_the_table_with_their_chinese_names() -> None:
    assert set(packaged()["provinces"]) == {p.value for p in Province}
    assert len(Province) == 31
    names = [province_rules(p).name_zh for p in Province]
    assert len(set(names)) == 31
    assert province_rules(Province.INNER_MONGOLIA).name_zh == "内蒙古自治区"


def test_the_packaged_table_validates_and_resolves_every_province() -> None:
    table = load_table()
    for province in Province:
        rules = table.rules(province)
        assert rules.province is province
        assert rules.abbreviation == province.abbreviation
        for name in (
            "domain_validity_days",
            "entity_name_change_allowed",
            "enterprise_to_personal",
            "personal_to_enterprise",
            "local_mobile_required",
            "combined_order_only",
            "extra_documents",
        ):
            fact = getattr(rules, name)
            assert isinstance(fact.source, Source), (province, name)


def test_r_dom_3_domains_stay_registered_90_days_and_more_than_45_in_shandong() -> None:
    assert {p: province_rules(p).domain_validity_days.value for p in Province if p is not Province.SHANDONG} == {
        p: 90 for p in Province if p is not Province.SHANDONG
    }
    assert province_rules(Province.SHANDONG).domain_validity_days.value == 45


def test_r_ent_3_type_switches_per_province() -> None:
    forbidden = {p for p in Province if province_rules(p).personal_to_enterprise.value is SwitchPolicy.FORBIDDEN}
    assert forbidden == {Province.BEIJING, Province.GANSU, Province.SHANXI}
    henan = province_rules(Province.HENAN)
    assert henan.personal_to_enterprise.value is SwitchPolicy.LEGAL_REPRESENTATIVE_ONLY
    assert henan.personal_to_enterprise.dated is not None  # a 2018 fact, and the table says so
    assert all(province_rules(p).enterprise_to_personal.value is SwitchPolicy.FORBIDDEN for p in Province)
    assert province_rules(Province.GUANGDONG).type_switch(EntityType.PERSONAL, EntityType.ENTERPRISE) is not None
    assert province_rules(Province.GUANGDONG).type_switch(EntityType.ENTERPRISE, EntityType.GOVERNMENT) is None


def test_r_phone_2_local_mobiles_are_required_in_gansu_jiangsu_hunan_shanxi() -> None:
    local = {p for p in Province if province_rules(p).local_mobile_required.value}
    assert local == {Province.GANSU, Province.JIANGSU, Province.HUNAN, Province.SHANXI}
    assert all(province_rules(p).local_mobile_required.dated for p in local)


def test_r_kind_2_jiangsu_takes_combined_orders_and_extra_documents() -> None:
    jiangsu = province_rules("jiangsu")
    assert jiangsu.combined_order_only.value is True
    assert [(d.kind, d.when) for d in jiangsu.extra_documents.value] == [
        (DocumentKind.AUTHENTICITY_COMMITMENT, DocumentCondition.ALWAYS),
        (DocumentKind.AUTHORISATION_LETTER, DocumentCondition.PERSON_NOT_LEGAL_REPRESENTATIVE),
    ]
    assert [p for p in Province if province_rules(p).combined_order_only.value] == [Province.JIANGSU]


def test_r_ent_2_name_changes_come_from_the_table() -> None:
    assert all(province_rules(p).entity_name_change_allowed.value for p in Province)
    assert province_rules(Province.BEIJING).entity_name_change_allowed.cite == "[doc, 2018]"


def test_unknown_province_fails_loudly() -> None:
    with pytest.raises(UnknownProvince, match="unknown province 'atlantis'"):
        province_rules("atlantis")
    with pytest.raises(ValueError):
        TABLE.rules("hongkong")


def test_a_table_missing_a_province_is_refused() -> None:
    data = packaged()
    del data["provinces"]["tibet"]
    with pytest.raises(ProvinceTableError, match="tibet"):
        load_table(data)


def test_a_table_naming_an_unknown_province_is_refused() -> None:
    data = packaged()
    data["provinces"]["atlantis"] = {"name_zh": "亚特兰蒂斯"}
    with pytest.raises(ProvinceTableError, match="atlantis"):
        load_table(data)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d["defaults"].pop("local_mobile_required"),
        lambda d: d["defaults"]["domain_validity_days"].update(value="three months"),
        lambda d: d["defaults"]["domain_validity_days"].update(value=0),
        lambda d: d["defaults"]["combined_order_only"].update(source="rumour"),
        lambda d: d["provinces"]["henan"]["personal_to_enterprise"].update(value="sometimes"),
        lambda d: d["provinces"]["henan"]["personal_to_enterprise"].update(dated="Jan 2018"),
        lambda d: d["provinces"]["beijing"].update(local_phone_required={"value": True, "source": "doc"}),
        lambda d: d["provinces"]["jiangsu"]["extra_documents"]["value"].append({"kind": "selfie"}),
        lambda d: d["provinces"]["gansu"].pop("name_zh"),
    ],
)
def test_a_malformed_table_is_refused(corrupt: Any) -> None:
    data = packaged()
    corrupt(data)
    with pytest.raises(ProvinceTableError):
        load_table(data)


def test_a_table_loads_from_a_path_or_json_text(tmp_path: Path) -> None:
    path = tmp_path / "provinces.json"
    data = packaged()
    data["provinces"]["beijing"]["entity_name_change_allowed"] = {"value": False, "source": "ours"}
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    assert load_table(path).rules(Province.BEIJING).entity_name_change_allowed.value is False
    assert load_table(path.read_text("utf-8")).rules(Province.TIANJIN).entity_name_change_allowed.value is True
    with pytest.raises(ProvinceTableError):
        load_table("{not json")
    with pytest.raises(ProvinceTableError):
        load_table(tmp_path / "missing.json")
