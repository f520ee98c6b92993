"""Test orders that pass validation unless a test says otherwise.

``make_order()`` is a website order in Beijing changing its person in charge; every identifier is valid (USCC
91350100M000100Y43, resident IDs with correct check characters, mainland mobiles issued in the order's province so
local-mobile provinces pass too, distinct numbers for the entity's and the website's person in charge). Each call
gets a fresh filing serial and order id, so orders placed in one Temporal session never collide (R-LOCK-1).

    make_order(kind=OrderKind.ENTITY, changes=[ChangeField.ENTITY_NAME])
    make_order(province=Province.SHANDONG, changes=[change(ChangeField.SERVICE_NAME, new_value="新名字")])

``changes`` takes :class:`Change` objects or bare :class:`ChangeField` values; a bare field becomes a valid change
of that field (``sample_change``) aimed at the order's own website or app. ``expiry_for(order, as_of, days)``
gives the ``domain_expiry`` map ``validate`` needs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stdnum.cn import ric

from models.order import (
    Change,
    ChangeField,
    Entity,
    EntityType,
    FilingRecord,
    IdType,
    OrderKind,
    OrderOptions,
    Person,
    PlaceOrder,
    Province,
    Service,
)
from models.provinces import province_rules

AS_OF = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
USCC = "91350100M000100Y43"
ENTITY_ID = "11010519491231002X"  # the entity's person in charge, the company's legal representative
WEBSITE_ID = "110101199003070011"  # the website's person in charge
APP_ID = "320102198511200020"  # the app's person in charge

# A 7-digit mobile prefix issued in each province (phonenumbers' geocoding data), so persons' mobiles are local.
MOBILE_PREFIX: dict[Province, str] = {
    Province.BEIJING: "1380013",
    Province.TIANJIN: "1380022",
    Province.HEBEI: "1380031",
    Province.SHANXI: "1380030",
    Province.INNER_MONGOLIA: "1380047",
    Province.LIAONING: "1380004",
    Province.JILIN: "1380043",
    Province.HEILONGJIANG: "1380045",
    Province.SHANGHAI: "1380021",
    Province.JIANGSU: "1380025",
    Province.ZHEJIANG: "1380057",
    Province.ANHUI: "1380055",
    Province.FUJIAN: "1380059",
    Province.JIANGXI: "1380070",
    Province.SHANDONG: "1380053",
    Province.HENAN: "1380037",
    Province.HUBEI: "1380026",
    Province.HUNAN: "1380073",
    Province.GUANGDONG: "1380009",
    Province.GUANGXI: "1380077",
    Province.HAINAN: "1380089",
    Province.CHONGQING: "1380023",
    Province.SICHUAN: "1380028",
    Province.GUIZHOU: "1380085",
    Province.YUNNAN: "1380087",
    Province.TIBET: "1388900",
    Province.SHAANXI: "1380029",
    Province.GANSU: "1380093",
    Province.QINGHAI: "1380096",
    Province.NINGXIA: "1380095",
    Province.XINJIANG: "1380090",
}

_serials = itertools.count(10_000_001)


def mobile(province: Province = Province.BEIJING, n: int = 8000) -> str:
    """A mainland mobile issued in ``province``: ``mobile(Province.BEIJING)`` is 13800138000."""
    return f"{MOBILE_PREFIX[province]}{n:04d}"


def resident_id(region: str = "110105", born: date = date(1980, 1, 1), sequence: int = 1) -> str:
    """A valid resident ID number (GB 11643-1999) for the region code, birth date and sequence."""
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")


def make_person(**overrides: Any) -> Person:
    fields: dict[str, Any] = {
        "name": "张三",
        "id_type": IdType.RESIDENT_ID_CARD,
        "id_number": ENTITY_ID,
        "id_valid_until": None,  # long-term (长期)
        "mobile": mobile(),
        "emergency_mobile": mobile(n=8001),
        "email": "zhangsan@example.com",
        "is_legal_representative": True,
    }
    return Person(**(fields | overrides))


def entity_number(province: Province, serial: int) -> str:
    return f"{province.abbreviation}ICP备{serial}号"


def make_record(
    province: Province = Province.BEIJING,
    *,
    serial: int | None = None,
    entity: Entity | None = None,
    services: list[Service] | None = None,
    **overrides: Any,
) -> FilingRecord:
    """An enterprise's filing with one website (``-1``, domains example.com and example.cn) and one app (``-2A``)."""
    serial = serial if serial is not None else next(_serials)
    number = entity_number(province, serial)
    if entity is None:
        entity = Entity(
            name="示例科技有限公司",
            entity_type=EntityType.ENTERPRISE,
            id_type=IdType.BUSINESS_LICENCE,
            id_number=USCC,
            address=f"{_name_zh(province)}示例路1号",
            person_in_charge=make_person(mobile=mobile(province, 8000), emergency_mobile=mobile(province, 8001)),
        )
    if services is None:
        services = [
            Service(
                filing_number=f"{number}-1",
                kind=OrderKind.WEBSITE,
                name="示例网站",
                domains=["example.com", "example.cn"],
                content_category="general",
                ip_addresses=["203.0.113.10"],
                person_in_charge=make_person(
                    name="李四",
                    id_number=WEBSITE_ID,
                    mobile=mobile(province, 8002),
                    emergency_mobile=mobile(province, 8003),
                    email="lisi@example.com",
                    is_legal_representative=False,
                ),
            ),
            Service(
                filing_number=f"{number}-2A",
                kind=OrderKind.APP,
                name="示例应用",
                content_category="general",
                platforms=["android", "ios"],
                person_in_charge=make_person(
                    name="王五",
                    id_number=APP_ID,
                    mobile=mobile(province, 8004),
                    emergency_mobile=mobile(province, 8005),
                    email="wangwu@example.com",
                    is_legal_representative=False,
                ),
            ),
        ]
    fields: dict[str, Any] = {
        "entity_filing_number": number,
        "province": province,
        "entity": entity,
        "services": services,
    }
    return FilingRecord(**(fields | overrides))


def _name_zh(province: Province) -> str:
    return province_rules(province).name_zh


def change(field: ChangeField, service: str | None = None, **overrides: Any) -> Change:
    return Change(field=field, service=service, **overrides)


def sample_change(field: ChangeField, record: FilingRecord, service: str | None = None) -> Change:
    """A valid change of ``field`` on ``record``; service changes go to ``service`` (default: the first website,
    or the app for app-only fields)."""
    province = record.province
    website = next((s for s in record.services if s.kind is OrderKind.WEBSITE), None)
    app = next((s for s in record.services if s.kind is OrderKind.APP), website)
    F = ChangeField
    preferred = app if field in (F.SERVICE_ACCESS, F.SERVICE_PLATFORMS) else website
    target = service or (preferred.filing_number if preferred is not None else None)
    new_person = make_person(
        name="赵六",
        id_number=resident_id("110105", date(1988, 8, 8), 35),
        mobile=mobile(province, 8006),
        emergency_mobile=mobile(province, 8007),
        email="zhaoliu@example.com",
        is_legal_representative=False,
    )
    values: dict[ChangeField, dict[str, Any]] = {
        F.ENTITY_NAME: {"new_value": "新示例科技有限公司"},
        F.ENTITY_CREDIT_CODE: {"new_value": "91110000600037341L"},
        F.ENTITY_ADDRESS: {"new_value": f"{_name_zh(province)}新路2号"},
        F.ENTITY_TYPE: {"new_value": EntityType.ENTERPRISE.value},
        F.ENTITY_PERSON_IN_CHARGE: {"new_person": new_person.model_copy(update={"is_legal_representative": True})},
        F.ID_CARD_RENEWAL: {"new_value": "2045-01-01"},
        F.CONTACT_MOBILE: {"new_value": mobile(province, 8008)},
        F.CONTACT_EMAIL: {"new_value": "new@example.com"},
        F.PROVINCE: {"new_value": "shanghai" if province is not Province.SHANGHAI else "beijing"},
        F.SERVICE_NAME: {"new_value": "新示例网站"},
        F.SERVICE_CONTENT_CATEGORY: {"new_value": "general"},
        F.SERVICE_LANGUAGE: {"new_value": "en"},
        F.SERVICE_IP: {"new_value": "203.0.113.20"},
        F.SERVICE_PERSON_IN_CHARGE: {"new_person": new_person},
        F.SERVICE_ACCESS: {"new_value": "203.0.113.30"},
        F.SERVICE_PLATFORMS: {"new_value": "android,ios,harmonyos"},
        F.DOMAIN_ADD: {"new_value": "example.net"},
        F.DOMAIN_CHANGE: {"new_value": "example.org"},
        F.DOMAIN_DELETE: {"new_value": website.domains[-1] if website and website.domains else "example.cn"},
    }
    entity_side = field in (
        F.ENTITY_NAME,
        F.ENTITY_CREDIT_CODE,
        F.ENTITY_ADDRESS,
        F.ENTITY_TYPE,
        F.ENTITY_PERSON_IN_CHARGE,
        F.PROVINCE,
    )
    person_side = field in (F.ID_CARD_RENEWAL, F.CONTACT_MOBILE, F.CONTACT_EMAIL)
    return Change(
        field=field,
        service=None if entity_side or (person_side and service is None) else target,
        **values[field],
    )


def make_order(
    *,
    province: Province = Province.BEIJING,
    kind: OrderKind | None = None,
    changes: Sequence[Change | ChangeField] | None = None,
    record: FilingRecord | None = None,
    serial: int | None = None,
    max_auto_resubmissions: int | None = None,
    **overrides: Any,
) -> PlaceOrder:
    """A valid order of ``kind`` on a fresh filing in ``province``. The default kind is a website order, except
    where the province takes combined orders only (Jiangsu, R-KIND-2): there it is an entity order changing the
    entity's address and the website's person in charge. The default change: the website's or app's person in
    charge (website/app orders) or the entity's address (entity orders). Bare person fields (``contact_mobile``…)
    in a website/app order are aimed at that website/app."""
    record = record or make_record(province, serial=serial)
    if kind is None:
        combined = province_rules(record.province).combined_order_only.value
        kind = OrderKind.ENTITY if combined else OrderKind.WEBSITE
        if combined and changes is None:
            changes = [ChangeField.ENTITY_ADDRESS, ChangeField.SERVICE_PERSON_IN_CHARGE]
    if kind is OrderKind.ENTITY:
        filing_number = record.entity_filing_number
    else:
        filing_number = next(s.filing_number for s in record.services if s.kind is kind)
    default = ChangeField.ENTITY_ADDRESS if kind is OrderKind.ENTITY else ChangeField.SERVICE_PERSON_IN_CHARGE
    own = None if kind is OrderKind.ENTITY else filing_number
    built = [c if isinstance(c, Change) else sample_change(c, record, service=own) for c in (changes or [default])]
    fields: dict[str, Any] = {
        "order_id": f"order-{next(_serials)}",
        "kind": kind,
        "filing_number": filing_number,
        "record": record,
        "changes": built,
    }
    if max_auto_resubmissions is not None:
        fields["options"] = OrderOptions(max_auto_resubmissions=max_auto_resubmissions)
    return PlaceOrder(**(fields | overrides))


def expiry_for(order: PlaceOrder, as_of: datetime = AS_OF, days: float = 365) -> dict[str, datetime | None]:
    """Every domain on the order's record expiring ``days`` after ``as_of``: the ``domain_expiry`` for validate."""
    return {d: as_of + timedelta(days=days) for s in order.record.services for d in s.domains}
