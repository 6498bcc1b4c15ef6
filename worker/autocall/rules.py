"""Whether an automatic callback may be placed now (pure: facts in, one decision out, no I/O).

The checks run in the order of ``CHECKS``; the first that applies decides. Every decision carries a reason
from ``REASONS`` (its action and the sentence shown to ops), so every refusal and cancellation is
recorded with the same words in the store, the ledger, the CLI and the console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from worker.autocall.window import Window, inside, next_opening
from worker.mapping.auto_callback import AutoCallbackRule


class Action(StrEnum):
    TRIGGER = "trigger"  # place the call now
    MOVE = "move"  # not now: due again at ``Decision.due``
    CANCEL = "cancel"  # no longer wanted
    REFUSE = "refuse"  # wanted, but the rules forbid it: left to a human (the open Task)


#: reason → (action, what ops read)
REASONS: Final[dict[str, tuple[Action, str]]] = {
    "due": (Action.TRIGGER, "due, inside the calling window, within every rule"),
    "kill_switch": (Action.REFUSE, "the kill switch (CRM_SYNC_AUTO_CALLBACK_KILL_SWITCH) is on"),
    "disabled": (Action.REFUSE, "automatic callbacks are off for this agent in the mapping file"),
    "task_deleted": (Action.CANCEL, "the follow-up Task no longer exists"),
    "task_completed": (Action.CANCEL, "a rep completed (closed) the follow-up Task"),
    "task_moved": (Action.MOVE, "a rep changed the follow-up Task's due time: the callback follows it"),
    "lead_missing": (Action.CANCEL, "the Lead no longer exists"),
    "converted": (Action.CANCEL, "the Lead was converted"),
    "closed_status": (Action.CANCEL, "the Lead's status is a closed one"),
    "opted_out": (Action.CANCEL, "the Lead opted out of calls"),
    "newer_call": (Action.CANCEL, "a newer call already reached the lead"),
    "outside_window": (Action.MOVE, "outside the calling window: moved to its next opening"),
    "lead_cap": (Action.REFUSE, "the daily cap of automatic calls to this lead is reached"),
    "workspace_cap": (Action.REFUSE, "the workspace's daily cap of automatic calls is reached"),
    "cost_ceiling": (Action.REFUSE, "today's automatic calls reached the daily cost ceiling (INR)"),
    "ops_cancelled": (Action.CANCEL, "cancelled by ops"),
    "trigger_rejected": (Action.REFUSE, "Twenty2 refused the trigger (agent, number or credentials)"),
    "unanswered": (Action.REFUSE, "unanswered after every attempt: left to a human (the Task stays open)"),
}


@dataclass(frozen=True)
class TaskFacts:
    """The follow-up Task as Salesforce has it now."""

    status: str
    is_closed: bool
    due: datetime | None  # ReminderDateTime


@dataclass(frozen=True)
class LeadFacts:
    """The Lead as Salesforce has it now."""

    is_converted: bool
    status: str
    opted_out: tuple[str, ...]  # the opt-out fields that are set


@dataclass(frozen=True)
class Facts:
    """Everything one decision needs, read just before it."""

    now: datetime
    due: datetime  # when the callback is scheduled
    task_due: datetime | None  # the Task's due time the callback was scheduled on
    kill_switch: bool
    rule: AutoCallbackRule
    task: TaskFacts | None  # None: the Task is gone
    lead: LeadFacts | None  # None: the Lead is gone
    newer_call: bool
    windows: tuple[Window, ...]
    closed_statuses: frozenset[str]
    lead_calls_today: int
    workspace_calls_today: int
    cost_today: float


@dataclass(frozen=True)
class Decision:
    reason: str
    due: datetime | None = None  # for MOVE
    detail: str = ""
    task_due: datetime | None = None  # task_moved: the Task's new due time (what the callback follows now)

    @property
    def action(self) -> Action:
        return REASONS[self.reason][0]

    @property
    def text(self) -> str:
        base = REASONS[self.reason][1]
        return f"{base} ({self.detail})" if self.detail else base


def follow_task(
    task: TaskFacts | None, task_due: datetime | None, now: datetime, windows: tuple[Window, ...]
) -> Decision | None:
    """What the follow-up Task, as Salesforce has it now, says of a scheduled callback: gone or completed →
    cancel; its due time changed from ``task_due`` (the one the callback follows) → move to it (its next
    opening, never in the past); None: as scheduled. The one rule for both the due-time check (``decide``)
    and the sweep's periodic batched re-read of the Tasks (``Runner``)."""
    if task is None:
        return Decision("task_deleted")
    if task.is_closed:
        return Decision("task_completed", detail=task.status)
    if task.due is None or task_due is None or abs((task.due - task_due).total_seconds()) < 60:
        return None
    due = next_opening(windows, max(task.due, now))
    return Decision("task_moved", due=due, task_due=task.due, detail=f"now due {due:%Y-%m-%d %H:%M} UTC")


def _outside(f: Facts) -> Decision | None:
    if inside(f.windows, f.now):
        return None
    due = next_opening(f.windows, f.now)
    return Decision("outside_window", due=due, detail=f"next opening {due:%Y-%m-%d %H:%M} UTC")


def _when(reason: str, test: Callable[[Facts], bool], detail: Callable[[Facts], str] = lambda f: "") -> Check:
    def check(f: Facts) -> Decision | None:
        return Decision(reason, detail=detail(f)) if test(f) else None

    return check


Check = Callable[[Facts], Decision | None]

#: In order: the first check that applies decides.
CHECKS: Final[tuple[Check, ...]] = (
    _when("kill_switch", lambda f: f.kill_switch),
    _when("disabled", lambda f: not f.rule.enabled),
    lambda f: follow_task(f.task, f.task_due, f.now, f.windows),  # task_deleted, task_completed, task_moved
    _when("lead_missing", lambda f: f.lead is None),
    _when("converted", lambda f: f.lead is not None and f.lead.is_converted),
    _when(
        "closed_status",
        lambda f: f.lead is not None and f.lead.status in f.closed_statuses,
        lambda f: f.lead.status if f.lead else "",
    ),
    _when(
        "opted_out",
        lambda f: f.lead is not None and bool(f.lead.opted_out),
        lambda f: ", ".join(f.lead.opted_out) if f.lead else "",
    ),
    _when("newer_call", lambda f: f.newer_call),
    _outside,
    _when(
        "lead_cap",
        lambda f: f.lead_calls_today >= f.rule.per_lead_per_day,
        lambda f: f"{f.lead_calls_today} of {f.rule.per_lead_per_day} today",
    ),
    _when(
        "workspace_cap",
        lambda f: f.workspace_calls_today >= f.rule.per_workspace_per_day,
        lambda f: f"{f.workspace_calls_today} of {f.rule.per_workspace_per_day} today",
    ),
    _when(
        "cost_ceiling",
        lambda f: f.cost_today >= f.rule.daily_cost_ceiling_inr,
        lambda f: f"{f.cost_today:.2f} of {f.rule.daily_cost_ceiling_inr:.2f} INR today",
    ),
)


def decide(facts: Facts) -> Decision:
    """The decision for a callback that has come due (``facts.due <= facts.now``)."""
    for check in CHECKS:
        decision = check(facts)
        if decision is not None:
            return decision
    return Decision("due")


#: Why a promise is not scheduled at all (it stays a follow-up Task, as without automatic callbacks).
NOT_SCHEDULED: Final[dict[str, str]] = {
    "no_callback": "the call asked for no callback",
    "not_confident": "the callback time is not a confident reading (only 'ok' ones are called back)",
    "disabled": REASONS["disabled"][1],
    "no_lead": "the call is not logged on a Lead (a Contact, or no record)",
    "no_task": "no follow-up Task was written",
    "no_phone": "the call has no number to call back",
    "exists": "a callback for this call is already recorded",
}
