"""Load ``config/mapping.toml`` into immutable, typed rules, or refuse it at start-up with clear errors.

Contract of :func:`load_mapping`: it returns a :class:`Mapping` only when the whole file is valid;
otherwise it raises :class:`worker.errors.MappingError` listing *every* problem found, one per line, each
as ``<file>:<line>: <dotted.key>: <what is wrong>`` (tomllib reports positions only for syntax errors, so
the line of a key is found by scanning the file's table headers and ``key =`` lines).

Safety rules enforced here, so that no output parameter can ever write where it should not:

- only fields named in the file are written (parameter names are never used as field names);
- system, ownership and relationship fields (``Id``, ``OwnerId``, ``IsConverted``, ``RecordTypeId``, any
  standard ``...Id`` field, ...) are refused at load;
- every value written is a string from the file's value maps, a boolean (``yes_no`` without a map), or the
  parameter's own trimmed text / number (``text`` / ``number`` kinds).

Whether the org actually has the fields and picklist values is checked later, against its describe, by
:meth:`Mapping.check_against_describe` (picklist values differ between orgs).
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping as TypingMapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from worker.mapping.auto_callback import AUTO_CALLBACK_OFF, AutoCallbackRule
from worker.mapping.values import YES, ValueKind


class WriteMode(StrEnum):
    """How a rule treats the field's current value."""

    OVERWRITE = "overwrite"  # always write
    FILL_IF_EMPTY = "fill_if_empty"  # write only when the field is empty (None or blank text)
    NEVER_DOWNGRADE = "never_downgrade"  # write only when the new value ranks at or above the current one


#: Fields no mapping may target (compared case-insensitively, as Salesforce does).
FORBIDDEN_FIELDS: Final = frozenset(
    name.casefold()
    for name in (
        "Id", "OwnerId", "IsConverted", "ConvertedContactId", "ConvertedAccountId", "ConvertedOpportunityId",
        "ConvertedDate", "CreatedById", "LastModifiedById", "CreatedDate", "LastModifiedDate",
        "SystemModstamp", "IsDeleted", "RecordTypeId", "MasterRecordId", "LastActivityDate", "LastViewedDate",
        "LastReferencedDate", "IsUnreadByOwner", "JigsawContactId", "IndividualId", "PartnerAccountId",
    )
)  # fmt: skip

SUPPORTED_SOBJECTS: Final = ("Lead",)

#: The callback declaration when the file has no ``[callback]`` table (or leaves a key out).
DEFAULT_CALLBACK: Final[TypingMapping[str, str]] = MappingProxyType(
    {"requested_param": "callback_requested", "time_param": "callback_time", "priority": "High",
     "subject_prefix": "Callback"}
)  # fmt: skip

# Salesforce describe ``type`` values, grouped by what a rule can write into them.
_TEXT_TYPES: Final = frozenset({"string", "textarea", "phone", "email", "url", "encryptedstring", "combobox"})
_PICKLIST_TYPES: Final = frozenset({"picklist", "multipicklist"})
_NUMERIC_TYPES: Final = frozenset({"double", "currency", "int", "long", "percent"})
_RELATION_TYPES: Final = frozenset({"reference", "id"})


@dataclass(frozen=True)
class FieldRule:
    """One Lead field set by a parameter.

    ``values`` maps the normalised parameter value (``yes``/``no`` or an enum key) to the text written;
    ``None`` means the value itself is written (``True``/``False`` for yes_no, the text or number otherwise).
    ``rank`` (never_downgrade only) lists the field's values from lowest to highest.
    """

    field: str
    mode: WriteMode
    values: TypingMapping[str, str] | None
    rank: tuple[str, ...]
    where: str  # "config/mapping.toml:21 params.interested.fields.Status", for messages

    def value_for(self, kind: ValueKind, normalised: Any) -> Any:
        """What this rule writes for a (known) normalised value; ``None`` when it maps nothing for it."""
        if self.values is not None:
            return self.values.get(normalised)
        if kind is ValueKind.YES_NO:
            return normalised == YES
        return normalised

    def rank_of(self, value: Any) -> int | None:
        """Position of ``value`` in ``rank`` (case-insensitive), or None when it is not ranked."""
        folded = str(value).strip().casefold()
        return next((i for i, ranked in enumerate(self.rank) if ranked.casefold() == folded), None)


@dataclass(frozen=True)
class ParamRule:
    """How one output parameter is normalised and which fields it sets, in file order."""

    param: str
    kind: ValueKind
    fields: tuple[FieldRule, ...]
    where: str


@dataclass(frozen=True)
class CallbackRule:
    """Which output parameters ask for a callback, and how the follow-up Task looks."""

    requested_param: str
    time_param: str
    priority: str
    subject_prefix: str


@dataclass(frozen=True)
class AgentRules:
    """One agent's overrides: param rules replaced whole or added, default rules dropped, callback keys."""

    agent_id: str
    params: tuple[ParamRule, ...]
    drop: frozenset[str]
    callback: CallbackRule | None
    auto_callback: AutoCallbackRule | None = None


class Mapping:
    """A validated mapping file. Build it with :func:`load_mapping`."""

    def __init__(
        self,
        *,
        source: str,
        sobject: str,
        params: tuple[ParamRule, ...],
        callback: CallbackRule,
        agents: TypingMapping[str, AgentRules],
        callback_where: TypingMapping[str | None, str],
        auto_callback: AutoCallbackRule = AUTO_CALLBACK_OFF,
    ) -> None:
        self.source = source
        self.sobject = sobject
        self.default_rules = params
        self.default_callback = callback
        self.agents: TypingMapping[str, AgentRules] = MappingProxyType(dict(agents))
        self._callback_where = dict(callback_where)
        self.default_auto_callback = auto_callback

    def __repr__(self) -> str:
        params = [rule.param for rule in self.default_rules]
        return f"Mapping({self.source!r}, params={params}, agents={list(self.agents)})"

    def rules_for(self, agent_id: str | None) -> tuple[ParamRule, ...]:
        """The param rules for a call by ``agent_id``, in order: the default rules in file order (an agent's
        replacement takes its default's place, dropped ones are left out), then the agent's own new ones."""
        agent = self.agents.get(agent_id) if agent_id else None
        if agent is None:
            return self.default_rules
        replacing = {rule.param: rule for rule in agent.params}
        kept = [replacing.pop(rule.param, rule) for rule in self.default_rules if rule.param not in agent.drop]
        return (*kept, *replacing.values())

    def callback_rule(self, agent_id: str | None) -> CallbackRule:
        """The callback declaration for ``agent_id`` (the default one unless the agent overrides it)."""
        agent = self.agents.get(agent_id) if agent_id else None
        return agent.callback if agent is not None and agent.callback is not None else self.default_callback

    def auto_callback_rule(self, agent_id: str | None) -> AutoCallbackRule:
        """The automatic-callback settings for calls by ``agent_id`` (the default unless it overrides them)."""
        agent = self.agents.get(agent_id) if agent_id else None
        if agent is not None and agent.auto_callback is not None:
            return agent.auto_callback
        return self.default_auto_callback

    def all_rules(self) -> Iterator[ParamRule]:
        """Every param rule in the file: defaults, then each agent's."""
        yield from self.default_rules
        for agent in self.agents.values():
            yield from agent.params

    def lead_fields(self) -> frozenset[str]:
        """Every field any rule (default or agent) may read or write, as named in the file."""
        return frozenset(target.field for rule in self.all_rules() for target in rule.fields)

    @staticmethod
    def field_lengths(describe: TypingMapping[str, Any]) -> dict[str, int]:
        """``{field: length}`` of the describe's fields that have a positive length (text, picklists, ...)."""
        return {
            field["name"]: field["length"]
            for field in _described_fields(describe).values()
            if isinstance(field.get("length"), int) and field["length"] > 0
        }

    def check_against_describe(self, sobject: str, describe: TypingMapping[str, Any]) -> list[str]:
        """Problems between this mapping and the org, from ``sobject``'s describe JSON; empty if none.

        For the mapping's object (Lead): a target field that is missing, not updateable, a relationship, of
        a type the rule cannot write, a mapped value that is not an active picklist value or is longer than
        the field. For ``Task``: a callback priority that is not an active ``Priority`` value. Others: none.
        """
        fields = _described_fields(describe)
        if sobject.casefold() == "task":
            return self._check_task(fields)
        if sobject.casefold() != self.sobject.casefold():
            return []
        problems: list[str] = []
        for rule in self.all_rules():
            for target in rule.fields:
                for problem in _field_problems(self.sobject, rule.kind, target, fields):
                    if problem not in problems:
                        problems.append(problem)
        return problems

    def _check_task(self, fields: dict[str, dict[str, Any]]) -> list[str]:
        priority = fields.get("priority")
        if priority is None:
            return [f"{self.source}: Task.Priority is missing from the describe"]
        active = _active_values(priority)
        rules = [(None, self.default_callback)] + [
            (agent_id, agent.callback) for agent_id, agent in self.agents.items() if agent.callback is not None
        ]
        return [
            f"{self._callback_where.get(agent_id, self.source)}: priority {rule.priority!r} is not an active "
            f"Task.Priority value (active: {', '.join(active)})"
            for agent_id, rule in rules
            if rule.priority not in active
        ]


def _described_fields(describe: TypingMapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Describe fields by casefolded name (Salesforce field names are case-insensitive)."""
    fields = describe.get("fields") or []
    return {
        field["name"].casefold(): field
        for field in fields
        if isinstance(field, dict) and isinstance(field.get("name"), str)
    }


def _active_values(field: TypingMapping[str, Any]) -> list[str]:
    return [
        entry["value"]
        for entry in field.get("picklistValues") or []
        if isinstance(entry, dict) and isinstance(entry.get("value"), str) and entry.get("active", True)
    ]


def _field_problems(sobject: str, kind: ValueKind, target: FieldRule, fields: dict[str, dict[str, Any]]) -> list[str]:
    name = f"{sobject}.{target.field}"
    described = fields.get(target.field.casefold())
    if described is None:
        return [f"{target.where}: {name} does not exist in this org"]
    problems = []
    if described.get("updateable") is not True:
        problems.append(f"{target.where}: {name} is not updateable")
    field_type = str(described.get("type", "")).casefold()
    if field_type in _RELATION_TYPES:
        return [
            *problems,
            f"{target.where}: {name} is a {field_type} field; an output parameter may not set it",
        ]
    writes, allowed = _writes(kind, target)
    if field_type not in allowed:
        problems.append(f"{target.where}: {name} is a {field_type or 'untyped'} field; this rule writes {writes}")
    if target.values is None:
        return problems
    if field_type in _PICKLIST_TYPES:
        active = _active_values(described)
        by_fold = {value.casefold(): value for value in active}
        for value in dict.fromkeys(target.values.values()):
            if value not in active:
                hint = f" (did you mean {by_fold[value.casefold()]!r}?)" if value.casefold() in by_fold else ""
                problems.append(
                    f"{target.where}: {value!r} is not an active value of the {name} picklist{hint}; "
                    f"active: {', '.join(active) or '(none)'}"
                )
    length = described.get("length")
    if isinstance(length, int) and length > 0:
        problems.extend(
            f"{target.where}: {value!r} is longer than {name} allows ({length} characters)"
            for value in dict.fromkeys(target.values.values())
            if len(value) > length
        )
    return problems


def _writes(kind: ValueKind, target: FieldRule) -> tuple[str, frozenset[str]]:
    """(what the rule writes, the describe types that can hold it)."""
    if target.values is not None:
        return "text from its values map", _TEXT_TYPES | _PICKLIST_TYPES
    table: dict[ValueKind, tuple[str, frozenset[str]]] = {
        ValueKind.YES_NO: ("true/false (yes_no without a values map)", frozenset({"boolean"})),
        ValueKind.NUMBER: ("a number", _NUMERIC_TYPES),
        ValueKind.TEXT: ("free text (a picklist needs kind enum with a values map)", _TEXT_TYPES),
    }
    return table[kind]
