"""Validation of a modification order before anything is collected: every R-* rule of DOMAIN.md, one small
function each (``rules/``), run together by :func:`validate` so a refused order lists every reason at once.

- :func:`validate` — pure: order, instant, domain expiry dates → :class:`~models.activity_io.ValidationResult`.
- :data:`RULES` — the catalogue: every rule id with its text (R-LOCK-1 is enforced by workflow ids elsewhere).
- :class:`ValidationActivities` — the Temporal activity ``validate_order``, which looks expiry dates up over RDAP.
"""

from activities.validation.activity import ValidationActivities
from activities.validation.catalogue import CHECKS, RULES
from activities.validation.context import domains_on_order
from activities.validation.rdap import DomainLookup, RdapClient, RdapError, RdapUnavailable
from activities.validation.validator import validate

__all__ = [
    "CHECKS",
    "RULES",
    "DomainLookup",
    "RdapClient",
    "RdapError",
    "RdapUnavailable",
    "ValidationActivities",
    "domains_on_order",
    "validate",
]
