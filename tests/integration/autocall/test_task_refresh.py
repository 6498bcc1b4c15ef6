"""The sweep follows the follow-up Tasks before the callbacks come due: every
``CRM_SYNC_AUTO_CALLBACK_TASK_REFRESH_SECONDS`` (300 s by default) it re-reads the Tasks of all scheduled
callbacks in one batched query, and a Task a rep moved (earlier or later) or completed moves or cancels its
callback then, not at the callback's old due time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.autocall import Harness, harness

from standins.stack.sandboxes import Sandboxes
from worker.autocall import facts
from worker.autocall.store import CbState

PHONE = "9811122233"
#: 17:00 IST on the harness's morning ("today 5pm" said at 10:00 IST).
FIVE_PM = datetime(2030, 1, 10, 11, 30, tzinfo=UTC)


def promised(h: Harness, phone: str = PHONE) -> str:
    return h.promise(phone, h.new_lead(phone), "today 5pm")


def move_task(h: Harness, source: str, when: datetime) -> None:
    h.runtime.services.salesforce.update(
        "Task", h.callback(source).task_id, {"ReminderDateTime": when.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    )


def sf_requests(boxes: Sandboxes) -> dict[str, int]:
    return dict(boxes.salesforce.stats()["api_requests"])


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def moved_events(h: Harness, source: str) -> list[dict[str, Any]]:
    return [e for e in h.store.history(f"cb_{source}") if e.get("event") == "moved"]


def test_task_moved_two_hours_earlier_is_placed_at_the_new_time_once(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    h.runner.sweep()  # the first sweep reads the Tasks (nothing changed)
    assert h.callback(source).due_at == FIVE_PM
    earlier = FIVE_PM - timedelta(hours=2)  # 15:00 IST
    move_task(h, source, earlier)
    h.advance(seconds=60)
    h.runner.sweep()
    assert h.callback(source).due_at == FIVE_PM  # within the refresh interval: not read again yet
    h.advance(seconds=240)  # 300 s since the last read
    h.runner.sweep()
    cb = h.callback(source)
    assert cb.state is CbState.SCHEDULED and cb.due_at == earlier and cb.reason == "task_moved"
    assert cb.task_due_at == earlier
    h.advance(seconds=(earlier - h.now()).total_seconds() - 30)
    h.runner.sweep()
    assert h.placed() == []  # 30 s early
    h.advance(seconds=30)
    h.runner.sweep()
    [placed] = h.placed()
    assert earlier <= placed.triggered_at < earlier + timedelta(seconds=5)
    for _ in range(3):  # past the old due time, through more refreshes: no second call
        h.advance(hours=1)
        h.runner.sweep()
    assert len(h.placed()) == 1 and len(moved_events(h, source)) == 1


def test_task_moved_later_moves_the_callback_before_its_old_time(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    later = FIVE_PM + timedelta(hours=2, minutes=30)  # 19:30 IST
    move_task(h, source, later)
    h.runner.sweep()
    cb = h.callback(source)
    assert cb.due_at == later and cb.reason == "task_moved" and h.placed() == []
    h.advance(hours=7)  # the old due time passes
    h.runner.sweep()
    assert h.placed() == []
    h.advance(hours=2, minutes=30)
    h.runner.sweep()
    [placed] = h.placed()
    assert placed.triggered_at >= later and len(moved_events(h, source)) == 1


def test_task_completed_cancels_at_the_next_refresh(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    h.runtime.services.salesforce.update("Task", h.callback(source).task_id, {"Status": "Completed"})
    h.runner.sweep()  # hours before the callback's due time
    cb = h.callback(source)
    assert cb.state is CbState.CANCELLED and cb.reason == "task_completed"
    h.advance(hours=7)
    h.runner.sweep()
    assert h.placed() == []


def test_refresh_disabled_follows_the_task_only_when_due(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path, crm_sync_auto_callback_task_refresh_seconds=0)
    source = promised(h)
    move_task(h, source, FIVE_PM - timedelta(hours=2))
    h.runner.sweep()
    assert h.callback(source).due_at == FIVE_PM  # no periodic read: the Task is read at the due time


def test_fifty_scheduled_callbacks_cost_one_query_per_refresh(
    boxes: Sandboxes, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(boxes, redis_url, tmp_path)
    sources = [promised(h, phone=f"98112000{i:02d}") for i in range(50)]
    assert len(h.store.scheduled()) == 50
    move_task(h, sources[7], FIVE_PM - timedelta(hours=3))
    t2_before = boxes.twenty2.request_count()
    before = sf_requests(boxes)
    h.runner.sweep()
    assert delta(before, sf_requests(boxes)) == {"query": 1}
    assert h.callback(sources[7]).due_at == FIVE_PM - timedelta(hours=3)
    assert all(h.callback(s).due_at == FIVE_PM for s in sources if s != sources[7])
    before = sf_requests(boxes)
    h.advance(seconds=299)
    h.runner.sweep()
    assert delta(before, sf_requests(boxes)) == {}  # within the interval: nothing read
    h.advance(seconds=1)
    h.runner.sweep()
    assert delta(before, sf_requests(boxes)) == {"query": 1}
    assert boxes.twenty2.request_count() == t2_before  # nothing due: Twenty2 not asked
    # more ids than one query holds: one query per chunk
    monkeypatch.setattr(facts, "TASK_IDS_PER_QUERY", 20)
    before = sf_requests(boxes)
    h.advance(seconds=300)
    h.runner.sweep()
    assert delta(before, sf_requests(boxes)) == {"query": 3}
    assert len(h.store.scheduled()) == 50 and len(moved_events(h, sources[7])) == 1
