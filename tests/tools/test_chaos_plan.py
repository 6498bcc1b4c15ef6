"""The chaos run's pure parts, without servers: when the one-off faults fire, and which targets each phase
checks (the list ``chaos/README.md`` documents)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chaos.faults import fault_schedule
from chaos.options import RUN_SETTINGS, ChaosOptions, as_env
from chaos.phases import ReplayPhase, RunPhase, default_phases
from chaos.verify import replay_checks, run_checks, verdicts

CLEAN = {
    "lost": [],
    "duplicate_task_calls": [],
    "wrong_task_calls": [],
    "leads_wrongly_updated": [],
    "leads_created": 0,
    "planted_not_failed_as_planted": [],
    "unexpected_failures": [],
    "failed": 0,
    "planted_not_synced": [],
}


def test_fault_schedule_spreads_kills_and_places_restart_and_burst() -> None:
    plan = fault_schedule(20.0, 4)
    assert [name for _, name in plan] == [*["kill_worker"] * 4, "restart_redis", "limit_burst"]
    assert [at for at, _ in plan] == pytest.approx([4.0, 8.0, 12.0, 16.0, 10.0, 14.0])
    assert [name for _, name in fault_schedule(20.0, 0)] == ["restart_redis", "limit_burst"]


def test_window_is_at_least_min_window_else_events_over_rate() -> None:
    assert ChaosOptions(events=100).window == 12.0
    assert ChaosOptions(events=1000).window == 25.0


def test_overrides_change_settings_on_top_of_the_defaults() -> None:
    assert as_env(ChaosOptions().settings) == as_env(RUN_SETTINGS)
    # One the run already changes is replaced in place; a new one comes after them.
    options = ChaosOptions(
        overrides={
            "CRM_SYNC_MAX_ATTEMPTS": ("3", "fewer attempts"),
            "CELERY_VISIBILITY_TIMEOUT": ("3600", "a scenario's own"),
        }
    )
    assert as_env(options.settings)["CRM_SYNC_MAX_ATTEMPTS"] == "3"
    assert as_env(options.settings)["CELERY_VISIBILITY_TIMEOUT"] == "3600"
    assert list(options.settings) == [*RUN_SETTINGS, "CELERY_VISIBILITY_TIMEOUT"]


def test_the_run_keeps_the_default_visibility_timeout() -> None:
    """A killed worker's calls must come back through the dead-worker sweep, not a shortened timeout."""
    assert "CELERY_VISIBILITY_TIMEOUT" not in RUN_SETTINGS


def test_each_phase_checks_the_documented_targets() -> None:
    run = [what for what, _ in run_checks(CLEAN)]
    assert run == [
        "0 lost",
        "0 duplicate Tasks",
        "0 wrong or missing Tasks",
        "0 Leads wrongly updated",
        "0 Leads created",
        "every planted call failed with its reason",
        "no other failure",
    ]
    replay = [what for what, _ in replay_checks(CLEAN, ran=True)]
    assert replay == [*run[:5], "0 failed", "every planted call synced"]
    assert replay_checks(CLEAN, ran=False) == [("replay ran", 1)]


def test_verdicts_count_the_offenders() -> None:
    figures = {**CLEAN, "lost": ["c1", "c2"], "leads_created": 1}
    got = {v["target"]: (v["misses"], v["ok"]) for v in verdicts("run", run_checks(figures))}
    assert got["0 lost"] == (2, False) and got["0 Leads created"] == (1, False)
    assert got["no other failure"] == (0, True)


def test_default_phases_are_run_then_replay_and_new_each_time() -> None:
    first, second = default_phases(), default_phases()
    assert [type(p) for p in first] == [RunPhase, ReplayPhase] and [p.name for p in first] == ["run", "replay"]
    assert first[1] is not second[1]
    # A replay phase that never ran its command fails its target.
    assert first[1].checks(CLEAN) == [("replay ran", 1)]
