"""Every rule of DOMAIN.md by id: what it says, and the function that checks it (in the order they run).

R-LOCK-1 has no check here: one workflow id per filing entity makes Temporal itself refuse a second in-progress
order (see workflows/ and starter/), so it is listed for completeness and the catalogue test.
"""

from __future__ import annotations

from collections.abc import Callable

from activities.validation.context import ValidationContext
from activities.validation.findings import Findings
from activities.validation.rules import domains, entity, formats, ids, kinds, phones, province

Check = Callable[[ValidationContext], Findings]

RULES: dict[str, str] = {
    "R-LOCK-1": "At most one in-progress order per filing entity, of any kind; a second one is refused, naming the "
    "existing order (enforced by Temporal workflow ids, not by validation).",
    "R-KIND-1": "An entity change must be tied to at least one of the entity's websites or apps; an order changes "
    "only what its kind covers.",
    "R-KIND-2": "Jiangsu offers no entity-only or service-only change: both go through one combined order.",
    "R-DOM-1": "A filed website's domain cannot be changed, and no domain can be added by modification.",
    "R-DOM-2": "A domain can only be deleted when the website has more than one; the last domain cannot be deleted.",
    "R-DOM-3": "Every domain on the order must stay registered for at least 3 months (Shandong: more than 45 days); "
    "an expired domain must be renewed first.",
    "R-DOM-4": "The domain holder must match the entity: when the entity's name, ID type, ID number or legal "
    "representative changes, the holder must be updated too (a pending action, not a refusal).",
    "R-PROV-1": "The province of a filing cannot change; that needs a new filing in the target province.",
    "R-ENT-1": "An entity-name change needs a certificate of change from the business administration (a pending "
    "action).",
    "R-ENT-2": "Some provinces refuse an entity-name change; the rule comes from the province table.",
    "R-ENT-3": "Enterprise → personal is refused almost everywhere; personal → enterprise is province-specific "
    "(forbidden in Beijing, Gansu, Shanxi; in Henan only when the person is the company's legal representative).",
    "R-ID-1": "An ID-card update cannot use a household register or a temporary ID card; a lost card must be "
    "replaced first.",
    "R-ID-2": "ID documents must stay valid for more than 3 months.",
    "R-PHONE-1": "The entity's person in charge and a website's person in charge may not share mobile or emergency "
    "numbers, nor swap them.",
    "R-PHONE-2": "Some provinces require a local mobile number (Gansu, Jiangsu, Hunan, Shanxi).",
    "R-FMT-1": "Identifiers are checked by their own algorithms, with a clear error naming the field.",
}

CHECKS: tuple[tuple[str, Check], ...] = (
    ("R-FMT-1", formats.identifiers_are_well_formed),
    ("R-KIND-1", kinds.entity_change_is_tied_to_a_service),
    ("R-KIND-2", kinds.jiangsu_takes_combined_orders_only),
    ("R-PROV-1", province.province_does_not_change),
    ("R-DOM-1", domains.domains_are_not_added_or_changed),
    ("R-DOM-2", domains.last_domain_is_not_deleted),
    ("R-DOM-3", domains.domains_stay_registered),
    ("R-DOM-4", domains.domain_holder_follows_the_entity),
    ("R-ENT-1", entity.name_change_needs_a_certificate),
    ("R-ENT-2", entity.province_allows_name_change),
    ("R-ENT-3", entity.entity_type_switch_is_allowed),
    ("R-ID-1", ids.id_update_uses_a_resident_id_card),
    ("R-ID-2", ids.id_documents_stay_valid),
    ("R-PHONE-1", phones.roles_do_not_share_numbers),
    ("R-PHONE-2", phones.mobiles_are_local),
)

ENFORCED_ELSEWHERE: frozenset[str] = frozenset({"R-LOCK-1"})
