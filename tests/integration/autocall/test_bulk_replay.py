"""Replays and backfills (the bulk path, ``worker.sync.bulk``) run the automatic-callback hook as the
streaming worker does (both record a sync in ``worker.sync.core.record_synced``): a replayed call that
promised a callback schedules it, once; a replayed callback call closes its loop."""

from __future__ import annotations

from pathlib import Path

from support.autocall import AGENT, Harness, harness

from standins.stack.sandboxes import Sandboxes
from worker.autocall.store import CbState
from worker.sync.bulk import BulkSync

PHONE = "9811133344"


def promising_call(h: Harness) -> str:
    """A completed call promising a callback "today 5pm", in Twenty2 only (never synced by a worker)."""
    lead = h.new_lead(PHONE)
    return h.boxes.twenty2.add_call(
        callee_phone=PHONE,
        agent_id=AGENT,
        ended_at=h.now().replace(microsecond=0),
        input_parameters={"salesforce_id": lead, "customerName": "Test"},
        output_parameters={"interested": "yes", "callback_requested": "yes", "callback_time": "today 5pm"},
    )


def test_bulk_replay_of_callback_promising_call_schedules_one_callback(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promising_call(h)
    report = BulkSync(h.runtime).run([source], source="replay", force=True)
    assert report.outcomes["synced"] == 1
    cb = h.callback(source)
    assert cb.state is CbState.SCHEDULED and cb.task_id == h.followup(source)["Id"]
    report = BulkSync(h.runtime).run([source], source="replay", force=True)  # replayed again
    assert report.outcomes["synced"] == 1
    assert h.store.scheduled() == [cb.id]
    assert [e["event"] for e in h.store.history(cb.id)].count("scheduled") == 1
    assert h.callback(source).due_at == cb.due_at


def test_bulk_replay_of_callback_call_closes_the_loop(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promising_call(h)
    BulkSync(h.runtime).run([source], source="replay", force=True)
    h.advance(hours=7)
    h.runner.sweep()
    [placed] = h.placed()
    h.advance(seconds=70)  # the call ends; no worker syncs it: a replay brings it in
    report = BulkSync(h.runtime).run([placed.call_id], source="replay", force=True)
    assert report.outcomes["synced"] == 1
    cb = h.callback(source)
    assert cb.state is CbState.DONE and cb.outcome == "completed"
    task = h.followup(source)
    assert task["Status"] == "Completed" and placed.call_id in task["Description"]
