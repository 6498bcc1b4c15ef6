"""The callback rules (pure): one fixture per real-world case, each with the reason recorded."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from worker.autocall.rules import CHECKS, REASONS, Action, Facts, LeadFacts, TaskFacts, decide, follow_task
from worker.autocall.window import IST, windows_for
from worker.mapping.auto_callback import AutoCallbackRule

NOW = datetime(2030, 1, 10, 17, 0, tzinfo=IST).astimezone(UTC)
RULE = AutoCallbackRule(enabled=True, caller_phone="9999999999", per_lead_per_day=2, per_workspace_per_day=10,
                        daily_cost_ceiling_inr=100.0)  # fmt: skip
BASE = Facts(
    now=NOW,
    due=NOW,
    task_due=NOW,
    kill_switch=False,
    rule=RULE,
    task=TaskFacts(status="Not Started", is_closed=False, due=NOW),
    lead=LeadFacts(is_converted=False, status="Working - Contacted", opted_out=()),
    newer_call=False,
    windows=windows_for(IST, (time(9), time(21))),
    closed_statuses=frozenset({"Closed - Not Converted", "Closed - Converted"}),
    lead_calls_today=0,
    workspace_calls_today=0,
    cost_today=0.0,
)

CASES = {
    "due": BASE,
    "kill_switch": replace(BASE, kill_switch=True),
    "disabled": replace(BASE, rule=replace(RULE, enabled=False)),
    "task_deleted": replace(BASE, task=None),
    "task_completed": replace(BASE, task=TaskFacts(status="Completed", is_closed=True, due=NOW)),
    "task_moved": replace(BASE, task=TaskFacts(status="Not Started", is_closed=False, due=NOW + timedelta(hours=1))),
    "lead_missing": replace(BASE, lead=None),
    "converted": replace(BASE, lead=LeadFacts(is_converted=True, status="Closed - Converted", opted_out=())),
    "closed_status": replace(BASE, lead=LeadFacts(is_converted=False, status="Closed - Not Converted", opted_out=())),
    "opted_out": replace(
        BASE, lead=LeadFacts(is_converted=False, status="Working - Contacted", opted_out=("DoNotCall",))
    ),
    "newer_call": replace(BASE, newer_call=True),
    "outside_window": replace(BASE, now=NOW + timedelta(hours=4, minutes=30)),
    "lead_cap": replace(BASE, lead_calls_today=2),
    "workspace_cap": replace(BASE, workspace_calls_today=10),
    "cost_ceiling": replace(BASE, cost_today=100.0),
}


@pytest.mark.parametrize("reason", list(CASES))
def test_case_decides_its_reason(reason: str) -> None:
    decision = decide(CASES[reason])
    assert decision.reason == reason and decision.action is REASONS[reason][0]
    assert decision.text.startswith(REASONS[reason][1])


def test_task_moved_follows_the_task() -> None:
    decision = decide(CASES["task_moved"])
    assert decision.action is Action.MOVE and decision.due == NOW + timedelta(hours=1)


def test_task_moved_into_the_night_goes_to_next_opening() -> None:
    night = NOW + timedelta(hours=5)  # 22:00 IST
    decision = decide(replace(BASE, task=TaskFacts(status="Not Started", is_closed=False, due=night)))
    assert decision.due == datetime(2030, 1, 11, 9, 0, tzinfo=IST).astimezone(UTC)


def test_outside_window_moves_to_next_opening() -> None:
    decision = decide(CASES["outside_window"])
    assert decision.due == datetime(2030, 1, 11, 9, 0, tzinfo=IST).astimezone(UTC)


def test_kill_switch_wins_over_everything() -> None:
    worst = replace(CASES["opted_out"], kill_switch=True, task=None, lead_calls_today=9)
    assert decide(worst).reason == "kill_switch"


def test_reasons_table_covers_every_check() -> None:
    # one check (follow_task) decides three reasons: task_deleted, task_completed, task_moved
    assert len(CHECKS) == len(CASES) - 1 - 2 and set(CASES) <= set(REASONS)


def test_follow_task_leaves_an_unchanged_task_alone() -> None:
    assert follow_task(BASE.task, NOW + timedelta(seconds=30), NOW - timedelta(hours=2), BASE.windows) is None


def test_follow_task_moved_earlier_moves_the_callback_earlier() -> None:
    earlier = NOW - timedelta(hours=2)
    task = TaskFacts(status="Not Started", is_closed=False, due=earlier)
    decision = follow_task(task, NOW, NOW - timedelta(hours=5), BASE.windows)
    assert decision is not None and decision.reason == "task_moved" and decision.due == earlier


def test_follow_task_into_the_night_records_the_task_time_so_it_is_followed_once() -> None:
    night = NOW + timedelta(hours=5)  # 22:00 IST: the callback goes to 09:00, the Task's time is remembered
    task = TaskFacts(status="Not Started", is_closed=False, due=night)
    decision = follow_task(task, NOW, NOW - timedelta(hours=5), BASE.windows)
    assert decision is not None and decision.task_due == night
    assert decision.due == datetime(2030, 1, 11, 9, 0, tzinfo=IST).astimezone(UTC)
    assert follow_task(task, decision.task_due, NOW - timedelta(hours=4), BASE.windows) is None
