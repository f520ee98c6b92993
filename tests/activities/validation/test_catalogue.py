"""The rule catalogue covers DOMAIN.md: every rule id it names is catalogued, checked (or enforced elsewhere) and
named by at least one test."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from activities.validation import CHECKS, RULES
from activities.validation.catalogue import ENFORCED_ELSEWHERE

REPO = Path(__file__).parents[3]
DOMAIN_MD = REPO / ".." / "shared" / "DOMAIN.md"
RULE_ID = re.compile(r"\bR-[A-Z]+-\d+\b")


def domain_rule_ids() -> set[str]:
    if not DOMAIN_MD.exists():
        pytest.skip(f"{DOMAIN_MD} is not beside the repository")
    return set(RULE_ID.findall(DOMAIN_MD.read_text("utf-8")))


def names_of_tests() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_every_rule_of_domain_md_is_in_the_catalogue() -> None:
    ids = domain_rule_ids()
    assert len(ids) >= 16
    assert ids - set(RULES) == set()


def test_every_rule_of_domain_md_is_named_by_a_test() -> None:
    names = names_of_tests()
    untested = {r for r in domain_rule_ids() | set(RULES) if not any(_as_name(r) in n for n in names)}
    assert untested == set()


def _as_name(rule_id: str) -> str:
    # "R-DOM-3" → "_r_dom_3_": bounded by underscores so that R-DOM-3 is not found inside a name for R-DOM-30.
    return "_" + rule_id.lower().replace("-", "_") + "_"


def test_every_catalogued_rule_is_checked_once_unless_enforced_elsewhere() -> None:
    checked = [rule_id for rule_id, _ in CHECKS]
    assert len(checked) == len(set(checked))
    assert set(checked) | ENFORCED_ELSEWHERE == set(RULES)
    assert not set(checked) & ENFORCED_ELSEWHERE
    assert all(RULES[r].strip() for r in RULES)


def test_r_lock_1_is_catalogued_and_left_to_temporal_workflow_ids() -> None:
    assert "R-LOCK-1" in RULES
    assert "R-LOCK-1" in ENFORCED_ELSEWHERE
    assert "workflow ids" in RULES["R-LOCK-1"]
