"""Fault switches (``Faults``) and validation rules the stand-in org can be given (see the package docstring)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from standins.salesforce.schema import normalize_id

FAULT_KINDS = (
    "server_unavailable",
    "server_error",
    "lock",
    "limit",
    "concurrent",
    "expire_sessions",
    "drop_after_commit",
)


@dataclass
class ValidationRule:
    """A validation rule: a write whose resulting ``sobject`` record has ``field`` == ``equals`` fails."""

    sobject: str
    field: str
    equals: Any
    message: str = "This record is blocked by a validation rule."
    error_field: str | None = None

    def hits(self, sobject: str, record: dict[str, Any]) -> bool:
        if sobject.lower() != self.sobject.lower():
            return False
        value = next((v for k, v in record.items() if k.lower() == self.field.lower()), None)
        if isinstance(value, str) and isinstance(self.equals, str):
            if self.field.lower().endswith("id"):
                return (normalize_id(value) or value) == (normalize_id(self.equals) or self.equals)
            return value.casefold() == self.equals.casefold()
        return bool(value == self.equals)


@dataclass
class Faults:
    """Fault switches; change them with ``state.set_faults(...)`` or ``PUT /_sandbox/faults``."""

    latency_ms: float = 0.0
    fail_next: int = 0
    fail_rate: float = 0.0
    fail_kind: str = "server_unavailable"
    fail_scope: list[str] = field(default_factory=list)
    lock_status: int = 500
    search_index_lag_ms: float = 0.0
    upsert_race_ms: float = 0.0
    validation_rules: list[ValidationRule] = field(default_factory=list)
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def coerce(current: Any, value: Any) -> Any:
    """A fault setting converted to the type of its current value (admin JSON may send "3" for 3)."""
    for kind in (bool, int, float):
        if isinstance(current, kind):
            return kind(value)
    if isinstance(current, list):
        return [value] if isinstance(value, str) else list(value)
    return value
