"""The declarative outcome mapping: how a call's output parameters change a Salesforce Lead.

``load_mapping`` reads and validates ``config/mapping.toml``; ``plan_lead_fields`` applies it to one call's
outputs and the Lead's current values. Pure Python: no HTTP, no Salesforce client.
"""

from worker.mapping.config import (
    DEFAULT_CALLBACK,
    FORBIDDEN_FIELDS,
    AgentRules,
    CallbackRule,
    FieldRule,
    Mapping,
    ParamRule,
    WriteMode,
)
from worker.mapping.loader import load_mapping, parse_mapping
from worker.mapping.rules import FieldChange, LeadFieldPlan, plan_lead_fields
from worker.mapping.values import NO, UNKNOWN, YES, ValueKind, normalise

__all__ = [
    "DEFAULT_CALLBACK",
    "FORBIDDEN_FIELDS",
    "NO",
    "UNKNOWN",
    "YES",
    "AgentRules",
    "CallbackRule",
    "FieldChange",
    "FieldRule",
    "LeadFieldPlan",
    "Mapping",
    "ParamRule",
    "ValueKind",
    "WriteMode",
    "load_mapping",
    "normalise",
    "parse_mapping",
    "plan_lead_fields",
]
