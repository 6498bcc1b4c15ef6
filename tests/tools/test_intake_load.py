"""The intake load test at a tiny size: every figure comes out, and no accepted webhook is lost.

Timing targets are not asserted (a few seconds on a busy test machine say nothing about them); the load test
itself reports them against its targets.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from intake_load import LoadOptions, lost, run, table, waiting_call_ids

from standins.stack.redis_server import RedisServer
from worker.errors import SalesforceUnavailable
from worker.ledger import Ledger

RUNS = ("bare", "bare-fastapi", "intake", "steady", "burst")
FIGURES = ("requests", "requests_per_second", "p50_ms", "p99_ms", "max_ms")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    options = LoadOptions(
        seconds=2,
        throughput_limit=300,
        rate=40,
        burst=60,
        burst_seconds=1,
        steady_connections=8,
        burst_connections=16,
        drain_timeout=240,
        work_dir=tmp_path_factory.mktemp("intake-load"),
        say=lambda _text: None,
    )
    return run(options)


def test_tiny_load_prints_every_figure_and_loses_nothing(tiny_run: dict[str, Any]) -> None:
    [figures] = tiny_run["results"]["this"]
    for name in RUNS:
        for figure in FIGURES:
            value = figures[name][figure]
            assert isinstance(value, int | float) and value > 0, (name, figure, value)
    # The mix reached the intake: accepted, refused as malformed, refused as unauthenticated.
    statuses = figures["intake"]["statuses"]
    assert statuses.get(200, 0) > 0 and statuses.get(401, 0) > 0
    assert set(statuses) <= {200, 400, 401, 415, 422}, statuses
    assert figures["steady"]["requests"] == 80 and figures["burst"]["requests"] == 60
    for name in ("intake", "steady", "burst"):
        lost = figures[name]["lost"]
        assert lost["accepted_calls"] > 0 and lost["lost"] == 0, (name, lost)
    assert figures["drain_seconds"] is not None
    assert [t["target"][:3] for t in figures["targets"]] == ["(b)", "(c)", "(c)", "(d)", "(d)"]

    printed = table(tiny_run)
    labels = ("(a) bare endpoint", "(a') bare FastAPI endpoint", "(b) intake", "(c) steady", "(d) burst")
    for label in (*labels, "intake / bare requests/s", "intake / bare FastAPI requests/s"):
        assert label in printed


def test_call_due_again_is_waiting_not_lost(tmp_path: Path) -> None:
    """A call the worker put on a retry (due in the ledger, no task in the broker) is waiting, not lost; a
    queued call with neither is lost; a synced one is neither."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        ledger = Ledger(redis.Redis.from_url(server.url))
        for call_id in ("call_due", "call_forgotten", "call_synced"):
            ledger.accept(call_id, source="webhook")
        ledger.retry_later("call_due", error=SalesforceUnavailable("down"), due_at=time.time() + 60)
        ledger.synced("call_synced", salesforce_ids={}, summary="ok")
        waiting = waiting_call_ids(ledger)
        found = lost(ledger, ["call_due", "call_forgotten", "call_synced", "call_unknown"], waiting_ids=waiting)
    finally:
        server.stop()
    assert waiting == {"call_due"}
    assert found == {"accepted_calls": 4, "missing": 1, "not_done": 1, "lost": 2, "waiting": 1}
