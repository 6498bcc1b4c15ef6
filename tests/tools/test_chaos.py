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

from support.redis_at_rest import scan_redis_dir

from chaos.run import WEBHOOK_SECRET, ChaosOptions, run_chaos
from standins.salesforce import OAuthConfig
from standins.twenty2.state import DEFAULT_API_KEY, DEFAULT_API_SECRET

#: Stage of each planted failure code, as the ledger records it.
PLANTED_STAGES = {"CALL_NOT_FOUND": "fetch", "FIELD_CUSTOM_VALIDATION_EXCEPTION": "write"}


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One chaos run for the tests of this module (the run and what its Redis left on disk)."""
    # A per-phase timeout well above the ~60 s a killed worker's calls take to come back (stale sweep).
    work = tmp_path_factory.mktemp("chaos")
    return run_chaos(ChaosOptions(events=100, workers=2, seed=7, timeout=120, work_dir=work))


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


def test_chaos_redis_files_hold_no_secret_or_full_number(chaos_run: dict[str, Any]) -> None:
    """What the chaos run's Redis left on disk (AOF across its restart, and an RDB of what it holds at the
    end) holds no configured secret and none of the run's numbers, in any spelling."""
    secrets = [WEBHOOK_SECRET, DEFAULT_API_KEY, DEFAULT_API_SECRET, OAuthConfig().client_secret]
    numbers = chaos_run["numbers"]
    expect = list(chaos_run["planted"])[:3]  # call ids the ledger keeps (failed, then replayed)
    scan = scan_redis_dir(Path(chaos_run["work_dir"]) / "redis", secrets=secrets, numbers=numbers, expect=expect)
    print(f"scanned {scan.files} and {scan.keys} keys for {len(secrets)} secrets and {len(numbers)} numbers")
    assert len(numbers) == 100 and scan.missing == {"AOF": [], "RDB": []} and sum(scan.files.values()) > 100_000
    assert scan.leaks == {}
