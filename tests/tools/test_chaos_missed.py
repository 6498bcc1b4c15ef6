"""CI's "missed webhooks" chaos run (small): 60 calls finished by Twenty2 over 20 s under the chaos run's
faults (no worker kills: their redelivery takes longer than CI's budget), 5 % of webhooks never sent, the
intake stopped for 6 s mid-run, then the replay, then call Tasks deleted by a person and ``crm-sync audit
--fix``. Counts are asserted, never durations (the run reports its own)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chaos.missed import missed_options, missed_phases
from chaos.run import run_chaos


@pytest.fixture(scope="module")
def missed_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    options = missed_options(
        events=60, workers=2, seed=3, timeout=90, worker_kills=0, min_window=20, work_dir=tmp_path_factory.mktemp("m")
    )
    return run_chaos(options, phases=missed_phases(intake_down=6))


def test_missed_webhooks_are_found_and_the_audit_fixes_deleted_tasks(missed_run: dict[str, Any]) -> None:
    run, replay, audit = missed_run["run"], missed_run["replay"], missed_run["audit"]
    # The chaos happened: webhooks never sent, and refused while the intake was down.
    assert run["webhooks_never_sent"] == 3 and run["webhooks_refused_intake_down"] > 0
    assert run["missed"] == run["webhooks_never_sent"] + run["webhooks_refused_intake_down"]
    # Reconciliation found every missed call; nothing lost or doubled.
    assert run["missed_found_by_reconciliation"] == run["missed"] and run["missed_not_found"] == []
    assert run["last_missed_found_after_seconds"] is not None
    for phase in (run, replay, audit):
        assert phase["lost"] == [] and phase["duplicate_task_calls"] == [] and phase["wrong_task_calls"] == []
        assert phase["leads_wrongly_updated"] == [] and phase["leads_created"] == 0
    # The audit found exactly the deleted Tasks, --fix restored them, and the audit then found nothing.
    assert len(audit["tasks_deleted"]) == 2 and audit["audit_found_exactly_the_deleted"] is True
    assert audit["audit_before_fix"]["missing_in_salesforce"] == 2 and audit["audit_other_findings_before_fix"] == []
    assert audit["fix_exit"] == 0 and audit["fix_replayed"] == 2
    assert audit["audit_after_fix"]["findings"] == 0 and audit["audit_after_exit"] == 0
    assert audit["failed"] == 0 and audit["synced"] == 60
    assert all(t["ok"] for t in missed_run["targets"]) and missed_run["passed"] is True
