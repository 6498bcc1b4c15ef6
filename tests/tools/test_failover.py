"""CI's failover run: a few dozen webhooks through the real Procfile processes on a Sentinel deployment
(a primary, two replicas, three Sentinels) whose primary is SIGKILLed mid-run and later rejoins as a
replica. No answered webhook may be lost, no Task written twice.

Counts are asserted, never durations (the run prints its recovery times).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chaos.failover import FailoverOptions, run_failover


def test_failover_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    work = tmp_path_factory.mktemp("failover")
    options = FailoverOptions(
        events=40, workers=1, post_rate=4.0, kill_at=0.3, restart_after=3.0, timeout=60.0, work_dir=work
    )
    figures = run_failover(options)
    assert figures["events"] == 40
    # The fault happened: killed, a replica promoted, the old primary back as a replica.
    assert figures["failover_ok"] is True and figures["failover_error"] is None
    assert figures["seconds_kill_to_promotion"] is not None
    # Webhooks sent while no primary answered were refused (503) and sent again, then answered.
    assert figures["never_answered"] == [] and figures["answered"] == 40
    assert figures["seconds_kill_to_first_200"] is not None and figures["seconds_kill_to_first_sync"] is not None
    # Nothing answered is lost, nothing is written twice.
    assert figures["lost"] == [] and figures["duplicate_task_calls"] == [] and figures["failed"] == []
    assert figures["states"].get("synced", 0) + figures["states"].get("skipped", 0) == 40
    assert figures["passed"] is True
