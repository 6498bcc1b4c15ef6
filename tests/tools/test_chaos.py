"""CI's chaos run: 100 webhooks through the real Procfile processes while workers are SIGKILLed, Redis is
restarted and both APIs fail ~10% of the time; nothing may be lost or duplicated, and the planted permanent
failures must fail with their reasons and be fixed by ``crm-sync replay --all-failed``.

Counts are asserted, never durations (the chaos run reports its own run time).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chaos.run import ChaosOptions, run_chaos

#: Stage of each planted failure code, as the ledger records it.
PLANTED_STAGES = {"CALL_NOT_FOUND": "fetch", "FIELD_CUSTOM_VALIDATION_EXCEPTION": "write"}


@pytest.fixture
def chaos_run(tmp_path: Path) -> dict[str, Any]:
    # A per-phase timeout well above the ~60 s a killed worker's calls take to come back (stale sweep).
    return run_chaos(ChaosOptions(events=100, workers=2, seed=7, timeout=120, work_dir=tmp_path))


def test_chaos_run(chaos_run: dict[str, Any]) -> None:
    chaos, run, replay, planted = chaos_run["chaos"], chaos_run["run"], chaos_run["replay"], chaos_run["planted"]
    # The chaos happened.
    assert len(chaos["worker_kills"]) == 4 and chaos["redis_restarts"] == 1
    assert sum(chaos["salesforce_faults"].values()) > 0 and chaos["twenty2_faults"] > 0

    # After the run: nothing lost or duplicated, Leads as the mapping says, only the planted calls failed.
    assert run["events_posted"] == 100
    assert run["accepted"] + sum(run["rejected"].values()) == 100
    assert run["lost"] == [] and run["duplicate_task_calls"] == []
    assert run["wrong_task_calls"] == [] and run["leads_wrongly_updated"] == [] and run["leads_created"] == 0
    assert {f["call_id"]: f["code"] for f in run["failed_calls"]} == planted
    assert run["failure_reasons"] == {f"{PLANTED_STAGES[c]}/{c}": n for c, n in Counter(planted.values()).items()}
    assert run["synced"] + run["failed"] + run["skipped"] >= run["accepted"]

    # After the replay: every planted failure is synced, still nothing lost or duplicated.
    assert replay["failed"] == 0 and replay["planted_not_synced"] == []
    assert replay["lost"] == [] and replay["duplicate_task_calls"] == []
    assert replay["wrong_task_calls"] == [] and replay["leads_wrongly_updated"] == [] and replay["leads_created"] == 0
    assert replay["synced"] == run["synced"] + len(planted)
    assert all(t["ok"] for t in chaos_run["targets"]) and chaos_run["passed"] is True
