"""CI's "missed webhooks" chaos scenario (small): 60 calls finished by Twenty2 over 20 s, 5 % of webhooks
never sent, the intake stopped for 6 s mid-run, two call Tasks deleted by a person afterwards. Every call
must end in Salesforce exactly once, every missed call be found by reconciliation, and the audit must find
the deleted Tasks and report 0 findings after ``--fix``. Counts are asserted, never durations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chaos.missed import MissedOptions, run_missed


@pytest.fixture(scope="module")
def missed_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("missed")
    return run_missed(MissedOptions(events=60, window=20, intake_down=6, seed=3, timeout=90, work_dir=work))


def test_missed_webhooks_are_found_and_the_audit_fixes_deleted_tasks(missed_run: dict[str, Any]) -> None:
    f = missed_run
    # The chaos happened: webhooks never sent and refused while the intake was down.
    assert f["webhooks_never_sent"] == 3 and f["webhooks_refused_intake_down"] > 0
    assert f["missed"] == f["webhooks_never_sent"] + f["webhooks_refused_intake_down"]
    # Every missed call was found by reconciliation; nothing lost or doubled before the deletions.
    assert f["missed_found_by_reconciliation"] == f["missed"] and f["missed_not_found"] == []
    assert f["before_deletions"]["lost"] == [] and f["before_deletions"]["duplicate_task_calls"] == []
    # The audit found exactly the deleted Tasks, --fix restored them, and the audit then found nothing.
    assert f["audit_found_deleted"] is True and f["audit_before_fix"]["missing_in_salesforce"] == 2
    assert f["fix_exit"] == 0 and f["fix_replayed"] == 2
    assert f["audit_after_fix"]["findings"] == 0 and f["audit_after_exit"] == 0
    final = f["final"]
    assert final["lost"] == [] and final["duplicate_task_calls"] == [] and final["wrong_followups"] == []
    assert final["synced"] == f["calls"] == 60 and final["not_synced"] == []
    assert f["last_missed_found_after_seconds"] is not None
    assert all(t["ok"] for t in f["targets"]) and f["passed"] is True
