"""What one rule finds: refusals, warnings and pending actions, gathered so every reason is reported at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.state import PendingAction, Violation


@dataclass
class Findings:
    violations: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    pending_actions: list[PendingAction] = field(default_factory=list)

    def refuse(self, rule_id: str, field: str, message: str, fix: str = "") -> None:
        self.violations.append(Violation(rule_id=rule_id, field=field, message=message, fix=fix))

    def warn(self, rule_id: str, field: str, message: str, fix: str = "") -> None:
        self.warnings.append(Violation(rule_id=rule_id, field=field, message=message, fix=fix))

    def extend(self, other: Findings) -> None:
        self.violations.extend(other.violations)
        self.warnings.extend(other.warnings)
        self.pending_actions.extend(other.pending_actions)
