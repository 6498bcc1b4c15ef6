"""The webhook-first benchmark, short: under a reconciliation backlog a webhook's fetch does not wait for
the budget with the product's rule, and does wait (here until the limiter gives up, 5 s) without it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from reconcile_priority import PriorityOptions, markdown, run_priority_bench


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    options = PriorityOptions(seconds=6, threads=3, every=1.0, latency_ms=20, max_wait=5.0)
    return run_priority_bench(PriorityOptions(**{**vars(options), "work_dir": tmp_path_factory.mktemp("prio")}))


def test_webhook_first_under_a_backlog(short_run: dict[str, Any]) -> None:
    alone, first, one_queue = short_run["phases"]
    assert alone["reconcile_requests"] == 0 and first["reconcile_requests"] > 0
    assert first["webhook_fetches"] >= 5 and first["budget_wait_max_s"] < 1.0
    # Without the rule the backlog takes the whole window and the webhook waits in line.
    assert one_queue["budget_wait_max_s"] >= 4.0
    assert short_run["target"]["met"] is True
    assert "| backlog, webhook-first |" in markdown(short_run)
