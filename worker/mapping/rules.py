"""Apply a mapping to one call's output parameters and the Lead's current values: what to write, and why.

:func:`plan_lead_fields` is pure (no I/O). Its decisions, all deterministic:

- Rules run in order (:meth:`Mapping.rules_for`), and each rule's fields in file order. Each field change is
  judged against the value the field has *at that point*: the Lead's current value, or the value an earlier
  rule of this plan already set. So when several parameters target one field, a later rule wins only if its
  write mode allows it (an ``overwrite`` later wins; a ``fill_if_empty`` later loses to an earlier fill).
- Write modes: ``overwrite`` always writes; ``fill_if_empty`` writes only into an empty field (None or
  blank text; a checkbox's False is a value); ``never_downgrade`` writes into an empty field or when the new
  value ranks at or above the current one. When the current value is not in the rank (an org-specific
  status such as "Qualified", or one an admin added later) the field is left alone: whether the new value
  is an upgrade cannot be known, and keeping a human's choice is the safe side. The ``reason`` says so.
- Values written are data only: text is trimmed and, when ``field_lengths`` has the field, cut to its length
  (before comparing with the current value, so a re-run plans nothing new).
- A value that normalises to unknown (``maybe``, ``pata nahi``, empty, ...) writes nothing and is reported in
  ``unknown``. A known value no field maps (e.g. ``no`` when a rule maps only ``yes``) writes nothing and is
  reported in ``other``, as are parameters no rule covers, so the call's description misses nothing.
- Callback: ``callback_requested`` = no means no callback, even if a time is present; = yes means a callback
  (with the time phrase if there is one); absent or unknown means a callback exactly when the time parameter
  holds a real phrase (not blank, not ``N/A``, not a "no"). An unknown requested value goes to ``unknown``.
- Output parameter names match rules exactly (they are the names the agent defines).
"""

from __future__ import annotations

from collections import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from worker.mapping.config import CallbackRule, FieldRule, Mapping, WriteMode
from worker.mapping.values import NO, UNKNOWN, YES, clean_text, normalise, text_value, truncate, yes_no


@dataclass(frozen=True)
class FieldChange:
    """One field a parameter would set. ``old`` is the field's value before this change (see module doc)."""

    field: str
    param: str
    raw: Any
    old: Any
    new: Any
    mode: WriteMode
    applied: bool  # False when the mode kept the old value
    reason: str  # "overwrite", "kept: 'Qualified' ranks above 'Working - Contacted'", "kept: field already set"


@dataclass(frozen=True)
class LeadFieldPlan:
    """What one call changes on its Lead, and what it leaves for the call Task's description."""

    changes: tuple[FieldChange, ...]  # every mapped param that produced a value (applied or kept), in rule order
    unknown: tuple[tuple[str, Any], ...]  # (param, raw value) covered by a rule but normalised to unknown
    other: dict[str, Any]  # params that wrote nothing and are not callback params (uncovered or unmapped value)
    callback_requested: bool
    callback_phrase: str | None  # the trimmed time phrase when a callback is requested and one was said

    @property
    def updates(self) -> dict[str, Any]:
        """``{field: value}`` to write: the final applied value of each field that differs from the Lead's."""
        final: dict[str, tuple[str, Any]] = {}  # casefolded field -> (field as named, last applied value)
        original: dict[str, Any] = {}  # casefolded field -> the Lead's value (the first change's ``old``)
        for change in self.changes:
            key = change.field.casefold()
            original.setdefault(key, change.old)
            if change.applied:
                final[key] = (change.field, change.new)
        return {field: new for key, (field, new) in final.items() if new != original[key]}


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _overwrite(target: FieldRule, old: Any, new: Any) -> tuple[bool, str]:
    return True, "overwrite"


def _fill_if_empty(target: FieldRule, old: Any, new: Any) -> tuple[bool, str]:
    if _is_empty(old):
        return True, "fill_if_empty: field was empty"
    return False, "kept: field already set"


def _never_downgrade(target: FieldRule, old: Any, new: Any) -> tuple[bool, str]:
    if _is_empty(old):
        return True, "never_downgrade: field was empty"
    old_rank, new_rank = target.rank_of(old), target.rank_of(new)
    if old_rank is None or new_rank is None:
        return False, f"kept: current value {old!r} is not in the rank, so {new!r} might be a downgrade"
    if new_rank < old_rank:
        return False, f"kept: {old!r} ranks above {new!r}"
    if new_rank == old_rank:
        return True, "never_downgrade: same rank"
    return True, f"never_downgrade: {new!r} ranks above {old!r}"


_DECIDE: Final[dict[WriteMode, Callable[[FieldRule, Any, Any], tuple[bool, str]]]] = {
    WriteMode.OVERWRITE: _overwrite,
    WriteMode.FILL_IF_EMPTY: _fill_if_empty,
    WriteMode.NEVER_DOWNGRADE: _never_downgrade,
}


class _Fields:
    """Field values by case-insensitive name (Salesforce field names are case-insensitive)."""

    def __init__(self, values: abc.Mapping[str, Any] | None) -> None:
        self._values = {name.casefold(): value for name, value in (values or {}).items()}

    def get(self, field: str) -> Any:
        return self._values.get(field.casefold())

    def set(self, field: str, value: Any) -> None:
        self._values[field.casefold()] = value


def _callback(
    rule: CallbackRule, outputs: abc.Mapping[str, Any], unknown: list[tuple[str, Any]]
) -> tuple[bool, str | None]:
    said_time = outputs.get(rule.time_param)
    phrase = text_value(said_time)
    has_phrase = isinstance(phrase, str) and yes_no(said_time) is not NO
    requested = yes_no(outputs[rule.requested_param]) if rule.requested_param in outputs else UNKNOWN
    if rule.requested_param in outputs and requested is UNKNOWN:
        unknown.append((rule.requested_param, outputs[rule.requested_param]))
    is_requested = requested == YES if requested is not UNKNOWN else has_phrase
    return is_requested, (phrase if is_requested and isinstance(phrase, str) and has_phrase else None)


def plan_lead_fields(
    mapping: Mapping,
    *,
    agent_id: str | None,
    output_parameters: abc.Mapping[str, Any],
    current: abc.Mapping[str, Any],
    field_lengths: abc.Mapping[str, int] | None = None,
) -> LeadFieldPlan:
    """Plan the Lead field changes of one call (see the module docstring for every rule it follows).

    ``current`` is the Lead's current field values (empty when the Lead is being created); ``field_lengths``
    (from the describe, :meth:`Mapping.field_lengths`) caps text values.
    """
    state = _Fields(current)
    lengths = _Fields(field_lengths)
    changes: list[FieldChange] = []
    unknown: list[tuple[str, Any]] = []
    wrote_nothing: set[str] = set()
    covered: set[str] = set()
    for rule in mapping.rules_for(agent_id):
        if rule.param not in output_parameters:
            continue
        covered.add(rule.param)
        raw = output_parameters[rule.param]
        value = normalise(rule.kind, raw)
        if value is UNKNOWN:
            unknown.append((rule.param, raw))
            continue
        produced = False
        for target in rule.fields:
            new = target.value_for(rule.kind, value)
            if new is None:
                continue
            produced = True
            new, cut = truncate(clean_text(new) if isinstance(new, str) else new, lengths.get(target.field))
            old = state.get(target.field)
            applied, reason = _DECIDE[target.mode](target, old, new)
            if cut:
                reason += f" (cut to {lengths.get(target.field)} characters)"
            changes.append(FieldChange(target.field, rule.param, raw, old, new, target.mode, applied, reason))
            if applied:
                state.set(target.field, new)
        if not produced:
            wrote_nothing.add(rule.param)
    callback = mapping.callback_rule(agent_id)
    requested, phrase = _callback(callback, output_parameters, unknown)
    callback_params = {callback.requested_param, callback.time_param}
    other = {
        name: raw
        for name, raw in output_parameters.items()
        if name not in callback_params and (name not in covered or name in wrote_nothing)
    }
    return LeadFieldPlan(
        changes=tuple(changes),
        unknown=tuple((name, output_parameters[name]) for name in dict.fromkeys(name for name, _ in unknown)),
        other=other,
        callback_requested=requested,
        callback_phrase=phrase,
    )
