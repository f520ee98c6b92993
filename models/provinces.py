"""What differs between provinces, as data: ``provinces.json`` beside this module, validated when it is imported.

The table lists defaults and, per province, only what differs (DOMAIN.md: "province rules are data"). Every fact
says where it comes from and, when its page is dated, when — so a reader knows which facts may have drifted. A
malformed table, a missing province or an unknown one fails at import, i.e. when the worker starts, not mid-order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import Field, ValidationError, model_validator

from models.documents import DocumentKind
from models.order import EntityType, Frozen, Province

T = TypeVar("T")


class Source(StrEnum):
    """How sure we are of a fact (DOMAIN.md's tags)."""

    DOC = "doc"  # stated by a provider or regulator
    SECOND_HAND = "2nd"
    OURS = "ours"  # our own design choice


class Fact(Frozen, Generic[T]):
    """One province fact: its value, where it comes from, and the date of the page that states it (if dated)."""

    value: T
    source: Source
    dated: str | None = Field(default=None, pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$")
    note: str = ""

    @property
    def cite(self) -> str:
        """The source as DOMAIN.md writes it: ``[doc, 2018]``."""
        return f"[{self.source.value}{', ' + self.dated if self.dated else ''}]"


class SwitchPolicy(StrEnum):
    """Whether an entity may change type (R-ENT-3)."""

    ALLOWED = "allowed"
    FORBIDDEN = "forbidden"
    # Henan: personal → enterprise only when the person of the individual filing is the company's legal
    # representative.
    LEGAL_REPRESENTATIVE_ONLY = "legal_representative_only"


class DocumentCondition(StrEnum):
    ALWAYS = "always"
    PERSON_NOT_LEGAL_REPRESENTATIVE = "person_not_legal_representative"


class ExtraDocument(Frozen):
    """A document a province asks for on top of the national list, and when."""

    kind: DocumentKind
    when: DocumentCondition = DocumentCondition.ALWAYS


class _Facts(Frozen):
    """The facts a province may override. All optional here; the defaults fill the gaps."""

    domain_validity_days: Fact[int] | None = None
    entity_name_change_allowed: Fact[bool] | None = None
    enterprise_to_personal: Fact[SwitchPolicy] | None = None
    personal_to_enterprise: Fact[SwitchPolicy] | None = None
    local_mobile_required: Fact[bool] | None = None
    combined_order_only: Fact[bool] | None = None
    extra_documents: Fact[list[ExtraDocument]] | None = None

    @model_validator(mode="after")
    def _positive_days(self) -> _Facts:
        if self.domain_validity_days is not None and self.domain_validity_days.value < 1:
            raise ValueError("domain_validity_days must be at least 1")
        return self


class Defaults(_Facts):
    """Every fact is required in the defaults, so a resolved province never lacks one."""

    domain_validity_days: Fact[int]
    entity_name_change_allowed: Fact[bool]
    enterprise_to_personal: Fact[SwitchPolicy]
    personal_to_enterprise: Fact[SwitchPolicy]
    local_mobile_required: Fact[bool]
    combined_order_only: Fact[bool]
    extra_documents: Fact[list[ExtraDocument]]


class ProvinceEntry(_Facts):
    name_zh: str = Field(min_length=2, max_length=16, description="the full Chinese name, e.g. 江苏省")


class ProvinceRules(Defaults):
    """The rules of one province with the defaults applied: what callers get from :func:`province_rules`."""

    province: Province
    name_zh: str

    @property
    def abbreviation(self) -> str:
        return self.province.abbreviation

    def type_switch(self, old: EntityType, new: EntityType) -> Fact[SwitchPolicy] | None:
        """The policy for an entity-type change, or None when the table says nothing about that pair (DOMAIN.md
        only speaks of enterprise ↔ personal)."""
        if (old, new) == (EntityType.ENTERPRISE, EntityType.PERSONAL):
            return self.enterprise_to_personal
        if (old, new) == (EntityType.PERSONAL, EntityType.ENTERPRISE):
            return self.personal_to_enterprise
        return None


class ProvinceTable(Frozen):
    about: str = ""
    defaults: Defaults
    provinces: dict[Province, ProvinceEntry]

    @model_validator(mode="after")
    def _every_province(self) -> ProvinceTable:
        missing = [p.value for p in Province if p not in self.provinces]
        if missing:
            raise ValueError(f"the province table lacks {', '.join(missing)}")
        return self

    def rules(self, province: Province | str) -> ProvinceRules:
        p = _province(province)
        entry = self.provinces[p]
        overrides = {k: v for k, v in entry if v is not None and k != "name_zh"}
        resolved: dict[str, Any] = dict(self.defaults) | overrides
        return ProvinceRules(province=p, name_zh=entry.name_zh, **resolved)


class UnknownProvince(ValueError):
    pass


class ProvinceTableError(RuntimeError):
    """The province table could not be read or is malformed."""


def _province(province: Province | str) -> Province:
    if isinstance(province, Province):
        return province
    try:
        return Province(province)
    except ValueError:
        known = ", ".join(p.value for p in Province)
        raise UnknownProvince(f"unknown province {province!r}: expected one of {known}") from None


def load_table(source: Path | str | Mapping[str, Any] | None = None) -> ProvinceTable:
    """Read and validate a province table: the packaged ``provinces.json`` by default, or a path, JSON text or
    an already-parsed mapping (tests use this to try a table of their own). Raises :class:`ProvinceTableError`
    naming what is wrong."""
    try:
        if source is None:
            data: Any = json.loads(resources.files("models").joinpath("provinces.json").read_text("utf-8"))
        elif isinstance(source, Path):
            data = json.loads(source.read_text("utf-8"))
        elif isinstance(source, str):
            data = json.loads(source)
        else:
            data = source
        return ProvinceTable.model_validate(data)
    except (OSError, json.JSONDecodeError, ValidationError) as e:
        raise ProvinceTableError(f"the province table is invalid: {e}") from e


TABLE: ProvinceTable = load_table()


def province_rules(province: Province | str) -> ProvinceRules:
    """The rules of ``province`` from the packaged table. An unknown province raises :class:`UnknownProvince`."""
    return TABLE.rules(province)
