"""Automatic callbacks end to end: a call synced (both stand-ins, a private Redis), the sweep run while the
Twenty2 stand-in's clock is moved forward; what was placed is what the stand-in's dialer saw."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.autocall import Harness, harness

from standins.stack.sandboxes import Sandboxes
from standins.twenty2.dialer import Outcome
from worker.autocall.store import CbState
from worker.sync.stream import sync_and_record

PHONE = "9811122233"
#: 17:00 IST on MORNING's day ("today 5pm" said at 10:00 IST).
FIVE_PM = datetime(2030, 1, 10, 11, 30, tzinfo=UTC)


def promised(h: Harness, phone: str = PHONE, when: str = "today 5pm", **lead: object) -> str:
    return h.promise(phone, h.new_lead(phone, **lead), when)


def test_callback_is_placed_at_the_promised_instant_and_closes_the_loop(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    cb = h.callback(source)
    assert cb.state is CbState.SCHEDULED and cb.due_at == FIVE_PM
    assert h.runtime.ledger.get(source).callback.startswith("scheduled")  # type: ignore[union-attr]
    h.advance(hours=6, minutes=59, seconds=30)
    h.runner.sweep()
    assert h.placed() == []  # 30 s early: nothing
    h.advance(seconds=30)
    h.runner.sweep()
    [placed] = h.placed()
    assert placed.triggered_at >= FIVE_PM and placed.triggered_at - FIVE_PM < timedelta(seconds=5)
    assert placed.callee_phone == PHONE
    cb = h.callback(source)
    assert cb.state is CbState.TRIGGERED and cb.call_id == placed.call_id
    h.advance(seconds=70)  # the call ends; its webhook would bring it to the sync
    assert sync_and_record(h.runtime, placed.call_id) == "synced"
    detail = h.runtime.services.twenty2.get_call_detail(placed.call_id)
    assert detail.input_parameters["salesforce_id"] == cb.lead_id
    assert detail.input_parameters["crm_sync_source_call_id"] == source
    assert detail.input_parameters["crm_sync_callback_attempt"] == "1"
    task = h.followup(source)
    assert task["Status"] == "Completed" and placed.call_id in task["Description"] and source in task["Description"]
    assert h.callback(source).state is CbState.DONE
    assert h.runtime.ledger.get(source).callback.startswith("done")  # type: ignore[union-attr]
    assert any(e.get("event") == "callback_call" for e in h.runtime.ledger.history(placed.call_id))


def test_callback_promised_outside_window_waits_for_next_opening(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path, crm_sync_auto_callback_window="10:00-19:00")
    source = promised(h, when="today 8pm")  # inside Twenty2's hours, outside the lead's 10-19
    cb = h.callback(source)
    opening = datetime(2030, 1, 11, 4, 30, tzinfo=UTC)  # 10:00 IST next day
    assert cb.due_at == opening
    h.advance(hours=23, minutes=59)
    h.runner.sweep()
    assert h.placed() == []
    h.advance(minutes=1)
    h.runner.sweep()
    [placed] = h.placed()
    assert placed.triggered_at >= opening and placed.starts_at == placed.triggered_at  # not queued by Twenty2


def test_sweep_outside_window_moves_due_callback_to_next_opening(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h, when="today 5pm")
    h.advance(hours=12)  # 22:00 IST: sweeps were down all evening
    h.runner.sweep()
    cb = h.callback(source)
    assert h.placed() == [] and cb.state is CbState.SCHEDULED and cb.reason == "outside_window"
    assert cb.due_at == datetime(2030, 1, 11, 3, 30, tzinfo=UTC)  # 09:00 IST


def test_lead_cap_reached_refuses_with_reason(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path, per_lead_per_day=1)
    # unanswered, so it is not "a newer call that reached the lead" (that would cancel the second one)
    boxes.twenty2.dialer.outcome_for = lambda phone, params: Outcome(status="failed", duration=20)
    lead = h.new_lead(PHONE)
    first = h.promise(PHONE, lead, "today 11am")
    second = h.promise(PHONE, lead, "today 12pm")
    h.advance(hours=1)
    h.runner.sweep()
    h.advance(hours=1)
    h.runner.sweep()
    assert len(h.placed()) == 1 and h.callback(first).state is CbState.TRIGGERED
    refused = h.callback(second)
    assert refused.state is CbState.REFUSED and refused.reason == "lead_cap" and "1 of 1" in refused.reason_text


def test_lead_opted_out_cancels(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    h.runtime.services.salesforce.update("Lead", h.callback(source).lead_id, {"DoNotCall": True})
    h.advance(hours=7)
    h.runner.sweep()
    cb = h.callback(source)
    assert h.placed() == [] and cb.state is CbState.CANCELLED and cb.reason == "opted_out"
    assert "DoNotCall" in cb.reason_text


def test_converted_lead_cancels(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    boxes.salesforce.convert_lead(h.callback(source).lead_id)
    h.advance(hours=7)
    h.runner.sweep()
    cb = h.callback(source)
    assert h.placed() == [] and cb.state is CbState.CANCELLED and cb.reason == "converted"


def test_task_completed_by_rep_cancels(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    h.runtime.services.salesforce.update("Task", h.callback(source).task_id, {"Status": "Completed"})
    h.advance(hours=7)
    h.runner.sweep()
    cb = h.callback(source)
    assert h.placed() == [] and cb.state is CbState.CANCELLED and cb.reason == "task_completed"


def test_task_moved_by_rep_moves_callback(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    later = FIVE_PM + timedelta(days=1, hours=1)  # next day 18:00 IST
    h.runtime.services.salesforce.update(
        "Task", h.callback(source).task_id, {"ReminderDateTime": later.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    )
    h.advance(hours=7)
    h.runner.sweep()
    cb = h.callback(source)
    assert h.placed() == [] and cb.state is CbState.SCHEDULED and cb.reason == "task_moved" and cb.due_at == later
    h.advance(days=1, hours=1)
    h.runner.sweep()
    assert len(h.placed()) == 1 and h.placed()[0].triggered_at >= later


def test_lost_trigger_answer_is_found_in_call_logs_no_second_call(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    h.advance(hours=7)
    boxes.twenty2.dialer.lose_next_answers(1)  # the call is placed; its answer is cut off on the way back
    report = h.runner.sweep()
    assert report.unknown == [f"cb_{source}"] and len(h.placed()) == 1
    cb = h.callback(source)
    assert cb.state is CbState.TRIGGERED and cb.call_id == ""
    h.runner.sweep()  # within the grace period: nobody looks, nobody triggers
    assert len(h.placed()) == 1
    h.advance(seconds=61)
    report = h.runner.sweep()
    assert report.resolved == [f"cb_{source}"] and len(h.placed()) == 1
    assert h.callback(source).call_id == h.placed()[0].call_id
    for _ in range(3):
        h.advance(seconds=61)
        h.runner.sweep()
    assert len(h.placed()) == 1


def test_crash_after_intent_before_send_triggers_once_after_log_check(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h)
    h.advance(hours=7)
    cb = h.callback(source)
    s = h.runtime.settings
    claimed = h.store.claim(
        cb, now=h.now(), lease_seconds=60, max_concurrent=3, counts_seconds=1800, day="2030-01-10",
        caps=(2, 200, 2000.0),
    )  # fmt: skip
    assert claimed == "ok" and s.crm_sync_auto_callback_answer_grace_seconds == 60  # then the process died
    assert h.store.claim(cb, now=h.now(), lease_seconds=60, max_concurrent=3, counts_seconds=1800,
                         day="2030-01-10", caps=(2, 200, 2000.0)) == "taken"  # fmt: skip
    h.runner.sweep()
    assert h.placed() == []
    h.advance(seconds=61)
    h.runner.sweep()
    h.advance(seconds=61)
    h.runner.sweep()
    assert len(h.placed()) == 1 and h.callback(source).call_id == h.placed()[0].call_id


def test_ten_due_at_once_never_more_than_three_in_flight(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    sources = [promised(h, phone=f"98111000{i:02d}") for i in range(10)]
    h.advance(hours=7)
    seen = 0
    for _ in range(40):
        h.runner.sweep()
        assert boxes.twenty2.dialer.in_flight() <= 3
        h.advance(seconds=20)
        seen = len(h.placed())
        if seen == 10:
            break
    assert seen == 10 and boxes.twenty2.dialer.max_in_flight == 3 and boxes.twenty2.dialer.refused_concurrency == 0
    order = sorted(h.placed(), key=lambda p: p.triggered_at)
    assert {p.callee_phone for p in order} == {f"98111000{i:02d}" for i in range(10)}
    assert all(h.callback(s).state is CbState.TRIGGERED for s in sources)
    # each ended call was queued for its sync, as its webhook would be (no webhook is posted in this test)
    h.advance(seconds=70)
    h.runner.sweep()
    records = [h.runtime.ledger.get(p.call_id) for p in order]
    assert all(r is not None and r.source == "autocall" for r in records)


def test_kill_switch_places_nothing(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path, crm_sync_auto_callback_kill_switch=True)
    source = promised(h)
    h.advance(hours=7)
    h.runner.sweep()
    cb = h.callback(source)
    assert h.placed() == [] and cb.state is CbState.REFUSED and cb.reason == "kill_switch"
    assert h.followup(source)["Status"] == "Not Started"  # left to a human


def test_unanswered_callback_retried_after_gap_then_task_left_open(
    boxes: Sandboxes, redis_url: str, tmp_path: Path
) -> None:
    h = harness(boxes, redis_url, tmp_path, attempts=2, gap_minutes=30)
    boxes.twenty2.dialer.outcome_for = lambda phone, params: Outcome(status="failed", duration=20)
    source = promised(h)
    h.advance(hours=7)
    h.runner.sweep()
    h.advance(seconds=30)
    assert sync_and_record(h.runtime, h.placed()[0].call_id) == "synced"
    cb = h.callback(source)
    assert cb.state is CbState.SCHEDULED and cb.attempt == 2
    assert cb.due_at is not None and cb.due_at - h.now() >= timedelta(minutes=29)
    h.advance(minutes=31)
    h.runner.sweep()
    assert len(h.placed()) == 2
    h.advance(seconds=30)
    second = sorted(h.placed(), key=lambda p: p.triggered_at)[1]
    assert sync_and_record(h.runtime, second.call_id) == "synced"
    cb = h.callback(source)
    assert cb.state is CbState.DONE and cb.outcome == "unanswered"
    task = h.followup(source)
    assert task["Status"] == "Not Started" and "unanswered" in task["Description"]


def test_vague_callback_is_not_scheduled(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    h = harness(boxes, redis_url, tmp_path)
    source = promised(h, when="baad mein")
    assert h.store.get(f"cb_{source}") is None


def test_schedule_survives_redis_restart_with_aof(boxes: Sandboxes, redis_url: str, tmp_path: Path) -> None:
    from standins.stack.redis_server import RedisServer

    server = RedisServer(tmp_path / "aof").start()  # AOF, fsync every second
    try:
        h = harness(boxes, server.url, tmp_path)
        source = promised(h)
        time.sleep(1.5)
        server.stop(hard=True)  # SIGKILL: only what the AOF holds comes back
        server.start()
        h2 = harness(boxes, server.url, tmp_path, start=h.now())
        assert h2.callback(source).due_at == FIVE_PM
        h2.advance(hours=7)
        h2.runner.sweep()
        assert len(h2.placed()) == 1
    finally:
        server.stop()
