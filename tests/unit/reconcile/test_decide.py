"""Which listed calls one reconciliation pass syncs, leaves or skips (``worker.reconcile.decide``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.ledger import State
from worker.reconcile.decide import Verdict, counts, decide, next_watermark, window_start
from worker.twenty2.models import CallInfo

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=48)


def call(n: int, status: str = "completed", *, ended: datetime | None = NOW - timedelta(minutes=5)) -> CallInfo:
    started = (ended or NOW) - timedelta(minutes=2)
    return CallInfo(call_id=f"call_{n:04d}", status=status, started_at=started, ended_at=ended)


def verdicts(calls: list[CallInfo], known: dict[str, State] | None = None) -> dict[str, str]:
    return {d.call.call_id: d.verdict.value for d in decide(calls, known or {}, since=SINCE)}


def test_finished_call_unknown_to_the_ledger_is_synced() -> None:
    assert verdicts([call(1), call(2, "failed"), call(3, "no-answer")]) == {
        "call_0001": "sync",
        "call_0002": "sync",
        "call_0003": "sync",
    }


def test_call_in_progress_is_left_for_a_later_pass() -> None:
    assert verdicts([call(1, "in-progress", ended=None), call(2, "ringing", ended=None)]) == {
        "call_0001": "in_progress",
        "call_0002": "in_progress",
    }


def test_unknown_status_with_an_end_time_counts_as_final() -> None:
    assert verdicts([call(1, "hung-up-by-carrier"), call(2, "hung-up-by-carrier", ended=None)]) == {
        "call_0001": "sync",
        "call_0002": "in_progress",
    }


def test_call_the_ledger_knows_is_never_synced_again_whatever_its_state() -> None:
    known = {
        "call_0001": State.SYNCED,
        "call_0002": State.SKIPPED,
        "call_0003": State.FAILED,
        "call_0004": State.QUEUED,
    }
    decisions = decide([call(1), call(2), call(3), call(4), call(5)], known, since=SINCE)
    assert [(d.verdict, d.state) for d in decisions] == [
        (Verdict.KNOWN, "synced"),
        (Verdict.KNOWN, "skipped"),
        (Verdict.KNOWN, "failed"),
        (Verdict.KNOWN, "queued"),
        (Verdict.SYNC, ""),
    ]


def test_call_ended_before_the_window_is_outside() -> None:
    assert verdicts([call(1, ended=SINCE - timedelta(seconds=1)), call(2, ended=SINCE)]) == {
        "call_0001": "outside",
        "call_0002": "sync",
    }


def test_a_call_listed_twice_gets_one_verdict() -> None:
    decisions = decide([call(1), call(1, "in-progress", ended=None)], {}, since=SINCE)
    assert [(d.call.call_id, d.verdict) for d in decisions] == [("call_0001", Verdict.SYNC)]


def test_window_looks_back_past_the_watermark_and_never_past_now() -> None:
    lookback = timedelta(hours=48)
    assert window_start(None, now=NOW, lookback=lookback) == NOW - lookback
    watermark = NOW - timedelta(hours=3)
    assert window_start(watermark, now=NOW, lookback=lookback) == watermark - lookback
    assert window_start(NOW + timedelta(days=1), now=NOW, lookback=lookback) == NOW - lookback


def test_watermark_moves_to_the_newest_handled_final_call_only() -> None:
    old, new, newest = (NOW - timedelta(minutes=m) for m in (30, 10, 1))
    decisions = decide(
        [call(1, ended=old), call(2, ended=new), call(3, ended=newest), call(4, "in-progress", ended=None)],
        {"call_0001": State.SYNCED},
        since=SINCE,
    )
    # call 3 was not queued (beyond the batch): it does not move the watermark
    assert next_watermark(decisions, None, now=NOW, queued=frozenset({"call_0002"})) == new
    assert next_watermark(decisions, None, now=NOW) == old
    # never backwards
    assert next_watermark(decisions, NOW - timedelta(minutes=2), now=NOW) == NOW - timedelta(minutes=2)


def test_counts_name_every_verdict() -> None:
    decisions = decide([call(1), call(2, "queued", ended=None)], {}, since=SINCE)
    assert counts(decisions) == {"sync": 1, "in_progress": 1, "known": 0, "outside": 0}


def test_a_killed_pass_blocks_the_next_ones_for_three_intervals_at_most() -> None:
    from worker.reconcile.run import pass_lock_seconds

    assert pass_lock_seconds(20) == 60 and pass_lock_seconds(3) == 30
