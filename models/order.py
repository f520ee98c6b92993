"""The order as placed: what is on file, what changes, who is in charge, and the options the applicant chose."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.timing import TimingPolicy


class Frozen(BaseModel):
    """Base for messages and records: immutable, unknown fields refused (a typo is an error, not a silent drop)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderKind(StrEnum):
    ENTITY = "entity"
    WEBSITE = "website"
    APP = "app"


class Province(StrEnum):
    """The 31 provincial communications administrations, by pinyin; the value is stable in ids and URLs."""

    BEIJING = "beijing"
    TIANJIN = "tianjin"
    HEBEI = "hebei"
    SHANXI = "shanxi"
    INNER_MONGOLIA = "inner_mongolia"
    LIAONING = "liaoning"
    JILIN = "jilin"
    HEILONGJIANG = "heilongjiang"
    SHANGHAI = "shanghai"
    JIANGSU = "jiangsu"
    ZHEJIANG = "zhejiang"
    ANHUI = "anhui"
    FUJIAN = "fujian"
    JIANGXI = "jiangxi"
    SHANDONG = "shandong"
    HENAN = "henan"
    HUBEI = "hubei"
    HUNAN = "hunan"
    GUANGDONG = "guangdong"
    GUANGXI = "guangxi"
    HAINAN = "hainan"
    CHONGQING = "chongqing"
    SICHUAN = "sichuan"
    GUIZHOU = "guizhou"
    YUNNAN = "yunnan"
    TIBET = "tibet"
    SHAANXI = "shaanxi"
    GANSU = "gansu"
    QINGHAI = "qinghai"
    NINGXIA = "ningxia"
    XINJIANG = "xinjiang"

    @property
    def abbreviation(self) -> str:
        return PROVINCE_ABBREVIATIONS[self]

    @classmethod
    def from_abbreviation(cls, abbr: str) -> Province:
        for province, a in PROVINCE_ABBREVIATIONS.items():
            if a == abbr:
                return province
        raise ValueError(f"unknown province abbreviation {abbr!r}")


PROVINCE_ABBREVIATIONS: dict[Province, str] = dict(
    zip(
        Province,
        [
            "京",
            "津",
            "冀",
            "晋",
            "蒙",
            "辽",
            "吉",
            "黑",
            "沪",
            "苏",
            "浙",
            "皖",
            "闽",
            "赣",
            "鲁",
            "豫",
            "鄂",
            "湘",
            "粤",
            "桂",
            "琼",
            "渝",
            "蜀",
            "黔",
            "滇",
            "藏",
            "陕",
            "陇",
            "青",
            "宁",
            "新",
        ],
        strict=True,
    )
)

_ABBRS = "".join(PROVINCE_ABBREVIATIONS.values())
FILING_NUMBER_RE = re.compile(
    rf"^(?P<abbr>[{_ABBRS}])ICP备(?P<serial>[0-9]{{8}}|[0-9]{{10}})号(?:-(?P<n>[1-9][0-9]*)(?P<app>A)?)?$"
)  # [0-9], not \d: full-width digits would name the same filing under another workflow id (R-LOCK-1)


class FilingNumber(str):
    """An ICP filing number: ``京ICP备12345678号`` (entity), ``-3`` (website) or ``-3A`` (app) appended."""

    @staticmethod
    def parse(value: str) -> re.Match[str]:
        m = FILING_NUMBER_RE.match(value.strip())
        if m is None:
            raise ValueError(
                f"{value!r} is not an ICP filing number (R-FMT-1): expected e.g. 京ICP备12345678号, "
                "…号-1 for a website, …号-1A for an app"
            )
        return m


def entity_filing_number(filing_number: str) -> str:
    """The entity's own filing number, without a website or app suffix."""
    m = FilingNumber.parse(filing_number)
    return f"{m['abbr']}ICP备{m['serial']}号"


def filing_province(filing_number: str) -> Province:
    return Province.from_abbreviation(FilingNumber.parse(filing_number)["abbr"])


def filing_key(filing_number: str) -> str:
    """An ASCII key for the filing entity, used in workflow ids: ``beijing-12345678``."""
    m = FilingNumber.parse(filing_number)
    return f"{Province.from_abbreviation(m['abbr']).value}-{m['serial']}"


def service_kind(filing_number: str) -> OrderKind:
    m = FilingNumber.parse(filing_number)
    if m["n"] is None:
        return OrderKind.ENTITY
    return OrderKind.APP if m["app"] else OrderKind.WEBSITE


class EntityType(StrEnum):
    ENTERPRISE = "enterprise"
    PERSONAL = "personal"
    GOVERNMENT = "government"
    PUBLIC_INSTITUTION = "public_institution"
    SOCIAL_ORGANISATION = "social_organisation"


class IdType(StrEnum):
    RESIDENT_ID_CARD = "resident_id_card"
    TEMPORARY_ID_CARD = "temporary_id_card"
    HOUSEHOLD_REGISTER = "household_register"
    PASSPORT = "passport"
    HK_MACAU_PERMIT = "hk_macau_permit"
    TAIWAN_PERMIT = "taiwan_permit"
    BUSINESS_LICENCE = "business_licence"


class Person(Frozen):
    """A person in charge. Every field here is personal data: encrypted in Temporal, masked in logs."""

    name: str = Field(min_length=1, max_length=64)
    id_type: IdType = IdType.RESIDENT_ID_CARD
    id_number: str = Field(min_length=1, max_length=32)
    id_valid_until: date | None = None
    mobile: str = Field(min_length=1, max_length=20)
    emergency_mobile: str | None = None
    email: str = Field(min_length=3, max_length=254)
    is_legal_representative: bool = False


class Entity(Frozen):
    name: str = Field(min_length=1, max_length=128)
    entity_type: EntityType = EntityType.ENTERPRISE
    id_type: IdType = IdType.BUSINESS_LICENCE
    id_number: str = Field(min_length=1, max_length=32)
    address: str = Field(default="", max_length=256)
    person_in_charge: Person


class Service(Frozen):
    """A filed website or app."""

    filing_number: str
    kind: OrderKind
    name: str = Field(min_length=1, max_length=128)
    domains: list[str] = Field(default_factory=list)
    content_category: str = ""
    language: str = "zh-CN"
    ip_addresses: list[str] = Field(default_factory=list)
    platforms: list[str] = Field(default_factory=list)
    person_in_charge: Person

    @model_validator(mode="after")
    def _kind_is_service(self) -> Service:
        if self.kind is OrderKind.ENTITY:
            raise ValueError("a service is a website or an app")
        return self


class FilingRecord(Frozen):
    """The filing as it stands on record before this order."""

    entity_filing_number: str
    province: Province
    entity: Entity
    services: list[Service] = Field(default_factory=list)

    def service(self, filing_number: str) -> Service | None:
        return next((s for s in self.services if s.filing_number == filing_number), None)


class ChangeField(StrEnum):
    """What one change touches. Names follow the provider's modification form."""

    ENTITY_NAME = "entity_name"
    ENTITY_CREDIT_CODE = "entity_credit_code"
    ENTITY_ADDRESS = "entity_address"
    ENTITY_TYPE = "entity_type"
    ENTITY_PERSON_IN_CHARGE = "entity_person_in_charge"
    ID_CARD_RENEWAL = "id_card_renewal"
    CONTACT_MOBILE = "contact_mobile"
    CONTACT_EMAIL = "contact_email"
    PROVINCE = "province"
    SERVICE_NAME = "service_name"
    SERVICE_CONTENT_CATEGORY = "service_content_category"
    SERVICE_LANGUAGE = "service_language"
    SERVICE_IP = "service_ip"
    SERVICE_PERSON_IN_CHARGE = "service_person_in_charge"
    SERVICE_ACCESS = "service_access"
    SERVICE_PLATFORMS = "service_platforms"
    DOMAIN_ADD = "domain_add"
    DOMAIN_CHANGE = "domain_change"
    DOMAIN_DELETE = "domain_delete"


class Change(Frozen):
    """One requested change. ``service`` names the website or app it applies to (entity changes leave it empty)."""

    field: ChangeField
    service: str | None = None
    new_value: str | None = None
    new_person: Person | None = None


class OrderReason(StrEnum):
    USER_INITIATED = "user_initiated"
    VERIFICATION_NOTICE = "verification_notice"


class Notice(Frozen):
    """A verification notice from the provider or the regulator that made this order necessary."""

    notice_type: str = Field(min_length=1, max_length=64)
    reference: str = Field(min_length=1, max_length=64)
    deadline: datetime | None = None


class OrderOptions(Frozen):
    reuse_images: bool = False
    max_auto_resubmissions: int = Field(default=2, ge=0, le=10)


class PlaceOrder(Frozen):
    """Everything needed to start one modification order. This is the workflow's input."""

    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    kind: OrderKind
    filing_number: str
    record: FilingRecord
    changes: list[Change] = Field(min_length=1)
    reason: OrderReason = OrderReason.USER_INITIATED
    notice: Notice | None = None
    options: OrderOptions = OrderOptions()
    timing: TimingPolicy = TimingPolicy()
    placed_by: str = "backend"

    @field_validator("filing_number")
    @classmethod
    def _filing_number(cls, v: str) -> str:
        FilingNumber.parse(v)
        return v.strip()

    @property
    def province(self) -> Province:
        return self.record.province

    def person_in_charge(self, subject: str) -> Person:
        """Whose ID, face and mobile the order concerns for ``subject`` ('entity' or a service's filing number):
        the incoming person in charge when the order changes it, else the person on record."""
        wanted = ChangeField.ENTITY_PERSON_IN_CHARGE if subject == "entity" else ChangeField.SERVICE_PERSON_IN_CHARGE
        for change in self.changes:
            if change.field is wanted and change.new_person is not None and change.service in (None, subject):
                return change.new_person
        service = self.record.service(subject)
        return service.person_in_charge if service is not None else self.record.entity.person_in_charge

    def contact_person(self) -> Person:
        """Who the administration texts and the applicant notices go to: the entity's person in charge for entity
        orders, the website's or app's for service orders (DOMAIN.md, SMS verification)."""
        return self.person_in_charge("entity" if self.kind is OrderKind.ENTITY else self.filing_number)

    @property
    def entity_filing_number(self) -> str:
        return entity_filing_number(self.filing_number)

    @property
    def filing_key(self) -> str:
        return filing_key(self.filing_number)
