"""The ``[auto_callback]`` tables of the mapping file: whether (and how) the AI agent itself calls back.

A default ``[auto_callback]`` table and per-agent ``[agents."<id>".auto_callback]`` tables; an agent's
table changes only the keys it lists. Off unless the file switches it on. Validation reports through the
loader's ``fail`` (``<file>:<line>: <key>: <what is wrong>``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

KEYS: Final = (
    "enabled",
    "agent_id",
    "caller_phone",
    "attempts",
    "gap_minutes",
    "per_lead_per_day",
    "per_workspace_per_day",
    "daily_cost_ceiling_inr",
)
_PHONE: Final = re.compile(r"\d{10}")


@dataclass(frozen=True)
class AutoCallbackRule:
    """One agent's (or the default) automatic-callback settings.

    ``agent_id`` None: the agent that took the promising call places the callback. ``attempts``: calls
    placed at most for one promise (an unanswered one is tried again ``gap_minutes`` later).
    """

    enabled: bool = False
    agent_id: str | None = None
    caller_phone: str = ""
    attempts: int = 2
    gap_minutes: float = 30.0
    per_lead_per_day: int = 2
    per_workspace_per_day: int = 200
    daily_cost_ceiling_inr: float = 2000.0

    def placing_agent(self, source_agent: str | None) -> str | None:
        return self.agent_id or source_agent


AUTO_CALLBACK_OFF: Final = AutoCallbackRule()

Fail = Callable[[Sequence[str], str], None]


def read_auto_callback(fail: Fail, path: tuple[str, ...], raw: Any, base: AutoCallbackRule) -> AutoCallbackRule | None:
    """Validate one ``auto_callback`` table over ``base``; None (problems reported) when invalid."""
    if not isinstance(raw, dict):
        fail(path, f"must be a table ({', '.join(KEYS)}), not {type(raw).__name__}")
        return None
    ok = True
    values: dict[str, Any] = {}
    for key, value in raw.items():
        checker = _CHECKS.get(key)
        if checker is None:
            fail((*path, key), f"unknown key (expected one of: {', '.join(KEYS)})")
            ok = False
            continue
        problem, cleaned = checker(value)
        if problem:
            fail((*path, key), problem)
            ok = False
        else:
            values[key] = cleaned
    if not ok:
        return None
    rule = replace(base, **values)
    if rule.enabled and not rule.caller_phone:
        fail((*path, "caller_phone"), "is required when enabled (a number active in the Twenty2 workspace)")
        return None
    return rule


def _bool(value: Any) -> tuple[str, Any]:
    return ("", value) if isinstance(value, bool) else (f"{value!r} is not true or false", None)


def _agent(value: Any) -> tuple[str, Any]:
    if not isinstance(value, str):
        return f"{value!r} is not a string (an agent_id, or empty for the calling agent)", None
    return "", value.strip() or None


def _phone(value: Any) -> tuple[str, Any]:
    if not isinstance(value, str) or not _PHONE.fullmatch(value.strip()):
        return f"{value!r} is not a 10-digit number without country code, as Twenty2 takes it", None
    return "", value.strip()


def _int_at_least(low: int) -> Callable[[Any], tuple[str, Any]]:
    def check(value: Any) -> tuple[str, Any]:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return f"{value!r} is not a whole number >= {low}", None
        return "", value

    return check


def _number_at_least(low: float) -> Callable[[Any], tuple[str, Any]]:
    def check(value: Any) -> tuple[str, Any]:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            return f"{value!r} is not a number >= {low:g}", None
        return "", float(value)

    return check


_CHECKS: Final[dict[str, Callable[[Any], tuple[str, Any]]]] = {
    "enabled": _bool,
    "agent_id": _agent,
    "caller_phone": _phone,
    "attempts": _int_at_least(1),
    "gap_minutes": _number_at_least(1),
    "per_lead_per_day": _int_at_least(1),
    "per_workspace_per_day": _int_at_least(1),
    "daily_cost_ceiling_inr": _number_at_least(0),
}
